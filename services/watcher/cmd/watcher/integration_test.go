package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/api/crds"
	karpv1 "github.com/flotilla-dev/flotilla/api/karpenter/v1"
	"github.com/flotilla-dev/flotilla/api/snapshot"
	actuatorv1 "github.com/flotilla-dev/flotilla/gen/flotilla/actuator/v1"
	clusterv1 "github.com/flotilla-dev/flotilla/gen/flotilla/cluster/v1"
	plannerv1 "github.com/flotilla-dev/flotilla/gen/flotilla/planner/v1"
	"github.com/flotilla-dev/flotilla/test/localenv"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"
)

// The tests here run the watcher (serve, as main runs it) against a real
// API server, scheduler and controller manager from localenv, with a fake
// planner and a fake actuator on loopback ports that record what reaches
// them. The fake planner places every pending pod that is not nominated on
// one new NodeClaim; the fake actuator creates that NodeClaim with the
// nominated-pods annotation, as the real one does.

var (
	gvrCRDs       = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	gvrNodeClaims = karpv1.SchemeGroupVersion.WithResource("nodeclaims")
)

type testCluster struct {
	env  *localenv.Env
	kube *kubernetes.Clientset
	dyn  *dynamic.DynamicClient
	path string
}

func startCluster(t *testing.T) *testCluster {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: skipped with -short")
	}
	env := localenv.StartT(t, localenv.Options{NoKubelet: true})
	cfg, err := env.RESTConfig()
	if err != nil {
		t.Fatal(err)
	}
	cfg.QPS, cfg.Burst = 2000, 2000
	c := &testCluster{env: env, path: env.Kubeconfig}
	if c.kube, err = kubernetes.NewForConfig(cfg); err != nil {
		t.Fatal(err)
	}
	if c.dyn, err = dynamic.NewForConfig(cfg); err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	for _, m := range crds.All() {
		obj := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(m.Data, &obj.Object); err != nil {
			t.Fatal(err)
		}
		if _, err := c.dyn.Resource(gvrCRDs).Create(ctx, obj, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatalf("create CRD %s: %v", m.Name, err)
		}
	}
	eventually(t, 30*time.Second, func() error {
		_, err := c.dyn.Resource(gvrNodeClaims).List(ctx, metav1.ListOptions{})
		return err
	})
	return c
}

func eventually(t *testing.T, d time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// fakePlanner keeps each stream's state and plans every pending,
// un-nominated pod of namespace onto one NodeClaim named after its pods.
type fakePlanner struct {
	plannerv1.UnimplementedPlannerServer
	namespace string

	mu        sync.Mutex
	active    int
	maxActive int
	streams   int
	snapshots []*clusterv1.Snapshot
	// plannedAt is when a pod was first put on a NodeClaim in a plan.
	planned map[string]int
}

func (p *fakePlanner) Reconcile(st plannerv1.Planner_ReconcileServer) error {
	p.mu.Lock()
	p.active++
	p.streams++
	p.maxActive = max(p.maxActive, p.active)
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.active--
		p.mu.Unlock()
	}()
	pods := map[string]*clusterv1.Pod{}
	var seq uint64
	for {
		req, err := st.Recv()
		if err != nil {
			return nil
		}
		ev := req.GetEvent()
		switch {
		case ev.GetSnapshot() != nil:
			pods = map[string]*clusterv1.Pod{}
			for _, pod := range ev.GetSnapshot().GetPods() {
				pods[pod.GetNamespace()+"/"+pod.GetName()] = pod
			}
			p.mu.Lock()
			p.snapshots = append(p.snapshots, ev.GetSnapshot())
			p.mu.Unlock()
		case ev.GetSequence() == seq+1:
			for _, ch := range ev.GetDelta().GetChanges() {
				if pod := ch.GetPod(); pod != nil {
					k := pod.GetNamespace() + "/" + pod.GetName()
					if ch.GetDeleted() {
						delete(pods, k)
					} else {
						pods[k] = pod
					}
				}
			}
		default:
			if err := st.Send(&plannerv1.ReconcileResponse{AckedSequence: seq, Resync: true}); err != nil {
				return nil
			}
			continue
		}
		seq = ev.GetSequence()
		resp := &plannerv1.ReconcileResponse{AckedSequence: seq}
		var pending []string
		for k, pod := range pods {
			if pod.GetNamespace() == p.namespace && pod.GetNodeName() == "" && pod.GetNominatedNodeClaim() == "" {
				pending = append(pending, k)
			}
		}
		if len(pending) > 0 {
			sort.Strings(pending)
			sum := sha256.Sum256([]byte(strings.Join(pending, ",")))
			resp.Plan = &clusterv1.Plan{Id: hex.EncodeToString(sum[:4]), Sequence: seq, NodeClaims: []*clusterv1.NodeClaimPlan{{
				Name: "nc-" + hex.EncodeToString(sum[:6]), NodePool: "default", NodeClass: "default", InstanceType: "m5.large", Pods: pending,
			}}}
		}
		if err := st.Send(resp); err != nil {
			return nil
		}
	}
}

