package chaos

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/flotilla-dev/flotilla/test/localenv"
)

// TestProxyHooks: the proxy reports an EC2 call before it reaches the
// backend and after the backend answered, and a dropped call never reaches
// the backend.
func TestProxyHooks(t *testing.T) {
	var mu sync.Mutex
	var got []string
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		q, _ := url.ParseQuery(string(b))
		mu.Lock()
		got = append(got, "backend "+q.Get("Action"))
		mu.Unlock()
		_, _ = io.WriteString(w, "<ok/>")
	}))
	defer backend.Close()
	p, err := startProxy(backend.URL, func(action string, after bool) bool {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, map[bool]string{false: "before ", true: "after "}[after]+action)
		return action == "TerminateInstances" && !after
	})
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	post := func(action string) (string, error) {
		resp, err := http.Post(p.URL()+"/", "application/x-www-form-urlencoded; charset=utf-8",
			strings.NewReader(url.Values{"Action": {action}, "Version": {"2016-11-15"}}.Encode()))
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	if body, err := post("CreateFleet"); err != nil || body != "<ok/>" {
		t.Fatalf("CreateFleet through the proxy: %q, %v", body, err)
	}
	if _, err := post("TerminateInstances"); err == nil {
		t.Error("a dropped TerminateInstances got an answer")
	}
	want := []string{"before CreateFleet", "backend CreateFleet", "after CreateFleet", "before TerminateInstances"}
	mu.Lock()
	defer mu.Unlock()
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
}

// TestSchedule: a long schedule covers every (service, step) pair evenly,
// is the same for the same seed, and ends with the infrastructure faults.
func TestSchedule(t *testing.T) {
	plan := Schedule(42, 100, true)
	count := map[Run]int{}
	kills := 0
	for _, c := range plan {
		for _, r := range []*Run{c.Up, c.Down} {
			if r != nil && r.Fault == Kill && r.Victim != localenv.ProcAPIServer {
				count[*r]++
				kills++
				if (c.Up == r) != r.Step.scaleUp() {
					t.Errorf("%s in the wrong half of a cycle", r)
				}
			}
		}
	}
	if kills != 100 {
		t.Errorf("%d kill runs, want 100", kills)
	}
	if len(count) != 18 {
		t.Errorf("%d (service, step) pairs, want 18: %v", len(count), count)
	}
	for r, n := range count {
		if n < 5 || n > 6 {
			t.Errorf("%s drawn %d times, want 5 or 6", r, n)
		}
	}
	last := plan[len(plan)-3:]
	if last[0].Up.Victim != localenv.ProcAPIServer || last[1].Up.Fault != PlannerDown || last[2].Up.Fault != MotoRestart {
		t.Errorf("infrastructure faults at the end: %+v %+v %+v", last[0].Up, last[1].Up, last[2].Up)
	}
	if diff := cmp.Diff(plan, Schedule(42, 100, true)); diff != "" {
		t.Errorf("same seed, other schedule:\n%s", diff)
	}
	if cmp.Equal(plan, Schedule(43, 100, true)) {
		t.Error("another seed gave the same schedule")
	}
}

// TestSettled: the end state needs every pod running, every NodeClaim
// initialized with exactly one live instance, no leak, and the node count.
func TestSettled(t *testing.T) {
	rest := state{running: 2, claims: 1, nodes: 1}
	for _, tc := range []struct {
		name  string
		s     state
		nodes int
		want  bool
	}{
		{"at rest", rest, 1, true},
		{"any node count", state{running: 2, claims: 2, nodes: 2}, 0, true},
		{"consolidation not done", state{running: 2, claims: 2, nodes: 2}, 1, false},
		{"pod pending", state{running: 1, pending: 1, claims: 1, nodes: 1}, 1, false},
		{"leaked instance", state{running: 2, claims: 1, nodes: 1, leaked: []string{"i-1"}}, 1, false},
		{"claim without instance", state{running: 2, claims: 1, nodes: 1, without: []string{"c"}}, 1, false},
		{"claim with two instances", state{running: 2, claims: 1, nodes: 1, multi: []string{"c"}}, 1, false},
		{"claim being deleted", state{running: 2, claims: 2, deleting: 1, nodes: 2}, 0, false},
		{"claim without node", state{running: 2, claims: 2, nodes: 1}, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.s.settled(2, tc.nodes); got != tc.want {
				t.Errorf("settled(%s) = %v, want %v", tc.s, got, tc.want)
			}
		})
	}
}

// TestTableAndFailed: the table sums runs by step, and a run fails on any
// invariant count, on a slow or missing settle, or on an error.
func TestTableAndFailed(t *testing.T) {
	ok := Result{Run: Run{Fault: Kill, Victim: localenv.ProcActuator, Step: MidDrain}, Hit: true, Settled: true, Settle: 3 * time.Second, PDBChecked: true}
	leak := ok
	leak.Victim, leak.Leaked, leak.Settle = localenv.ProcWatcher, 1, 70*time.Second
	slow := ok
	slow.Step, slow.Settle = BeforeCreateFleet, 61*time.Second
	moto := Result{Run: Run{Fault: MotoRestart}, Hit: true, Settled: true, Settle: 40 * time.Second}
	for _, tc := range []struct {
		r    Result
		want bool
	}{{ok, false}, {leak, true}, {slow, true}, {moto, false}} {
		if got := tc.r.Failed(); got != tc.want {
			t.Errorf("Failed(%s leaked=%d settle=%s) = %v, want %v", tc.r.Run, tc.r.Leaked, tc.r.Settle, got, tc.want)
		}
	}
	table := Table([]Result{ok, leak, slow, moto})
	for _, want := range []string{
		"before CreateFleet     1    1           0/1/0       0",
		"mid-drain     2    2           0/1/1       1",
		"1m10s",
		"moto restart     1    1           0/0/0       0                0             n/a",
		"total     4    4           0/2/1       1",
	} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
	if strings.Index(table, "before CreateFleet") > strings.Index(table, "mid-drain") {
		t.Errorf("scale-up steps should come first:\n%s", table)
	}
}
