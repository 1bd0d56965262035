package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	karpv1 "github.com/flotilla-dev/flotilla/api/karpenter/v1"
	"github.com/flotilla-dev/flotilla/api/snapshot"
	actuatorv1 "github.com/flotilla-dev/flotilla/gen/flotilla/actuator/v1"
	clusterv1 "github.com/flotilla-dev/flotilla/gen/flotilla/cluster/v1"
	plannerv1 "github.com/flotilla-dev/flotilla/gen/flotilla/planner/v1"
	"github.com/flotilla-dev/flotilla/test/localenv"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic"
)

// The fakes stand in for the planner and the actuator on loopback ports and
// record what reaches them.

// fakePlanner keeps each stream's state and plans every pending,
// un-nominated pod of namespace onto one NodeClaim named after its pods.
type fakePlanner struct {
	plannerv1.UnimplementedPlannerServer
	namespace string
	// unschedulable, when set, returns why no capacity fits a pod, or ""
	// when it fits; unschedulable pods are reported, not placed.
	unschedulable func(*clusterv1.Pod) string
	// lean keeps no snapshots, only when they arrived (a snapshot of
	// 100,000 pods is large).
	lean bool

	mu        sync.Mutex
	active    int
	maxActive int
	streams   int
	snapshots []*clusterv1.Snapshot
	// snapshotAt is when each snapshot arrived, snapshotPods how many pods
	// it held.
	snapshotAt   []time.Time
	snapshotPods []int
	// podChanges counts the pod changes received in deltas.
	podChanges int
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
	// whole collects a snapshot's parts (only their pods when lean).
	var whole *clusterv1.Snapshot
	for {
		req, err := st.Recv()
		if err != nil {
			return nil
		}
		ev := req.GetEvent()
		switch {
		case ev.GetSnapshot() != nil:
			if whole == nil || ev.GetSequence() != seq+1 {
				whole = &clusterv1.Snapshot{}
				pods = map[string]*clusterv1.Pod{}
			}
			for _, pod := range ev.GetSnapshot().GetPods() {
				pods[pod.GetNamespace()+"/"+pod.GetName()] = pod
			}
			p.mu.Lock()
			lean := p.lean
			p.mu.Unlock()
			if !lean {
				proto.Merge(whole, ev.GetSnapshot())
			}
			if ev.GetMore() {
				seq = ev.GetSequence()
				continue
			}
			p.mu.Lock()
			if !lean {
				p.snapshots = append(p.snapshots, whole)
			}
			p.snapshotAt = append(p.snapshotAt, time.Now())
			p.snapshotPods = append(p.snapshotPods, len(pods))
			p.mu.Unlock()
			whole = nil
		case ev.GetSequence() == seq+1:
			n := 0
			for _, ch := range ev.GetDelta().GetChanges() {
				if pod := ch.GetPod(); pod != nil {
					n++
					k := pod.GetNamespace() + "/" + pod.GetName()
					if ch.GetDeleted() {
						delete(pods, k)
					} else {
						pods[k] = pod
					}
				}
			}
			p.mu.Lock()
			p.podChanges += n
			p.mu.Unlock()
		default:
			if err := st.Send(&plannerv1.ReconcileResponse{AckedSequence: seq, Resync: true}); err != nil {
				return nil
			}
			continue
		}
		seq = ev.GetSequence()
		if err := st.Send(p.plan(seq, pods)); err != nil {
			return nil
		}
	}
}

// plan acknowledges seq and places the pending pods.
func (p *fakePlanner) plan(seq uint64, pods map[string]*clusterv1.Pod) *plannerv1.ReconcileResponse {
	resp := &plannerv1.ReconcileResponse{AckedSequence: seq}
	var pending []string
	var unschedulable []*clusterv1.Unschedulable
	for k, pod := range pods {
		if pod.GetNamespace() != p.namespace || pod.GetNodeName() != "" || pod.GetNominatedNodeClaim() != "" {
			continue
		}
		if p.unschedulable != nil {
			if reason := p.unschedulable(pod); reason != "" {
				unschedulable = append(unschedulable, &clusterv1.Unschedulable{Pod: k, Reason: reason})
				continue
			}
		}
		pending = append(pending, k)
	}
	if len(pending) == 0 && len(unschedulable) == 0 {
		return resp
	}
	sort.Strings(pending)
	slices.SortFunc(unschedulable, func(a, b *clusterv1.Unschedulable) int { return strings.Compare(a.GetPod(), b.GetPod()) })
	sum := sha256.Sum256([]byte(strings.Join(pending, ",")))
	resp.Plan = &clusterv1.Plan{Id: hex.EncodeToString(sum[:4]), Sequence: seq, Unschedulable: unschedulable}
	if len(pending) > 0 {
		resp.Plan.NodeClaims = []*clusterv1.NodeClaimPlan{{
			Name: "nc-" + hex.EncodeToString(sum[:6]), NodePool: "default", NodeClass: "default", InstanceType: "m5.large", Pods: pending,
		}}
	}
	return resp
}

func (p *fakePlanner) stats() (streams, maxActive, active int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.streams, p.maxActive, p.active
}

// received returns when snapshots arrived and how many pod changes deltas
// carried.
func (p *fakePlanner) received() (snapshotAt []time.Time, snapshotPods []int, podChanges int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.snapshotAt), slices.Clone(p.snapshotPods), p.podChanges
}

// fakeActuator creates the NodeClaims of each plan, once, with the
// nominated-pods annotation, as the real actuator does.
type fakeActuator struct {
	actuatorv1.UnimplementedActuatorServer
	dyn dynamic.Interface
	// failFirst NodeClaims fail to launch (OUTCOME_FAILED, nothing
	// created).
	failFirst int

	mu sync.Mutex
	// launches lists every NodeClaim created, with its pods and the time
	// Execute asked for it; failures those that failed.
	launches []launch
	failures []launch
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
		a.mu.Lock()
		fail := len(a.failures) < a.failFirst
		if fail {
			a.failures = append(a.failures, launch{name: nc.GetName(), pods: nc.GetPods(), at: at})
		}
		a.mu.Unlock()
		if fail {
			resp.Results = append(resp.Results, &actuatorv1.NodeClaimResult{
				Name: nc.GetName(), Outcome: actuatorv1.Outcome_OUTCOME_FAILED, Pods: nc.GetPods(), Message: "InsufficientInstanceCapacity: no m5.large capacity",
			})
			continue
		}
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

func (a *fakeActuator) failed() []launch {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.failures)
}

// grpcServer serves on a fixed loopback address until stopped.
type grpcServer struct {
	addr string
	srv  *grpc.Server
}

// serveGRPC serves on addr with the message size limit of Flotilla's
// services (snapshots of large clusters run to tens of MiB).
func serveGRPC(t *testing.T, addr string, register func(*grpc.Server)) *grpcServer {
	t.Helper()
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	s := &grpcServer{addr: lis.Addr().String(), srv: grpc.NewServer(grpc.MaxRecvMsgSize(256<<20), grpc.MaxSendMsgSize(256<<20))}
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
