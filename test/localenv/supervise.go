package localenv

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"syscall"
	"time"
)

// ProcessStatus is the observed state of one process of the environment.
type ProcessStatus struct {
	Name string
	// PID is the process (and process group) id; the caller's own pid for
	// a process running inside it.
	PID int
	// Alive reports whether it runs.
	Alive bool
	// Health is "ok", "-" when there is nothing to check, or why the health
	// check failed.
	Health    string
	Log       string
	StartedAt time.Time
	InProcess bool
}

// StartProcess starts p detached in the environment's state directory and
// waits until it is ready (Ready, else HealthURL, else at once). Down and
// Stop stop it with the rest. If it does not become ready it is stopped and
// the error carries the end of its log.
func (e *Env) StartProcess(ctx context.Context, p Process) error {
	recs, err := readRecords(e.Dir)
	if err != nil {
		return err
	}
	if i := slices.IndexFunc(recs, func(r ProcessRecord) bool { return r.Name == p.Name }); i >= 0 && recs[i].Alive() {
		return fmt.Errorf("start %s: already running (pid %d)", p.Name, recs[i].PID)
	}
	began := time.Now()
	rec, err := spawn(e.Dir, p, e.dieWithParent)
	if err != nil {
		return err
	}
	e.mu.Lock()
	e.specs[p.Name] = p
	e.mu.Unlock()
	ready := p.Ready
	if ready == nil && p.HealthURL != "" {
		ready = e.HealthCheck(p.HealthURL)
	}
	if err := waitReady(ctx, rec, ready, p.ReadyTimeout); err != nil {
		_ = stopRecords([]ProcessRecord{rec}, e.stopTimeout)
		_ = os.Remove(recordPath(e.Dir, rec.Name))
		return fmt.Errorf("start %s: %w", p.Name, err)
	}
	progressf(e.progress(), "  %-24s ready in %s", p.Name, time.Since(began).Round(time.Millisecond))
	return nil
}

// StopProcess stops one process (SIGTERM, then SIGKILL) and forgets it.
func (e *Env) StopProcess(ctx context.Context, name string) error {
	if e.stopInProcess(name) {
		return nil
	}
	rec, err := e.record(name)
	if err != nil {
		return err
	}
	if err := stopRecords([]ProcessRecord{rec}, e.stopTimeout); err != nil {
		return err
	}
	if err := os.Remove(recordPath(e.Dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("stop %s: %w", name, err)
	}
	return ctx.Err()
}

// Signal sends sig to a process's group, e.g. SIGKILL to simulate a crash.
// The process stays recorded, so Down still cleans up after it.
func (e *Env) Signal(name string, sig syscall.Signal) error {
	rec, err := e.record(name)
	if err != nil {
		return err
	}
	if !rec.Alive() {
		return fmt.Errorf("signal %s: not running", name)
	}
	if err := syscall.Kill(-rec.PID, sig); err != nil {
		return fmt.Errorf("signal %s: %w", name, err)
	}
	return nil
}

// Restart stops a process if it runs and starts it again with the same
// specification (its Ready check survives only within the process that
// started it; otherwise HealthURL is used).
func (e *Env) Restart(ctx context.Context, name string) error {
	e.mu.Lock()
	p, ok := e.specs[name]
	e.mu.Unlock()
	if !ok {
		rec, err := e.record(name)
		if err != nil {
			return err
		}
		p = Process{Name: rec.Name, Argv: rec.Argv, Env: rec.Env, Dir: rec.Dir, HealthURL: rec.HealthURL}
	}
	if err := e.StopProcess(ctx, name); err != nil {
		return err
	}
	return e.StartProcess(ctx, p)
}

// Status reports every process of the environment with a health check.
func (e *Env) Status(ctx context.Context) ([]ProcessStatus, error) {
	recs, err := readRecords(e.Dir)
	if err != nil {
		return nil, err
	}
	var out []ProcessStatus
	for _, r := range recs {
		s := ProcessStatus{Name: r.Name, PID: r.PID, Alive: r.Alive(), Health: "-", Log: r.Log, StartedAt: r.StartedAt}
		switch {
		case !s.Alive:
			s.Health = "not running"
		case r.HealthURL != "":
			s.Health = "ok"
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			if err := e.HealthCheck(r.HealthURL)(cctx); err != nil {
				s.Health = err.Error()
			}
			cancel()
		}
		out = append(out, s)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, p := range e.inproc {
		s := ProcessStatus{Name: p.name, PID: os.Getpid(), Alive: true, Health: "-", Log: e.LogFile(p.name), InProcess: true}
		select {
		case <-p.done:
			s.Alive, s.Health = false, "not running"
		default:
		}
		out = append(out, s)
	}
	return out, nil
}

// HealthCheck returns a check that GETs url and wants a 2xx answer. https
// URLs are fetched with the admin client certificate, without verifying the
// server (the scheduler and controller-manager serve self-signed certs).
func (e *Env) HealthCheck(url string) func(context.Context) error {
	var tlsCfg *tls.Config
	if e.PKI != nil {
		if c, err := e.PKI.AdminTLS(); err == nil {
			tlsCfg = c
		}
	}
	if tlsCfg == nil {
		tlsCfg = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	tlsCfg.InsecureSkipVerify = true //nolint:gosec // loopback health probe of self-signed local servers
	return HTTPCheck(url, tlsCfg)
}

// HTTPCheck returns a check that GETs url and wants a 2xx answer.
func HTTPCheck(url string, tlsCfg *tls.Config) func(context.Context) error {
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsCfg, Proxy: nil, DisableKeepAlives: true}}
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("GET %s: %s: %s", url, resp.Status, body)
		}
		return nil
	}
}

func (e *Env) record(name string) (ProcessRecord, error) {
	recs, err := readRecords(e.Dir)
	if err != nil {
		return ProcessRecord{}, err
	}
	for _, r := range recs {
		if r.Name == name {
			return r, nil
		}
	}
	return ProcessRecord{}, fmt.Errorf("process %s: not in %s", name, e.Dir)
}

func (e *Env) stopInProcess(name string) bool {
	e.mu.Lock()
	i := slices.IndexFunc(e.inproc, func(p *inProcess) bool { return p.name == name })
	if i < 0 {
		e.mu.Unlock()
		return false
	}
	p := e.inproc[i]
	e.inproc = slices.Delete(e.inproc, i, i+1)
	e.mu.Unlock()
	p.cancel()
	<-p.done
	return true
}

func (e *Env) progress() io.Writer {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.progressW
}