func (p *fakePlanner) stats() (streams, maxActive, active int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.streams, p.maxActive, p.active
}

// fakeActuator creates the NodeClaims of each plan, once, with the
// nominated-pods annotation.
type fakeActuator struct {
	actuatorv1.UnimplementedActuatorServer
	dyn dynamic.Interface

	mu sync.Mutex
	// launches lists every NodeClaim created, with its pods and the time
	// Execute asked for it.
	launches []launch
	executes int
}

type launch struct {
	name string
	pods []string
	at   time.Time
}

func (a *fakeActuator) Execute(ctx context.Context, req *actuatorv1.ExecuteRequest) (*actuatorv1.ExecuteResponse, error) {
	at := time.Now()
	resp := &actuatorv1.ExecuteResponse{}
	a.mu.Lock()
	a.executes++
	a.mu.Unlock()
	for _, nc := range req.GetPlan().GetNodeClaims() {
		obj := &karpv1.NodeClaim{
			TypeMeta: metav1.TypeMeta{APIVersion: karpv1.SchemeGroupVersion.String(), Kind: "NodeClaim"},
			ObjectMeta: metav1.ObjectMeta{
				Name:        nc.GetName(),
				Labels:      map[string]string{karpv1.NodePoolLabelKey: nc.GetNodePool()},
				Annotations: map[string]string{snapshot.AnnotationNominatedPods: snapshot.FormatNominatedPods(nc.GetPods())},
			},
			Spec: karpv1.NodeClaimSpec{
				Requirements: []karpv1.NodeSelectorRequirementWithMinValues{{Key: karpv1.LabelInstanceType, Operator: corev1.NodeSelectorOpIn, Values: []string{nc.GetInstanceType()}}},
				NodeClassRef: karpv1.NodeClassReference{Group: "karpenter.k8s.aws", Kind: "EC2NodeClass", Name: nc.GetNodeClass()},
			},
		}
		m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
		if err != nil {
			return nil, err
		}
		outcome := actuatorv1.Outcome_OUTCOME_CREATED
		if _, err := a.dyn.Resource(gvrNodeClaims).Create(ctx, &unstructured.Unstructured{Object: m}, metav1.CreateOptions{}); apierrors.IsAlreadyExists(err) {
			outcome = actuatorv1.Outcome_OUTCOME_EXISTS
		} else if err != nil {
			return nil, err
		}
		if outcome == actuatorv1.Outcome_OUTCOME_CREATED {
			a.mu.Lock()
			a.launches = append(a.launches, launch{name: nc.GetName(), pods: nc.GetPods(), at: at})
			a.mu.Unlock()
		}
		resp.Results = append(resp.Results, &actuatorv1.NodeClaimResult{Name: nc.GetName(), Outcome: outcome, Pods: nc.GetPods()})
	}
	return resp, nil
}

func (a *fakeActuator) ListInstanceTypes(context.Context, *actuatorv1.ListInstanceTypesRequest) (*actuatorv1.ListInstanceTypesResponse, error) {
	return &actuatorv1.ListInstanceTypesResponse{Region: "us-east-1", InstanceTypes: []*clusterv1.InstanceType{{
		Name: "m5.large", Arch: "amd64", Capacity: &clusterv1.Resources{CpuMillis: 2000, MemoryBytes: 8 << 30, Pods: 29},
		Offerings: []*clusterv1.Offering{{Zone: "us-east-1a", CapacityType: "on-demand", PricePerHour: 0.096, Available: true}},
	}}}, nil
}

func (a *fakeActuator) snapshot() []launch {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.launches)
}

// grpcServer serves on a fixed loopback address until stopped.
type grpcServer struct {
	addr string
	srv  *grpc.Server
}

func serveGRPC(t *testing.T, addr string, register func(*grpc.Server)) *grpcServer {
	t.Helper()
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	s := &grpcServer{addr: lis.Addr().String(), srv: grpc.NewServer()}
	register(s.srv)
	go func() { _ = s.srv.Serve(lis) }()
	t.Cleanup(s.srv.Stop)
	return s
}

func freeAddr(t *testing.T) string {
	t.Helper()
	port, err := localenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return "127.0.0.1:" + strconv.Itoa(port)
}

