package localenv_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/test/localenv"
)

// TestMain doubles as the tiny fake process of the supervision tests (when
// LOCALENV_FAKE_PROCESS is set) and stops the shared environment of the
// integration tests after all tests ran.
func TestMain(m *testing.M) {
	if mode := os.Getenv("LOCALENV_FAKE_PROCESS"); mode != "" {
		fakeProcess(mode)
		return
	}
	code := m.Run()
	if shared.env != nil {
		if err := shared.env.Stop(context.Background()); err != nil {
			fmt.Fprintln(os.Stderr, "stop shared environment:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// fakeProcess behaves as mode asks:
//
//	serve:<port>  answer 200 on /healthz until SIGTERM
//	ignore-term   log SIGTERM and keep running (only SIGKILL stops it)
//	spawn-child   start a child in the same process group, write its pid to
//	              $FAKE_CHILD_PID_FILE, run until SIGTERM
//	sleep         run until SIGTERM
//	fail          print "boom" and exit 3
func fakeProcess(mode string) {
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	fmt.Println("fake ready")
	switch {
	case mode == "fail":
		fmt.Println("boom")
		os.Exit(3)
	case mode == "ignore-term":
		for range term {
			fmt.Println("got SIGTERM, ignoring it")
		}
	case mode == "spawn-child":
		child := exec.Command(os.Args[0])
		child.Env = append(os.Environ(), "LOCALENV_FAKE_PROCESS=sleep")
		if err := child.Start(); err != nil {
			fmt.Println("spawn:", err)
			os.Exit(1)
		}
		_ = os.WriteFile(os.Getenv("FAKE_CHILD_PID_FILE"), []byte(strconv.Itoa(child.Process.Pid)), 0o644)
	case len(mode) > 6 && mode[:6] == "serve:":
		mux := http.NewServeMux()
		mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
		go func() { _ = http.ListenAndServe("127.0.0.1:"+mode[6:], mux) }()
	}
	<-term
	fmt.Println("got SIGTERM, exiting")
}

// shared is the one environment the integration tests of this package use.
var shared struct {
	once    sync.Once
	env     *localenv.Env
	err     error
	upTime  time.Duration
	skipped string
}

// sharedEnv brings the environment up on first use.
func sharedEnv(t *testing.T) *localenv.Env {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: skipped with -short")
	}
	shared.once.Do(func() {
		began := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
		defer cancel()
		shared.env, shared.err = localenv.Start(ctx, localenv.Options{Progress: testWriter{}})
		shared.upTime = time.Since(began)
		if errors.Is(shared.err, localenv.ErrNotBuilt) {
			shared.skipped = shared.err.Error()
			shared.err = nil
		}
	})
	if shared.skipped != "" {
		t.Skipf("skipping: %s", shared.skipped)
	}
	if shared.err != nil {
		t.Fatalf("start local environment: %v", shared.err)
	}
	t.Logf("environment up in %s (state in %s)", shared.upTime.Round(time.Millisecond), shared.env.Dir)
	return shared.env
}

type testWriter struct{}

func (testWriter) Write(p []byte) (int, error) { return os.Stderr.Write(p) }
