package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	watcherv1 "github.com/flotilla-dev/flotilla/gen/flotilla/watcher/v1"
	"github.com/flotilla-dev/flotilla/test/localenv"
)

// Health service names of the elected services: SERVING on the leader only.
const (
	actuatorService = "flotilla.actuator.v1.Actuator"
	watcherService  = "flotilla.watcher.v1.Watcher"
)

// clientTLS is the environment's client certificate for calling the
// services.
func clientTLS(t *testing.T) *tls.Config {
	t.Helper()
	v := w.env.Vars
	cfg, err := localenv.TLSFiles{Cert: v[localenv.VarGRPCCert], Key: v[localenv.VarGRPCKey], CA: v[localenv.VarGRPCCA]}.Config()
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// dial connects to addr with creds; the connection is closed at the end of
// the test.
func dial(t *testing.T, addr string, creds credentials.TransportCredentials) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// TestServicesRequireMutualTLS: the services' gRPC ports serve only clients
// that present a certificate of the environment's CA.
func TestServicesRequireMutualTLS(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	good := clientTLS(t)
	noCert := good.Clone()
	noCert.Certificates = nil
	for _, svc := range []struct{ name, addrVar string }{
		{"planner", localenv.VarPlannerAddr}, {"actuator", localenv.VarActuatorAddr}, {"watcher", localenv.VarWatcherAddr},
	} {
		addr := w.env.Vars[svc.addrVar]
		t.Run(svc.name, func(t *testing.T) {
			check := func(creds credentials.TransportCredentials) error {
				_, err := healthpb.NewHealthClient(dial(t, addr, creds)).Check(ctx, &healthpb.HealthCheckRequest{Service: "liveness"})
				return err
			}
			if err := check(insecure.NewCredentials()); status.Code(err) != codes.Unavailable {
				t.Errorf("plaintext client: %v, want refused (Unavailable)", err)
			}
			if err := check(credentials.NewTLS(noCert)); status.Code(err) != codes.Unavailable {
				t.Errorf("TLS client without a certificate: %v, want refused (Unavailable)", err)
			}
			if err := check(credentials.NewTLS(good)); err != nil {
				t.Errorf("client with the environment's certificate: %v, want served", err)
			}
		})
	}
	// The watcher serves its API (not only health) to a trusted client.
	resp, err := watcherv1.NewWatcherClient(dial(t, w.env.Vars[localenv.VarWatcherAddr], credentials.NewTLS(good))).
		Snapshot(ctx, &watcherv1.SnapshotRequest{PendingOnly: true})
	if err != nil {
		t.Fatalf("Snapshot over mutual TLS: %v", err)
	}
	if len(resp.GetSnapshot().GetNodePools()) == 0 && len(resp.GetSnapshot().GetNodeClasses()) == 0 && resp.GetSnapshot().GetRegion() == "" {
		t.Errorf("Snapshot over mutual TLS is empty: %v", resp)
	}
}

// healthy reports whether a process answers SERVING for service on its
// plaintext health port.
func healthy(ctx context.Context, t *testing.T, proc, service string) bool {
	conn, err := grpc.NewClient(w.env.HealthAddr(proc), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	return err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING
}

// leaderOf returns the replica of an elected service ("actuator",
// "watcher") that leads, waiting up to 30 s for one.
func leaderOf(t *testing.T, proc, service string) string {
	t.Helper()
	var leader string
	eventually(t, 30*time.Second, "a "+proc+" leader", func() (bool, string) {
		var leading []string
		for i := range Replicas {
			name := proc
			if i > 0 {
				name = fmt.Sprintf("%s-%d", proc, i+1)
			}
			if healthy(context.Background(), t, name, service) {
				leading = append(leading, name)
			}
		}
		if len(leading) == 1 {
			leader = leading[0]
		}
		return len(leading) == 1, fmt.Sprintf("leading: %v", leading)
	})
	return leader
}

// scrape returns the text exposition of a process's /metrics.
func scrape(t *testing.T, proc string) string {
	t.Helper()
	u := w.env.MetricsURL(proc)
	if u == "" {
		t.Fatalf("no metrics address for %s", proc)
	}
	resp, err := http.Get(u)
	if err != nil {
		t.Fatalf("scrape %s: %v", proc, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape %s: %s, %v", proc, resp.Status, err)
	}
	return string(b)
}

// metric sums the samples of a metric whose labels include every one of
// labels (`name="value"`); ok is false when no sample matches.
func metric(text, name string, labels ...string) (sum float64, ok bool) {
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) || strings.HasPrefix(line, "#") {
			continue
		}
		rest := line[len(name):]
		if rest == "" || (rest[0] != '{' && rest[0] != ' ') {
			continue // a longer name
		}
		if !allIn(rest, labels) {
			continue
		}
		fields := strings.Fields(rest[strings.LastIndexByte(rest, '}')+1:])
		if len(fields) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			continue
		}
		sum, ok = sum+v, true
	}
	return sum, ok
}