// startWatcher runs serve until the returned stop is called (or the test
// ends).
func startWatcher(t *testing.T, f flags) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	go func() { done <- serve(ctx, f, logger) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("serve: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func baseFlags(c *testCluster, plannerAddr, actuatorAddr string) flags {
	return flags{
		kubeconfig: c.path, kubeQPS: 500, kubeBurst: 1000,
		plannerAddr: plannerAddr, actuatorAddr: actuatorAddr,
		// The burst is created by 32 clients on a busy 2-core machine: give
		// it a wider idle window than the default so it stays one burst.
		idleWindow: 500 * time.Millisecond, maxBatchWait: 10 * time.Second, ackTimeout: time.Minute,
		region: "us-east-1", catalogRefresh: time.Hour, nominationTTL: 2 * time.Minute, executeTimeout: time.Minute,
		leaseDuration: 3 * time.Second, logFormat: "text", logLevel: "warn", shutdownGrace: time.Second,
		initialCatalogW: 5 * time.Second,
	}
}

func waitServing(t *testing.T, addr string) {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	health := healthpb.NewHealthClient(conn)
	eventually(t, 60*time.Second, func() error {
		resp, err := health.Check(t.Context(), &healthpb.HealthCheckRequest{})
		if err != nil {
			return err
		}
		if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			return fmt.Errorf("watcher health %v", resp.GetStatus())
		}
		return nil
	})
}

