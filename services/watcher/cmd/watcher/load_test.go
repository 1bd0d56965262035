package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"text/tabwriter"
	"time"

	actuatorv1 "github.com/flotilla-dev/flotilla/gen/flotilla/actuator/v1"
	plannerv1 "github.com/flotilla-dev/flotilla/gen/flotilla/planner/v1"
	watcherv1 "github.com/flotilla-dev/flotilla/gen/flotilla/watcher/v1"
	"github.com/flotilla-dev/flotilla/test/localenv"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
)

// TestLoad is the watcher's load test, run by `make load-watcher` (it takes
// 10–20 minutes and is skipped unless FLOTILLA_LOAD is set). It fills a
// local API server with FLOTILLA_LOAD_NODES nodes (default 5,000) and
// FLOTILLA_LOAD_PODS pods bound to them (default 100,000), starts the real
// watcher binary against it (a fake planner and actuator in this process
// answer it) and measures, from outside the process:
//
//   - memory: VmRSS and VmHWM from /proc/<pid>/status, after the initial
//     sync, after snapshots, and at the end;
//   - snapshot build: the time the watcher logs for building the planner's
//     snapshot, on the first stream and on a reconnect, and the round trip of
//     the Watcher.StreamSnapshot RPC (the unary Snapshot refuses a
//     picture this large);
//   - CPU: user + system time from /proc/<pid>/stat, idle and while the
//     cluster changes 100 pods per second for FLOTILLA_LOAD_CHURN (default
//     1m);
//   - latency: a burst of 1,000 pending pods created at once, from each
//     pod's creation (as a separate watch saw it) to the Execute call that
//     launched for it, on the default batching timings.
//
// With FLOTILLA_LOAD_PROFILE=<dir> the watcher serves pprof and the test
// saves a heap profile after the snapshots and a CPU profile of the churn
// there (go tool pprof <dir>/churn-cpu.pprof).
//
// It fails when the watcher loses changes, launches for a pod twice or
// misses one, or when its memory passes 300 MiB; speed figures are
// reported with the machine's load, not asserted.
//
// The nodes carry no kwok annotation and the pods are created bound
// (spec.nodeName set), so they stay Pending: neither kwok nor a kubelet has
// to run 100,000 pods, which this machine could not, and the watcher sees
// what it would see of real ones (it reads spec, not runtime status). The
// controller manager is stopped once the namespaces have their service
// accounts: with no kubelet heartbeats its node lifecycle controller would
// otherwise taint every node and evict every pod.
func TestLoad(t *testing.T) {
	if os.Getenv("FLOTILLA_LOAD") == "" {
		t.Skip("load test: run it with make load-watcher (FLOTILLA_LOAD=1)")
	}
	size := loadSize{
		nodes:      envInt(t, "FLOTILLA_LOAD_NODES", 5000),
		pods:       envInt(t, "FLOTILLA_LOAD_PODS", 100_000),
		workloads:  500,
		namespaces: 10,
		burst:      envInt(t, "FLOTILLA_LOAD_BURST", 1000),
		churnRate:  100,
		churnFor:   envDuration(t, "FLOTILLA_LOAD_CHURN", time.Minute),
	}
	r := &loadReport{}
	t.Cleanup(func() { r.print(t) })
	ctx := t.Context()

	bin := watcherBinary(t)
	env := localenv.StartT(t, localenv.Options{NoKubelet: true})
	if err := env.InstallCRDs(ctx); err != nil {
		t.Fatal(err)
	}
	cfg, err := env.RESTConfig()
	if err != nil {
		t.Fatal(err)
	}
	clients := fastClients(t, cfg, 4)
	kube := clients[0]
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}

	// Namespaces, then no controller manager (see above).
	namespaces := []string{"burst"}
	for i := range size.namespaces {
		namespaces = append(namespaces, loadNamespace(i))
	}
	for _, ns := range namespaces {
		if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, ns := range namespaces {
		eventually(t, time.Minute, func() error {
			_, err := kube.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
			return err
		})
	}
	if err := env.StopProcess(ctx, localenv.ProcControllerManager); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	if err := parallel(ctx, clients, 32, size.nodes, func(ctx context.Context, c kubernetes.Interface, i int) error {
		_, err := c.CoreV1().Nodes().Create(ctx, loadNode(i), metav1.CreateOptions{})
		return err
	}); err != nil {
		t.Fatalf("create nodes: %v", err)
	}
	r.add("create nodes", fmt.Sprintf("%d nodes, 32 clients", size.nodes), rate(size.nodes, time.Since(start)), "")
	nodeNames := make([]string, size.nodes)
	for i := range nodeNames {
		nodeNames[i] = loadNode(i).Name
	}
	workloads := loadWorkloads(size.workloads, size.namespaces)
	podAt := func(i int) *corev1.Pod {
		w := workloads[i%len(workloads)]
		return w.pod(fmt.Sprintf("%s-%s-%06d", w.app, w.hash, i), nodeNames[i%len(nodeNames)])
	}
	start = time.Now()
	if err := parallel(ctx, clients, 64, size.pods, func(ctx context.Context, c kubernetes.Interface, i int) error {
		p := podAt(i)
		_, err := c.CoreV1().Pods(p.Namespace).Create(ctx, p, metav1.CreateOptions{})
		return err
	}); err != nil {
		t.Fatalf("create pods: %v", err)
	}
	r.add("create pods", fmt.Sprintf("%d pods, 64 clients", size.pods), rate(size.pods, time.Since(start)), "")

	// The fakes, then the watcher.
	planner := &fakePlanner{namespace: "burst", lean: true}
	actuator := &fakeActuator{dyn: dyn}
	plannerSrv := serveGRPC(t, "127.0.0.1:0", func(s *grpc.Server) { plannerv1.RegisterPlannerServer(s, planner) })
	actuatorSrv := serveGRPC(t, "127.0.0.1:0", func(s *grpc.Server) { actuatorv1.RegisterActuatorServer(s, actuator) })
	listen := freeAddr(t)
	argv := []string{bin, "--kubeconfig=" + env.Kubeconfig, "--listen=" + listen, "--planner-addr=" + plannerSrv.addr,
		"--actuator-addr=" + actuatorSrv.addr, "--leader-elect=false", "--cluster-name=load", "--log-format=json", "--log-level=info"}
	prof := newProfiler(t, os.Getenv("FLOTILLA_LOAD_PROFILE"))
	if prof != nil {
		argv = append(argv, "--pprof-addr="+prof.addr)
	}
	start = time.Now()
	var watcherEnv []string
	if procs := os.Getenv("FLOTILLA_LOAD_GOMAXPROCS"); procs != "" {
		watcherEnv = append(watcherEnv, "GOMAXPROCS="+procs)
	}
	if err := env.StartProcess(ctx, localenv.Process{
		Name:         "watcher",
		Argv:         argv,
		Env:          watcherEnv,
		Ready:        healthy(listen, "liveness"),
		ReadyTimeout: time.Minute,
	}); err != nil {
		t.Fatal(err)
	}
	pid := processID(t, env, "watcher")
	mem := watchMemory(t, pid)
	logFile := env.LogFile("watcher")
	synced := waitLog(t, logFile, "informers_synced", 15*time.Minute)
	r.add("initial sync", fmt.Sprintf("%d nodes, %d pods", size.nodes, size.pods), synced.at.Sub(start).Round(time.Millisecond).String(), "")
	eventually(t, 10*time.Minute, func() error { return healthy(listen, "")(ctx) })
	snapAt, snapPods, _ := planner.received()
	if len(snapPods) != 1 || snapPods[0] < size.pods {
		t.Fatalf("the planner got snapshots of %v pods, want one of %d", snapPods, size.pods)
	}
	r.add("start → snapshot at planner", fmt.Sprintf("%d pods", snapPods[0]), snapAt[0].Sub(start).Round(time.Millisecond).String(), "")
	sent := waitLog(t, logFile, "snapshot_sent", time.Minute)
	r.add("snapshot build (new stream)", fmt.Sprintf("%d objects", sent.objects), sent.build, "≤ 1s")
	r.add("snapshot send (marshal + write)", fmt.Sprintf("%d objects", sent.objects), sent.send, "")
	time.Sleep(5 * time.Second) // let the sync's garbage go
	rss, hwm := mem.now(t)
	r.add("RSS after sync", fmt.Sprintf("%d nodes, %d pods", size.nodes, size.pods), fmt.Sprintf("%s (peak %s)", mib(rss), mib(hwm)), "≤ 300 MiB")

	// The snapshot RPCs: the same build, plus marshalling and the
	// transfer. The whole picture is too large for one answer.
	conn, err := grpc.NewClient(listen, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(256<<20)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	watcherClient := watcherv1.NewWatcherClient(conn)
	unary := "answered"
	if _, err := watcherClient.Snapshot(ctx, &watcherv1.SnapshotRequest{}); status.Code(err) == codes.ResourceExhausted {
		unary = "refused: " + status.Convert(err).Message()
	} else if err != nil {
		t.Fatalf("unary Snapshot of %d pods: %v, want an answer or ResourceExhausted", size.pods, err)
	}
	r.add("unary Snapshot", fmt.Sprintf("%d pods", size.pods), unary, "")
	var rpc []time.Duration
	for range 5 {
		began := time.Now()
		pods, err := streamedPods(ctx, watcherClient)
		if err != nil {
			t.Fatal(err)
		}
		rpc = append(rpc, time.Since(began))
		if pods < size.pods {
			t.Fatalf("StreamSnapshot: %d pods, want %d", pods, size.pods)
		}
	}
	slices.Sort(rpc)
	r.add("StreamSnapshot round trip", fmt.Sprintf("%d pods, median of 5", size.pods), rpc[2].Round(time.Millisecond).String(), "")

	// A planner restart: the watcher reconnects with a new snapshot.
	plannerSrv.srv.Stop()
	plannerSrv = serveGRPC(t, plannerSrv.addr, func(s *grpc.Server) { plannerv1.RegisterPlannerServer(s, planner) })
	eventually(t, 2*time.Minute, func() error {
		if at, _, _ := planner.received(); len(at) < 2 {
			return fmt.Errorf("no snapshot after the planner restart")
		}
		return nil
	})
	resent := waitLogN(t, logFile, "snapshot_sent", 2, time.Minute)
	r.add("snapshot build (reconnect)", fmt.Sprintf("%d objects", resent.objects), resent.build, "≤ 1s")
	rss, hwm = mem.now(t)
	r.add("RSS after snapshots", "", fmt.Sprintf("%s (peak %s)", mib(rss), mib(hwm)), "≤ 300 MiB")
	prof.save(t, "heap", "heap.pprof")

	// CPU: idle, then 100 pod changes a second.
	time.Sleep(5 * time.Second)
	r.add("CPU idle", "30s, no changes", cpuOver(t, pid, 30*time.Second, nil), "")
	_, _, before := planner.received()
	var res churnResult
	cpuProfile := prof.cpu(t, size.churnFor-5*time.Second, "churn-cpu.pprof")
	cpu := cpuOver(t, pid, size.churnFor, func(ctx context.Context) {
		res = churn(ctx, clients, podAt, size)
	})
	cpuProfile()
	r.add("CPU at 100 pod changes/s", fmt.Sprintf("%s: %s", size.churnFor, res), cpu, "≤ 10% of a core")
	eventually(t, time.Minute, func() error {
		// Every change that alters the model reaches the planner; status
		// changes may (the first one turns a pod Running) or may not.
		if _, _, after := planner.received(); after-before < res.modelChanges() {
			return fmt.Errorf("the planner got %d pod changes, want at least %d", after-before, res.modelChanges())
		}
		return nil
	})
	if res.errors > 0 {
		t.Errorf("%d churn calls failed", res.errors)
	}

	// A burst of pending pods, on the default timings.
	watched := creations(t, kube, "burst")
	burst, returned := createPending(t, clients, "burst", "p", size.burst)
	eventually(t, 2*time.Minute, func() error {
		covered := 0
		for _, l := range actuator.snapshot() {
			covered += len(l.pods)
		}
		if covered < size.burst {
			return fmt.Errorf("%d of %d pods launched for", covered, size.burst)
		}
		return nil
	})
	time.Sleep(2 * time.Second)
	launches := actuator.snapshot()
	checkLaunchedOnce(t, launches, burst)
	lat := launchLatencies(creationTimes(t, watched, returned, burst), launches)
	r.add("burst: created → Execute p50", fmt.Sprintf("%d pods in %s, %d NodeClaims", lat.n, lat.spread.Round(time.Millisecond), len(launches)), lat.p50.Round(time.Millisecond).String(), "≤ 1s")
	r.add("burst: created → Execute p99", "", lat.p99.Round(time.Millisecond).String(), "≤ 2s")
	r.add("burst: created → Execute max", "", lat.max.Round(time.Millisecond).String(), "")

	rss, hwm = mem.now(t)
	r.add("RSS at the end", "", fmt.Sprintf("%s (peak %s, sampled max %s)", mib(rss), mib(hwm), mib(mem.max())), "≤ 300 MiB")
	if hwm > 300<<20 {
		t.Errorf("watcher peak RSS %s, want at most 300 MiB", mib(hwm))
	}
}

type loadSize struct {
	nodes, pods, workloads, namespaces, burst, churnRate int
	churnFor                                             time.Duration
}

// watcherBinary builds the watcher (or takes $FLOTILLA_BIN/watcher).
func watcherBinary(t *testing.T) string {
	t.Helper()
	if dir := os.Getenv("FLOTILLA_BIN"); dir != "" {
		return filepath.Join(dir, "watcher")
	}
	bin := filepath.Join(t.TempDir(), "watcher")
	out, err := exec.CommandContext(t.Context(), "go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("build watcher: %v\n%s", err, out)
	}
	return bin
}

// healthy checks a grpc.health.v1 service of addr for SERVING.
func healthy(addr, service string) func(context.Context) error {
	return func(ctx context.Context) error {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return err
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
		if err != nil {
			return err
		}
		if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			return fmt.Errorf("%s %q is %s", addr, service, resp.GetStatus())
		}
		return nil
	}
}

