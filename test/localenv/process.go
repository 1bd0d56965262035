package localenv

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Process describes one long-running program of the environment. Each runs
// in its own session and process group, detached from the caller, with its
// output in <dir>/logs/<name>.log and its record in <dir>/run/<name>.json.
type Process struct {
	// Name is unique within an environment; it names the log and record.
	Name string
	// Argv is the program and its arguments.
	Argv []string
	// Env is added to the caller's environment (KEY=VALUE).
	Env []string
	// Dir is the working directory; the state directory when empty.
	Dir string
	// HealthURL, when set, is polled (GET, any 2xx) for readiness and by
	// Status. https URLs are fetched with the admin client certificate and
	// without verifying the server.
	HealthURL string
	// Ready, when set, replaces HealthURL as the readiness check. It is
	// polled until it returns nil.
	Ready func(ctx context.Context) error
	// ReadyTimeout bounds the wait for readiness; 60s when zero.
	ReadyTimeout time.Duration
}

// ProcessRecord is what the state directory remembers of a started process.
type ProcessRecord struct {
	Name      string    `json:"name"`
	PID       int       `json:"pid"`
	StartTick uint64    `json:"start_tick"`
	Argv      []string  `json:"argv"`
	Env       []string  `json:"env,omitempty"`
	Dir       string    `json:"dir,omitempty"`
	Log       string    `json:"log"`
	HealthURL string    `json:"health_url,omitempty"`
	StartedAt time.Time `json:"started_at"`
}

// Alive reports whether the recorded process, or any process of its group,
// is still running.
func (r ProcessRecord) Alive() bool {
	return len(groupMembers(r.PID, r.StartTick)) > 0
}

// spawn starts p detached and writes its record into dir/run.
func spawn(dir string, p Process, dieWithParent bool) (ProcessRecord, error) {
	if p.Name == "" || strings.ContainsAny(p.Name, `/\ `) || len(p.Argv) == 0 {
		return ProcessRecord{}, fmt.Errorf("process %q: need a plain name and a program", p.Name)
	}
	for _, sub := range []string{"run", "logs"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return ProcessRecord{}, fmt.Errorf("start %s: %w", p.Name, err)
		}
	}
	logPath := filepath.Join(dir, "logs", p.Name+".log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return ProcessRecord{}, fmt.Errorf("start %s: %w", p.Name, err)
	}
	defer logFile.Close()
	fmt.Fprintf(logFile, "==== %s starting: %s\n", time.Now().Format(time.RFC3339Nano), strings.Join(p.Argv, " "))

	cmd := exec.Command(p.Argv[0], p.Argv[1:]...)
	cmd.Env = append(os.Environ(), p.Env...)
	cmd.Dir = p.Dir
	if cmd.Dir == "" {
		cmd.Dir = dir
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if dieWithParent {
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	}
	if err := cmd.Start(); err != nil {
		return ProcessRecord{}, fmt.Errorf("start %s: %w", p.Name, err)
	}
	// Reap the child if it exits while this process lives; once this
	// process exits, init adopts it.
	go func() { _ = cmd.Wait() }()

	st, _ := readStat(cmd.Process.Pid)
	rec := ProcessRecord{
		Name:      p.Name,
		PID:       cmd.Process.Pid,
		StartTick: st.startTick,
		Argv:      p.Argv,
		Env:       p.Env,
		Dir:       p.Dir,
		Log:       logPath,
		HealthURL: p.HealthURL,
		StartedAt: time.Now(),
	}
	if err := writeRecord(dir, rec); err != nil {
		_ = syscall.Kill(-rec.PID, syscall.SIGKILL)
		return ProcessRecord{}, err
	}
	return rec, nil
}

func recordPath(dir, name string) string { return filepath.Join(dir, "run", name+".json") }

func writeRecord(dir string, rec ProcessRecord) error {
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return fmt.Errorf("record %s: %w", rec.Name, err)
	}
	tmp := recordPath(dir, rec.Name) + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("record %s: %w", rec.Name, err)
	}
	if err := os.Rename(tmp, recordPath(dir, rec.Name)); err != nil {
		return fmt.Errorf("record %s: %w", rec.Name, err)
	}
	return nil
}

