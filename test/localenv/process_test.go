package localenv

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fake returns a Process running this test binary as a fake process in the
// given mode (see fakeProcess in main_test.go).
func fake(name, mode string, env ...string) Process {
	return Process{
		Name: name,
		Argv: []string{os.Args[0]},
		Env:  append([]string{"LOCALENV_FAKE_PROCESS=" + mode}, env...),
	}
}

func newTestEnv(t *testing.T) *Env {
	t.Helper()
	return &Env{Dir: t.TempDir(), specs: map[string]Process{}, stopTimeout: 2 * time.Second, Vars: map[string]string{}}
}

// session reads a process's session id (field 6 of /proc/<pid>/stat).
func session(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	sid, err := strconv.Atoi(f[3])
	if err != nil {
		t.Fatal(err)
	}
	return sid
}

func pidAlive(pid int) bool {
	st, err := readStat(pid)
	return err == nil && st.state != 'Z' && st.state != 'X'
}

func TestStartProcessWaitsForHealthAndDownStopsIt(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	p := fake("web", "serve:"+strconv.Itoa(port))
	p.HealthURL = "http://127.0.0.1:" + strconv.Itoa(port) + "/healthz"
	if err := e.StartProcess(t.Context(), p); err != nil {
		t.Fatalf("StartProcess() error = %v", err)
	}
	// Ready means the health URL answers now.
	if err := e.HealthCheck(p.HealthURL)(t.Context()); err != nil {
		t.Fatalf("health after StartProcess: %v", err)
	}
	st, err := e.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != 1 || !st[0].Alive || st[0].Health != "ok" {
		t.Fatalf("Status() = %+v, want web alive and ok", st)
	}
	pid := st[0].PID
	// Detached: its own session and process group.
	ps, err := readStat(pid)
	if err != nil {
		t.Fatal(err)
	}
	if ps.pgrp != pid {
		t.Errorf("process group = %d, want its own (%d)", ps.pgrp, pid)
	}
	if sid := session(t, pid); sid != pid {
		t.Errorf("session = %d, want its own (%d)", sid, pid)
	}

	if err := Down(t.Context(), e.Dir, time.Second); err != nil {
		t.Fatalf("Down() error = %v", err)
	}
	if pidAlive(pid) {
		t.Errorf("pid %d still running after Down", pid)
	}
	if _, err := os.Stat(recordPath(e.Dir, "web")); !os.IsNotExist(err) {
		t.Errorf("record still present after Down: %v", err)
	}
	logb, _ := os.ReadFile(e.LogFile("web"))
	if !strings.Contains(string(logb), "got SIGTERM, exiting") {
		t.Errorf("log does not show a graceful SIGTERM exit:\n%s", logb)
	}
}

func TestStopEscalatesToSIGKILL(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	e.stopTimeout = 300 * time.Millisecond
	// Ready once the fake has installed its SIGTERM handler.
	p := fake("stubborn", "ignore-term")
	p.Ready = func(context.Context) error {
		b, err := os.ReadFile(e.LogFile("stubborn"))
		if err != nil || !strings.Contains(string(b), "fake ready") {
			return errors.New("not yet")
		}
		return nil
	}
	if err := e.StartProcess(t.Context(), p); err != nil {
		t.Fatal(err)
	}
	rec, err := e.record("stubborn")
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	if err := e.StopProcess(t.Context(), "stubborn"); err != nil {
		t.Fatalf("StopProcess() error = %v", err)
	}
	if took := time.Since(began); took < 300*time.Millisecond || took > 5*time.Second {
		t.Errorf("stop took %s, want the 300ms grace period then SIGKILL", took)
	}
	if pidAlive(rec.PID) {
		t.Errorf("pid %d survived", rec.PID)
	}
	logb, _ := os.ReadFile(rec.Log)
	if !strings.Contains(string(logb), "got SIGTERM, ignoring it") {
		t.Errorf("SIGTERM was not sent first; log:\n%s", logb)
	}
}

func TestStopKillsTheWholeProcessGroup(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	pidFile := filepath.Join(e.Dir, "child.pid")
	p := fake("parent", "spawn-child", "FAKE_CHILD_PID_FILE="+pidFile)
	p.Ready = func(context.Context) error {
		_, err := os.Stat(pidFile)
		return err
	}
	if err := e.StartProcess(t.Context(), p); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	child, _ := strconv.Atoi(string(b))
	if !pidAlive(child) {
		t.Fatalf("child %d not running", child)
	}
	if err := Down(t.Context(), e.Dir, time.Second); err != nil {
		t.Fatal(err)
	}
	if pidAlive(child) {
		t.Errorf("child %d of the stopped process still runs", child)
	}
}