func processID(t *testing.T, env *localenv.Env, name string) int {
	t.Helper()
	st, err := env.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st {
		if s.Name == name && s.Alive {
			return s.PID
		}
	}
	t.Fatalf("process %s is not running", name)
	return 0
}

// memoryWatch samples a process's resident set every 200ms.
type memoryWatch struct {
	pid     int
	mu      sync.Mutex
	maxSeen int64
}

func watchMemory(t *testing.T, pid int) *memoryWatch {
	m := &memoryWatch{pid: pid}
	ctx := t.Context()
	go func() {
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			rss, _, err := procMem(pid)
			if err != nil {
				return
			}
			m.mu.Lock()
			m.maxSeen = max(m.maxSeen, rss)
			m.mu.Unlock()
		}
	}()
	return m
}

func (m *memoryWatch) now(t *testing.T) (rss, hwm int64) {
	t.Helper()
	rss, hwm, err := procMem(m.pid)
	if err != nil {
		t.Fatal(err)
	}
	return rss, hwm
}

func (m *memoryWatch) max() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.maxSeen
}

// streamedPods receives a whole StreamSnapshot and counts its pods.
func streamedPods(ctx context.Context, c watcherv1.WatcherClient) (int, error) {
	parts, err := c.StreamSnapshot(ctx, &watcherv1.StreamSnapshotRequest{})
	if err != nil {
		return 0, err
	}
	pods := 0
	for {
		part, err := parts.Recv()
		if err == io.EOF {
			return pods, nil
		}
		if err != nil {
			return pods, err
		}
		pods += len(part.GetSnapshot().GetPods())
	}
}

