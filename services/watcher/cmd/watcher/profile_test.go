package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// profiler fetches Go profiles from the watcher's --pprof-addr into a
// directory; a nil profiler does nothing.
type profiler struct {
	addr, dir string
}

func newProfiler(t *testing.T, dir string) *profiler {
	if dir == "" {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return &profiler{addr: freeAddr(t), dir: dir}
}

// save writes the named profile (heap, goroutine, ...) to file.
func (p *profiler) save(t *testing.T, name, file string) {
	if p == nil {
		return
	}
	if err := p.fetch("/debug/pprof/"+name, file, time.Minute); err != nil {
		t.Logf("profile %s: %v", name, err)
	}
}

// cpu starts a CPU profile of d and returns a function that waits for it.
func (p *profiler) cpu(t *testing.T, d time.Duration, file string) func() {
	if p == nil {
		return func() {}
	}
	done := make(chan error, 1)
	go func() {
		done <- p.fetch(fmt.Sprintf("/debug/pprof/profile?seconds=%d", int(d.Seconds())), file, d+time.Minute)
	}()
	return func() {
		if err := <-done; err != nil {
			t.Logf("cpu profile: %v", err)
		}
	}
}

func (p *profiler) fetch(path, file string, timeout time.Duration) error {
	c := http.Client{Timeout: timeout}
	resp, err := c.Get("http://" + p.addr + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", path, resp.Status)
	}
	f, err := os.Create(filepath.Join(p.dir, file))
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