func TestStartProcessThatExitsReportsItsLog(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	p := fake("broken", "fail")
	p.Ready = func(context.Context) error { return os.ErrNotExist }
	err := e.StartProcess(t.Context(), p)
	if err == nil || !strings.Contains(err.Error(), "boom") || !strings.Contains(err.Error(), "exited during startup") {
		t.Fatalf("StartProcess() error = %v, want it to report the exit with the log line boom", err)
	}
	if _, err := os.Stat(recordPath(e.Dir, "broken")); !os.IsNotExist(err) {
		t.Errorf("record of the failed process left behind")
	}
}

func TestStartProcessNotReadyInTimeIsStopped(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	p := fake("slow", "sleep")
	p.Ready = func(context.Context) error { return os.ErrDeadlineExceeded }
	p.ReadyTimeout = 300 * time.Millisecond
	err := e.StartProcess(t.Context(), p)
	if err == nil || !strings.Contains(err.Error(), "not ready after") {
		t.Fatalf("StartProcess() error = %v, want not ready", err)
	}
	recs, _ := readRecords(e.Dir)
	if len(recs) != 0 {
		t.Errorf("records left: %+v", recs)
	}
}

func TestStartProcessRefusesADuplicateAndRestartReplacesIt(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	if err := e.StartProcess(t.Context(), fake("svc", "sleep")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = Down(context.Background(), e.Dir, time.Second) })
	if err := e.StartProcess(t.Context(), fake("svc", "sleep")); err == nil || !strings.Contains(err.Error(), "already running") {
		t.Fatalf("second StartProcess() error = %v, want already running", err)
	}
	first, _ := e.record("svc")
	if err := e.Signal("svc", syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for first.Alive() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if first.Alive() {
		t.Fatal("process survived SIGKILL")
	}
	if err := e.Restart(t.Context(), "svc"); err != nil {
		t.Fatalf("Restart() error = %v", err)
	}
	second, _ := e.record("svc")
	if second.PID == first.PID || !second.Alive() {
		t.Errorf("after Restart pid %d alive=%t, want a new running process (old pid %d)", second.PID, second.Alive(), first.PID)
	}
}

func TestAliveIgnoresAReusedProcessGroupNumber(t *testing.T) {
	t.Parallel()
	self, err := readStat(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// This test process's group is alive; a record claiming it with a later
	// start time describes some earlier, gone process.
	if !(ProcessRecord{PID: self.pgrp}).Alive() {
		t.Fatalf("own process group %d not seen alive", self.pgrp)
	}
	if (ProcessRecord{PID: self.pgrp, StartTick: self.startTick + 1_000_000_000}).Alive() {
		t.Errorf("a record with a later start time matched a stranger's group")
	}
}

func TestEnvFileExportsForTheShell(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	e.Kubeconfig = filepath.Join(e.Dir, "kubeconfig")
	e.MotoEndpoint = "http://127.0.0.1:5000"
	e.Region = "us-east-1"
	if err := e.SetVar("FLOTILLA_PLANNER_ADDR", "127.0.0.1:9001 'quoted'"); err != nil {
		t.Fatal(err)
	}
	out, err := runShell(". " + e.EnvFile() + ` && printf '%s|%s|%s|%s|%s' "$KUBECONFIG" "$AWS_ENDPOINT_URL" "$AWS_REGION" "$AWS_ACCESS_KEY_ID" "$FLOTILLA_PLANNER_ADDR"`)
	if err != nil {
		t.Fatal(err)
	}
	want := e.Kubeconfig + "|http://127.0.0.1:5000|us-east-1|test|127.0.0.1:9001 'quoted'"
	if out != want {
		t.Errorf("sourced env = %q, want %q", out, want)
	}
	loaded, err := Load(e.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if loaded.Vars["FLOTILLA_PLANNER_ADDR"] != "127.0.0.1:9001 'quoted'" || loaded.MotoEndpoint != e.MotoEndpoint {
		t.Errorf("Load() = %+v, want the saved vars and endpoints", loaded)
	}
}