// cpuOver returns the CPU a process used over d, while work (if any) runs,
// as a share of one core.
func cpuOver(t *testing.T, pid int, d time.Duration, work func(context.Context)) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	defer cancel()
	before, err := procCPU(pid)
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	if work != nil {
		work(ctx)
	}
	<-ctx.Done()
	after, err := procCPU(pid)
	if err != nil {
		t.Fatal(err)
	}
	wall := time.Since(began)
	return fmt.Sprintf("%.1f%% of a core (%s CPU in %s)", 100*float64(after-before)/float64(wall), after-before, wall.Round(time.Second))
}

// churnResult counts what churn did.
type churnResult struct {
	status, labels, creates, deletes, errors, late int64
	elapsed                                        time.Duration
}

func (c churnResult) modelChanges() int { return int(c.labels + c.creates + c.deletes) }

func (c churnResult) String() string {
	total := c.status + c.labels + c.creates + c.deletes
	return fmt.Sprintf("%.0f changes/s (%d status, %d label, %d create, %d delete; %d late)",
		float64(total)/c.elapsed.Seconds(), c.status, c.labels, c.creates, c.deletes, c.late)
}

// churn changes size.churnRate pods a second until ctx ends, as a busy
// cluster does: 40% status updates (a kubelet reporting readiness), 20%
// label changes, 20% new pods and 20% deleted ones. Each change touches a
// different pod, so none coalesce.
func churn(ctx context.Context, clients []kubernetes.Interface, podAt func(int) *corev1.Pod, size loadSize) churnResult {
	var res churnResult
	var status, labels, deletes atomic.Int64
	ops := make(chan int, 2*size.churnRate)
	var wg sync.WaitGroup
	for w := range 64 {
		client := clients[w%len(clients)]
		wg.Go(func() {
			for op := range ops {
				var err error
				switch op % 10 {
				case 0, 1, 2, 3:
					p := podAt(int(status.Add(1)) * 2)
					ready := fmt.Sprintf(`{"type":"Ready","status":%q,"lastTransitionTime":%q}`, []string{"True", "False"}[op%2], time.Now().UTC().Format(time.RFC3339))
					patch := `{"status":{"phase":"Running","podIP":"10.244.0.9","conditions":[` + ready + `]}}`
					_, err = client.CoreV1().Pods(p.Namespace).Patch(ctx, p.Name, types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{}, "status")
					atomic.AddInt64(&res.status, 1)
				case 4, 5:
					p := podAt(int(labels.Add(1))*2 + 1)
					patch := fmt.Sprintf(`{"metadata":{"labels":{"rollout":"r%d"}}}`, op)
					_, err = client.CoreV1().Pods(p.Namespace).Patch(ctx, p.Name, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
					atomic.AddInt64(&res.labels, 1)
				case 6, 7:
					p := podAt(size.pods + op) // a new pod, past the initial ones
					_, err = client.CoreV1().Pods(p.Namespace).Create(ctx, p, metav1.CreateOptions{})
					atomic.AddInt64(&res.creates, 1)
				case 8, 9:
					p := podAt(size.pods - int(deletes.Add(1)))
					err = client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: new(int64(0))})
					atomic.AddInt64(&res.deletes, 1)
				}
				if err != nil && ctx.Err() == nil {
					atomic.AddInt64(&res.errors, 1)
				}
			}
		})
	}
	began := time.Now()
	tick := time.NewTicker(time.Second / time.Duration(size.churnRate))
	defer tick.Stop()