func createNamespace(t *testing.T, c *testCluster, name string) {
	t.Helper()
	if _, err := c.kube.CoreV1().Namespaces().Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestBurstOfPendingPods(t *testing.T) {
	c := startCluster(t)
	const ns, n = "burst", 1000
	createNamespace(t, c, ns)
	planner := &fakePlanner{namespace: ns}
	actuator := &fakeActuator{dyn: c.dyn}
	plannerSrv := serveGRPC(t, "127.0.0.1:0", func(s *grpc.Server) { plannerv1.RegisterPlannerServer(s, planner) })
	actuatorSrv := serveGRPC(t, "127.0.0.1:0", func(s *grpc.Server) { actuatorv1.RegisterActuatorServer(s, actuator) })
	f := baseFlags(c, plannerSrv.addr, actuatorSrv.addr)
	f.listen = freeAddr(t)
	f.leaderElect = false
	// Creating 1,000 pods takes several seconds on a busy 2-core machine,
	// with pauses: a 1s idle window (and no practical maximum) keeps the
	// whole burst one batch. The defaults are covered by the stream's unit
	// tests.
	f.idleWindow, f.maxBatchWait = time.Second, time.Minute
	startWatcher(t, f)
	waitServing(t, f.listen)

	// The reference clock of a pod is the moment the API server answered
	// its create call: it exists from then on.
	ctx := t.Context()
	var seenMu sync.Mutex
	seen := map[string]time.Time{}
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	work := make(chan int, n)
	for i := range n {
		work <- i
	}
	close(work)
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				p := &corev1.Pod{
					ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("p-%04d", i), Labels: map[string]string{"app": "burst"}},
					Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "registry.local/app:1",
						Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")}}}}},
				}
				if _, err := c.kube.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
					errs <- err
					continue
				}
				seenMu.Lock()
				seen[ns+"/"+p.Name] = time.Now()
				seenMu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("create pod: %v", err)
	}
	t.Logf("created %d pods in %s", n, time.Since(start).Round(time.Millisecond))

	// Every pod ends up on exactly one NodeClaim.
	eventually(t, 60*time.Second, func() error {
		covered := 0
		for _, l := range actuator.snapshot() {
			covered += len(l.pods)
		}
		if covered < n {
			return fmt.Errorf("%d of %d pods launched for", covered, n)
		}
		return nil
	})
	time.Sleep(2 * time.Second) // anything more that would come
	launches := actuator.snapshot()
	count := map[string]int{}
	for _, l := range launches {
		for _, p := range l.pods {
			count[p]++
		}
	}
	for p, k := range count {
		if k != 1 {
			t.Errorf("pod %s was launched for %d times", p, k)
		}
	}
	if len(launches) != 1 {
		t.Errorf("the burst gave %d NodeClaims, want 1", len(launches))
	}

	// Latency from the API server's watch to the Execute that launched for
	// the pod.
	seenMu.Lock()
	var lat []time.Duration
	var last time.Time
	for _, at := range seen {
		if at.After(last) {
			last = at
		}
	}
	t.Logf("last pod created → first Execute: %s", launches[0].at.Sub(last).Round(time.Millisecond))
	for _, l := range launches {
		for _, p := range l.pods {
			if s, ok := seen[p]; ok {
				lat = append(lat, l.at.Sub(s))
			}
		}
	}
	seenMu.Unlock()
	slices.Sort(lat)
	if len(lat) > 0 {
		t.Logf("pod created → Execute latency over %d pods: p50 %s, p99 %s, max %s (idle window %s)", len(lat),
			lat[len(lat)/2].Round(time.Millisecond), lat[len(lat)*99/100].Round(time.Millisecond), lat[len(lat)-1].Round(time.Millisecond), f.idleWindow)
	}

	// The nominated pods are not planned again: not in the deltas that keep
	// coming (the scheduler marks them Unschedulable), and not after the
	// planner restarts and gets a fresh snapshot.
	plannerSrv.srv.Stop()
	restarted := &fakePlanner{namespace: ns}
	serveGRPC(t, plannerSrv.addr, func(s *grpc.Server) { plannerv1.RegisterPlannerServer(s, restarted) })
	eventually(t, 30*time.Second, func() error {
		restarted.mu.Lock()
		defer restarted.mu.Unlock()
		if len(restarted.snapshots) == 0 {
			return fmt.Errorf("the restarted planner got no snapshot")
		}
		launchedFor := map[string]string{}
		for _, l := range launches {
			for _, p := range l.pods {
				launchedFor[p] = l.name
			}
		}
		nominated := 0
		for _, p := range restarted.snapshots[0].GetPods() {
			if k := p.GetNamespace() + "/" + p.GetName(); p.GetNominatedNodeClaim() != "" && p.GetNominatedNodeClaim() == launchedFor[k] {
				nominated++
			}
		}
		if nominated != n {
			return fmt.Errorf("snapshot after the restart has %d of %d pods nominated", nominated, n)
		}
		return nil
	})
	time.Sleep(time.Second)
	if got := len(actuator.snapshot()); got != len(launches) {
		t.Errorf("after the planner restart %d NodeClaims were launched, want %d (none repeated)", got, len(launches))
	}

	// A NodeClaim fails to launch and is deleted: its pods are released
	// and planned again.
	claim, released := launches[0].name, len(launches[0].pods)
	u, err := c.dyn.Resource(gvrNodeClaims).Get(ctx, claim, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_ = unstructured.SetNestedSlice(u.Object, []any{map[string]any{
		"type": "Launched", "status": "False", "reason": "InsufficientCapacity", "message": "no capacity", "lastTransitionTime": time.Now().UTC().Format(time.RFC3339),
	}}, "status", "conditions")
	if _, err := c.dyn.Resource(gvrNodeClaims).UpdateStatus(ctx, u, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := c.dyn.Resource(gvrNodeClaims).Delete(ctx, claim, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() error {
		if got := len(actuator.snapshot()); got <= len(launches) {
			return fmt.Errorf("no new NodeClaim after %s failed", claim)
		}
		return nil
	})
	relaunch := actuator.snapshot()[len(launches)]
	if len(relaunch.pods) != released {
		t.Errorf("the relaunch holds %d pods, want the %d released ones", len(relaunch.pods), released)
	}
}

func TestLeaderFailover(t *testing.T) {
	c := startCluster(t)
	planner := &fakePlanner{namespace: "none"}
	actuator := &fakeActuator{dyn: c.dyn}
	plannerSrv := serveGRPC(t, "127.0.0.1:0", func(s *grpc.Server) { plannerv1.RegisterPlannerServer(s, planner) })
	actuatorSrv := serveGRPC(t, "127.0.0.1:0", func(s *grpc.Server) { actuatorv1.RegisterActuatorServer(s, actuator) })

	replica := func() (flags, func()) {
		f := baseFlags(c, plannerSrv.addr, actuatorSrv.addr)
		f.listen = freeAddr(t)
		f.leaderElect = true
		f.leaseNamespace = "kube-system"
		f.leaseName = "watcher-failover-test"
		return f, startWatcher(t, f)
	}
	a, stopA := replica()
	b, stopB := replica()

	// Exactly one replica streams.
	eventually(t, 30*time.Second, func() error {
		if _, _, active := planner.stats(); active != 1 {
			return fmt.Errorf("%d streams open, want 1", active)
		}
		return nil
	})
	leader, other, stopLeader := a, b, stopA
	if serving(t, b.listen) {
		leader, other, stopLeader = b, a, stopB
	}
	if !serving(t, leader.listen) || serving(t, other.listen) {
		t.Fatalf("readiness: leader serving %v, standby serving %v", serving(t, leader.listen), serving(t, other.listen))
	}
	streamsBefore, _, _ := planner.stats()

	// The leader goes away; the standby takes over within 15s.
	stopLeader()
	killed := time.Now()
	eventually(t, 15*time.Second, func() error {
		streams, _, active := planner.stats()
		if streams <= streamsBefore || active != 1 {
			return fmt.Errorf("no new stream yet (%d streams, %d open)", streams, active)
		}
		return nil
	})
	waitServing(t, other.listen)
	t.Logf("standby took over %s after the leader stopped", time.Since(killed).Round(time.Millisecond))
	if _, maxActive, _ := planner.stats(); maxActive != 1 {
		t.Errorf("at one point %d replicas streamed at once", maxActive)
	}
}

func serving(t *testing.T, addr string) bool {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	return err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING
}