func allIn(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// jaegerTrace is the part of Jaeger's /api/traces answer the tests read.
type jaegerTrace struct {
	TraceID string `json:"traceID"`
	Spans   []struct {
		SpanID        string `json:"spanID"`
		OperationName string `json:"operationName"`
		ProcessID     string `json:"processID"`
		References    []struct {
			RefType string `json:"refType"`
			SpanID  string `json:"spanID"`
		} `json:"references"`
		Tags []struct {
			Key   string `json:"key"`
			Value any    `json:"value"`
		} `json:"tags"`
	} `json:"spans"`
	Processes map[string]struct {
		ServiceName string `json:"serviceName"`
	} `json:"processes"`
}

// traces queries Jaeger's HTTP API for the traces of a service operation.
func traces(t *testing.T, service, operation string) []jaegerTrace {
	t.Helper()
	q := url.Values{"service": {service}, "operation": {operation}, "limit": {"200"}, "lookback": {"1h"}}
	resp, err := http.Get(w.env.Vars[localenv.VarJaegerURL] + "/api/traces?" + q.Encode())
	if err != nil {
		t.Fatalf("query jaeger: %v", err)
	}
	defer resp.Body.Close()
	var out struct {
		Data []jaegerTrace `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("query jaeger: %v", err)
	}
	return out.Data
}

// spanTag returns a span's tag value as text.
func spanTag(tr jaegerTrace, i int, key string) (string, bool) {
	for _, tag := range tr.Spans[i].Tags {
		if tag.Key == key {
			return fmt.Sprint(tag.Value), true
		}
	}
	return "", false
}

// TestScaleUpIsTracedAndMeasured scales a Deployment up into a fresh
// NodePool and then reads what an operator would: one Jaeger trace that
// follows the batch from the watcher through the planner's solve to the
// actuator's NodeClaim creation and the CreateFleet call of the launch,
// and the Prometheus metrics of all three services.
func TestScaleUpIsTracedAndMeasured(t *testing.T) {
	const pool = "observed"
	testPool(t, pool, poolOptions{InstanceTypes: []string{"t3.medium", "t3.large"}, Limits: map[string]any{"cpu": "100"}})
	ns := namespace(t, "observed")
	workload(t, ns, "observed", pool, 3, "1")
	eventually(t, 120*time.Second, "3 pods Running", func() (bool, string) {
		running, pending := pods(t, ns)
		return len(running) == 3, fmt.Sprintf("%d running, %d pending", len(running), len(pending))
	})
	var claims []string
	for _, nc := range poolClaims(t, pool) {
		claims = append(claims, nc.GetName())
	}
	if len(claims) == 0 {
		t.Fatal("no NodeClaim in the pool after the scale-up")
	}

	t.Run("one trace from watcher to CreateFleet", func(t *testing.T) {
		want := []string{"batch", "solve", "flotilla.actuator.v1.Actuator/Execute", "nodeclaim.create", "nodeclaim.launch", "EC2.CreateFleet"}
		var last string
		eventually(t, 60*time.Second, "a trace of the scale-up with spans of all three services", func() (bool, string) {
			for _, tr := range traces(t, "actuator", "EC2.CreateFleet") {
				services := map[string]bool{}
				for _, p := range tr.Processes {
					services[p.ServiceName] = true
				}
				ops := map[string]int{}
				ours := false
				for i, s := range tr.Spans {
					ops[s.OperationName] = i
					if v, ok := spanTag(tr, i, "flotilla.nodeclaim"); ok && slices.Contains(claims, v) {
						ours = true
					}
				}
				if !ours {
					continue
				}
				var missing []string
				for _, op := range want {
					if _, ok := ops[op]; !ok {
						missing = append(missing, op)
					}
				}
				if !services["watcher"] || !services["planner"] || !services["actuator"] || len(missing) > 0 {
					last = fmt.Sprintf("trace %s: services %v, missing spans %v", tr.TraceID, services, missing)
					continue
				}
				// The solve span describes the decision.
				for _, key := range []string{"flotilla.pods", "flotilla.nodes", "flotilla.plan.offerings", "flotilla.plan.price_per_hour"} {
					if _, ok := spanTag(tr, ops["solve"], key); !ok {
						last = fmt.Sprintf("trace %s: solve span lacks %s", tr.TraceID, key)
						return false, last
					}
				}
				// Every span but the batch's root has its parent in the trace.
				ids := map[string]bool{}
				for _, s := range tr.Spans {
					ids[s.SpanID] = true
				}
				for _, s := range tr.Spans {
					for _, r := range s.References {
						if r.RefType == "CHILD_OF" && !ids[r.SpanID] {
							last = fmt.Sprintf("trace %s: span %s has its parent outside the trace", tr.TraceID, s.OperationName)
							return false, last
						}
					}
				}
				t.Logf("trace %s: %d spans from %d services", tr.TraceID, len(tr.Spans), len(services))
				return true, ""
			}
			if last == "" {
				last = "no CreateFleet trace names the pool's NodeClaims yet"
			}
			return false, last
		})
	})

	t.Run("metrics of all three services", func(t *testing.T) {
		actuator := leaderOf(t, localenv.ProcActuator, actuatorService)
		watcher := leaderOf(t, localenv.ProcWatcher, watcherService)
		type check struct {
			proc, name string
			labels     []string
			atLeast    float64
		}
		checks := []check{
			{localenv.ProcPlanner, "karpenter_scheduler_scheduling_duration_seconds_count", []string{`method="reconcile"`}, 1},
			{localenv.ProcPlanner, "karpenter_scheduler_queue_depth", nil, 0},
			{actuator, "karpenter_nodeclaims_created_total", []string{`nodepool="` + pool + `"`, `reason="provisioning"`}, float64(len(claims))},
			{actuator, "karpenter_cloudprovider_duration_seconds_count", []string{`method="CreateFleet"`, `service="EC2"`}, 1},
			{actuator, "karpenter_cloudprovider_duration_seconds_count", []string{`method="DescribeInstances"`}, 1},
			{actuator, "flotilla_offerings_unavailable", []string{`capacity_type="spot"`}, 0},
			{watcher, "flotilla_pods_pending", nil, 0},
			{watcher, "flotilla_pods_nominated", nil, 0},
			{watcher, "karpenter_nodepools_usage", []string{`nodepool="` + pool + `"`, `resource_type="cpu"`}, 2},
			{watcher, "karpenter_nodepools_limit", []string{`nodepool="` + pool + `"`, `resource_type="cpu"`}, 100},
			{watcher, "flotilla_pods_pending_to_launch_duration_seconds_count", []string{`nodepool="` + pool + `"`}, 1},
		}
		texts := map[string]string{}
		for _, c := range checks {
			if _, ok := texts[c.proc]; !ok {
				texts[c.proc] = scrape(t, c.proc)
			}
			v, ok := metric(texts[c.proc], c.name, c.labels...)
			if !ok || v < c.atLeast {
				t.Errorf("%s: %s%v = %v (present %t), want ≥ %v", c.proc, c.name, c.labels, v, ok, c.atLeast)
			}
		}
		// Creation and Launched times have whole-second resolution in the
		// API, so a launch within the pod's first second observes 0 s; the
		// latencies are never negative and stay under the test's minute.
		sum, _ := metric(texts[watcher], "flotilla_pods_pending_to_launch_duration_seconds_sum", `nodepool="`+pool+`"`)
		count, _ := metric(texts[watcher], "flotilla_pods_pending_to_launch_duration_seconds_count", `nodepool="`+pool+`"`)
		if sum < 0 || count < 1 || sum/count > 60 {
			t.Errorf("pending → launch latency: %v observations summing to %v s, want at least one, each within a minute", count, sum)
		}
		// The standby replica answers metrics too (its own process).
		for _, name := range []string{localenv.ProcActuator + "-2", localenv.ProcWatcher + "-2"} {
			if _, ok := metric(scrape(t, name), "flotilla_build_info"); !ok {
				t.Errorf("%s: no flotilla_build_info", name)
			}
		}
	})
}