loop:
	for op := 0; ; op++ {
		select {
		case <-ctx.Done():
			break loop
		case <-tick.C:
		}
		select {
		case ops <- op:
		default:
			res.late++
		}
	}
	close(ops)
	wg.Wait()
	res.elapsed = time.Since(began)
	return res
}

// logLine is a line of the watcher's JSON log.
type logLine struct {
	at      time.Time
	objects int
	build   string
	send    string
}

func waitLog(t *testing.T, path, msg string, d time.Duration) logLine {
	t.Helper()
	return waitLogN(t, path, msg, 1, d)
}

// waitLogN waits for the nth line with msg in the watcher's log.
func waitLogN(t *testing.T, path, msg string, n int, d time.Duration) logLine {
	t.Helper()
	var found logLine
	eventually(t, d, func() error {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		seen := 0
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var l struct {
				Time    time.Time `json:"time"`
				Msg     string    `json:"msg"`
				Objects int       `json:"objects"`
				Build   string    `json:"build"`
				Send    string    `json:"send"`
			}
			if json.Unmarshal(sc.Bytes(), &l) != nil || l.Msg != msg {
				continue
			}
			if seen++; seen == n {
				found = logLine{at: l.Time, objects: l.Objects, build: l.Build, send: l.Send}
				return nil
			}
		}
		return fmt.Errorf("%s: %d %q lines, want %d", path, seen, msg, n)
	})
	return found
}

// loadReport collects the figures and prints them as a table.
type loadReport struct {
	mu   sync.Mutex
	rows [][4]string
	load []string
}

func (r *loadReport) add(name, input, result, target string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rows = append(r.rows, [4]string{name, input, result, target})
	r.load = append(r.load, loadAvg())
}

func (r *loadReport) print(t *testing.T) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "figure\tinput\tresult\ttarget\tmachine (2 cores)")
	for i, row := range r.rows {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", row[0], row[1], row[2], row[3], r.load[i])
	}
	_ = w.Flush()
	t.Logf("watcher load test:\n%s", b.String())
}

func rate(n int, d time.Duration) string {
	return fmt.Sprintf("%.0f/s (%s)", float64(n)/d.Seconds(), d.Round(time.Second))
}

func mib(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return n
}

func envDuration(t *testing.T, name string, def time.Duration) time.Duration {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return d
}