// readRecords returns the records in dir/run, oldest first.
func readRecords(dir string) ([]ProcessRecord, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "run", "*.json"))
	if err != nil {
		return nil, fmt.Errorf("read records: %w", err)
	}
	var out []ProcessRecord
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("read record: %w", err)
		}
		var rec ProcessRecord
		if err := json.Unmarshal(b, &rec); err != nil {
			return nil, fmt.Errorf("read record %s: %w", p, err)
		}
		out = append(out, rec)
	}
	slices.SortFunc(out, func(a, b ProcessRecord) int { return a.StartedAt.Compare(b.StartedAt) })
	return out, nil
}

// waitReady polls ready until it returns nil, the process exits or the
// timeout passes. Failures carry the end of the process's log.
func waitReady(ctx context.Context, rec ProcessRecord, ready func(context.Context) error, timeout time.Duration) error {
	if ready == nil {
		ready = func(context.Context) error { return nil }
	}
	if timeout <= 0 {
		timeout = 60 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		if !rec.Alive() {
			return fmt.Errorf("%s exited during startup:\n%s", rec.Name, logTail(rec.Log, 20))
		}
		probeCtx, probeCancel := context.WithTimeout(ctx, 10*time.Second)
		last = ready(probeCtx)
		probeCancel()
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %s: %w\n%s", rec.Name, timeout, last, logTail(rec.Log, 20))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// stopRecords sends SIGTERM to every recorded process group, newest first,
// waits up to timeout, then sends SIGKILL to what is left. It returns an
// error naming any process that survived.
func stopRecords(recs []ProcessRecord, timeout time.Duration) error {
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	signalAll := func(sig syscall.Signal) {
		for i := len(recs) - 1; i >= 0; i-- {
			if recs[i].Alive() {
				_ = syscall.Kill(-recs[i].PID, sig)
			}
		}
	}
	allGone := func(within time.Duration) bool {
		deadline := time.Now().Add(within)
		for {
			if !slices.ContainsFunc(recs, ProcessRecord.Alive) {
				return true
			}
			if time.Now().After(deadline) {
				return false
			}
			time.Sleep(25 * time.Millisecond)
		}
	}
	signalAll(syscall.SIGTERM)
	if allGone(timeout) {
		awaitReaped(recs)
		return nil
	}
	signalAll(syscall.SIGKILL)
	if allGone(5 * time.Second) {
		awaitReaped(recs)
		return nil
	}
	var alive []string
	for _, r := range recs {
		if r.Alive() {
			alive = append(alive, fmt.Sprintf("%s (pid %d)", r.Name, r.PID))
		}
	}
	return fmt.Errorf("processes survived SIGKILL: %s", strings.Join(alive, ", "))
}

// awaitReaped gives the parent (this process, or init) up to 3s to
// reap the stopped leaders, so no zombie lingers in the process table.
func awaitReaped(recs []ProcessRecord) {
	deadline := time.Now().Add(3 * time.Second)
	for _, r := range recs {
		for time.Now().Before(deadline) {
			st, err := readStat(r.PID)
			if err != nil || st.startTick != r.StartTick {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// procStat is the part of /proc/<pid>/stat the supervisor needs.
type procStat struct {
	state     byte
	pgrp      int
	startTick uint64
}

func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, err
	}
	// The command name may hold spaces and parentheses: fields start after
	// the last ')'. Field 3 is the state, 5 the process group, 22 the start
	// time in clock ticks since boot.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, errors.New("malformed stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return procStat{}, errors.New("malformed stat")
	}
	pgrp, err := strconv.Atoi(f[2])
	if err != nil {
		return procStat{}, fmt.Errorf("malformed stat: %w", err)
	}
	start, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return procStat{}, fmt.Errorf("malformed stat: %w", err)
	}
	return procStat{state: f[0][0], pgrp: pgrp, startTick: start}, nil
}

// groupMembers lists the live (non-zombie) processes of process group pgid
// that started no earlier than the group's recorded leader, so a reused
// number never matches a stranger.
func groupMembers(pgid int, notBefore uint64) []int {
	if pgid <= 0 {
		return nil
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := readStat(pid)
		if err != nil || st.pgrp != pgid || st.state == 'Z' || st.state == 'X' || st.startTick < notBefore {
			continue
		}
		out = append(out, pid)
	}
	return out
}

// logTail returns the last n lines of a log file.
func logTail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	const max = 16 << 10
	if st, err := f.Stat(); err == nil && st.Size() > max {
		_, _ = f.Seek(-max, io.SeekEnd)
	}
	b, _ := io.ReadAll(f)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "  | " + strings.Join(lines, "\n  | ")
}
