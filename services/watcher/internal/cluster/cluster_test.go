package cluster

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	awsv1 "github.com/flotilla-dev/flotilla/api/aws/v1"
	"github.com/flotilla-dev/flotilla/api/aws/v1alpha5"
	karpv1 "github.com/flotilla-dev/flotilla/api/karpenter/v1"
	"github.com/flotilla-dev/flotilla/api/snapshot"
	clusterv1 "github.com/flotilla-dev/flotilla/gen/flotilla/cluster/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"
)

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

type env struct {
	c     *Cluster
	kube  *fake.Clientset
	dyn   *dynamicfake.FakeDynamicClient
	clock *clock
}

func toUnstructured(t *testing.T, obj runtime.Object, gvk schema.GroupVersionKind) *unstructured.Unstructured {
	t.Helper()
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{Object: m}
	u.SetGroupVersionKind(gvk)
	return u
}

var (
	gvkNodeClaim   = karpv1.SchemeGroupVersion.WithKind("NodeClaim")
	gvkNodePool    = karpv1.SchemeGroupVersion.WithKind("NodePool")
	gvkNodeClass   = awsv1.SchemeGroupVersion.WithKind("EC2NodeClass")
	gvkProvisioner = v1alpha5.SchemeGroupVersion.WithKind("Provisioner")
)

// start runs a Cluster against fake clients holding objs (core objects
// typed, custom resources as typed objects converted here).
func start(t *testing.T, core []runtime.Object, custom ...runtime.Object) *env {
	t.Helper()
	kube := fake.NewClientset(core...)
	kube.Resources = []*metav1.APIResourceList{
		{GroupVersion: "karpenter.sh/v1", APIResources: []metav1.APIResource{{Name: "nodepools"}, {Name: "nodeclaims"}}},
		{GroupVersion: "karpenter.k8s.aws/v1", APIResources: []metav1.APIResource{{Name: "ec2nodeclasses"}}},
		{GroupVersion: "karpenter.k8s.aws/v1alpha5", APIResources: []metav1.APIResource{{Name: "provisioners"}}},
	}
	var objs []runtime.Object
	for _, o := range custom {
		var gvk schema.GroupVersionKind
		switch o.(type) {
		case *karpv1.NodeClaim:
			gvk = gvkNodeClaim
		case *karpv1.NodePool:
			gvk = gvkNodePool
		case *awsv1.EC2NodeClass:
			gvk = gvkNodeClass
		case *v1alpha5.Provisioner:
			gvk = gvkProvisioner
		}
		objs = append(objs, toUnstructured(t, o, gvk))
	}
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{
		gvrNodeClaims: "NodeClaimList", gvrNodePools: "NodePoolList", gvrNodeClasses: "EC2NodeClassList", gvrProvisioners: "ProvisionerList",
	}, objs...)
	clk := &clock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	c := New(Options{Client: kube, Dynamic: dyn, Logger: slog.New(slog.DiscardHandler), Region: "us-east-1", Now: clk.Now, NominationTTL: time.Minute})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return &env{c: c, kube: kube, dyn: dyn, clock: clk}
}

func pod(name string, mod ...func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, UID: "uid-" + "name", Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "app", Image: "registry/app:1", Env: []corev1.EnvVar{{Name: "SECRET", Value: "x"}},
			Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")}},
		}}},
		Status: corev1.PodStatus{Phase: corev1.PodPending, Conditions: []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: "Unschedulable", Message: "0/1 nodes"}}},
	}
	for _, m := range mod {
		m(p)
	}
	return p
}

func nodeClaim(name string, mod ...func(*karpv1.NodeClaim)) *karpv1.NodeClaim {
	nc := &karpv1.NodeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{karpv1.NodePoolLabelKey: "default"}},
		Spec: karpv1.NodeClaimSpec{
			Requirements: []karpv1.NodeSelectorRequirementWithMinValues{{Key: karpv1.LabelInstanceType, Operator: corev1.NodeSelectorOpIn, Values: []string{"t3.large"}}},
			NodeClassRef: karpv1.NodeClassReference{Group: "karpenter.k8s.aws", Kind: "EC2NodeClass", Name: "default"},
		},
	}
	for _, m := range mod {
		m(nc)
	}
	return nc
}

// eventually polls f until it returns "" or 5s pass.
func eventually(t *testing.T, f func() string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		msg := f()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(msg)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func findPod(s *clusterv1.Snapshot, name string) *clusterv1.Pod {
	for _, p := range s.GetPods() {
		if p.GetName() == name {
			return p
		}
	}
	return nil
}

func TestSnapshotHoldsTheCluster(t *testing.T) {
	t.Parallel()
	wffc := storagev1.VolumeBindingWaitForFirstConsumer
	sc := "gp3"
	core := []runtime.Object{
		pod("pending"),
		pod("nominated"),
		pod("bound", func(p *corev1.Pod) { p.Spec.NodeName = "node-1"; p.Status.Phase = corev1.PodRunning }),
		pod("with-volume", func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "data"}}}}
		}),
		&corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "data"}, Spec: corev1.PersistentVolumeClaimSpec{StorageClassName: &sc}},
		&storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "gp3"}, Provisioner: "ebs.csi.aws.com", VolumeBindingMode: &wffc, AllowedTopologies: []corev1.TopologySelectorTerm{{
			MatchLabelExpressions: []corev1.TopologySelectorLabelRequirement{{Key: "topology.kubernetes.io/zone", Values: []string{"us-east-1a"}}},
		}}},
		&storagev1.CSINode{ObjectMeta: metav1.ObjectMeta{Name: "node-1"}, Spec: storagev1.CSINodeSpec{Drivers: []storagev1.CSINodeDriver{
			{Name: "ebs.csi.aws.com", NodeID: "i-1", Allocatable: &storagev1.VolumeNodeResources{Count: new(int32(25))}},
		}}},
		&corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: "node-1", Labels: map[string]string{karpv1.LabelInstanceType: "t3.large", karpv1.LabelTopologyZone: "us-east-1a"}},
			Status:     corev1.NodeStatus{Images: []corev1.ContainerImage{{Names: []string{"big"}, SizeBytes: 1 << 30}}, Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}},
		},
	}
	custom := []runtime.Object{
		nodeClaim("in-flight", func(nc *karpv1.NodeClaim) {
			nc.Annotations = map[string]string{snapshot.AnnotationNominatedPods: "default/nominated"}
		}),
		nodeClaim("registered", func(nc *karpv1.NodeClaim) {
			nc.Status.NodeName = "node-1"
			nc.Status.Conditions = []metav1.Condition{{Type: "Initialized", Status: metav1.ConditionTrue, Reason: "Initialized", LastTransitionTime: metav1.Now()}}
		}),
		&karpv1.NodePool{ObjectMeta: metav1.ObjectMeta{Name: "default"}, Spec: karpv1.NodePoolSpec{Template: karpv1.NodeClaimTemplate{Spec: karpv1.NodeClaimTemplateSpec{
			NodeClassRef: karpv1.NodeClassReference{Group: "karpenter.k8s.aws", Kind: "EC2NodeClass", Name: "missing"},
		}}}},
		&v1alpha5.Provisioner{ObjectMeta: metav1.ObjectMeta{Name: "legacy"}, Spec: v1alpha5.ProvisionerSpec{
			Limits:   &v1alpha5.Limits{Resources: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100")}},
			Provider: &v1alpha5.Provider{SubnetSelector: map[string]string{"karpenter.sh/discovery": "c"}, SecurityGroupSelector: map[string]string{"karpenter.sh/discovery": "c"}},
		}},
	}
	e := start(t, core, custom...)
	e.c.SetInstanceTypes("us-west-2", []*clusterv1.InstanceType{{Name: "t3.large", Offerings: []*clusterv1.Offering{
		{Zone: "us-east-1a", CapacityType: "on-demand", PricePerHour: 0.0832, Available: true},
	}}})
	snap := e.c.Snapshot()

	if snap.GetRegion() != "us-west-2" || !snap.GetNow().AsTime().Equal(e.clock.Now()) {
		t.Errorf("region %q now %v", snap.GetRegion(), snap.GetNow().AsTime())
	}
	var pods []string
	for _, p := range snap.GetPods() {
		pods = append(pods, p.GetName())
	}
	if want := []string{"bound", "nominated", "pending", "with-volume"}; !slices.Equal(pods, want) {
		t.Errorf("pods %v, want %v", pods, want)
	}
	if got := findPod(snap, "nominated").GetNominatedNodeClaim(); got != "in-flight" {
		t.Errorf("nominated pod's NodeClaim = %q, want in-flight", got)
	}
	if got := findPod(snap, "pending"); got.GetNominatedNodeClaim() != "" || !got.GetUnschedulable() {
		t.Errorf("pending pod: nominated %q unschedulable %v", got.GetNominatedNodeClaim(), got.GetUnschedulable())
	}
	if v := findPod(snap, "with-volume").GetVolumes(); len(v) != 1 || v[0].GetTerms()[0].GetRequirements()[0].GetValues()[0] != "us-east-1a" ||
		v[0].GetDriver() != "ebs.csi.aws.com" {
		t.Errorf("volume topology %v, want the StorageClass's zone and driver", v)
	}
	if n := snap.GetNodes(); len(n) != 1 || n[0].GetNodeClaim() != "registered" || n[0].GetPricePerHour() != 0.0832 || !n[0].GetReady() ||
		n[0].GetAttachableVolumes()["ebs.csi.aws.com"] != 25 {
		t.Errorf("nodes %v, want node-1 linked to NodeClaim registered, priced 0.0832, attaching 25 EBS volumes", n)
	}
	if len(snap.GetNodeClaims()) != 2 || len(snap.GetInstanceTypes()) != 1 {
		t.Errorf("%d NodeClaims, %d instance types", len(snap.GetNodeClaims()), len(snap.GetInstanceTypes()))
	}
	pools := map[string]*clusterv1.NodePool{}
	for _, p := range snap.GetNodePools() {
		pools[p.GetName()] = p
	}
	if p := pools["default"]; p.GetReady() || p.GetNotReadyReason() != "NodePool default: EC2NodeClass missing not found" {
		t.Errorf("NodePool default: ready %v reason %q", p.GetReady(), p.GetNotReadyReason())
	}
	if p := pools["legacy"]; !p.GetReady() || p.GetSourceKind() != "Provisioner" || p.GetLimits()["cpu"] != 100_000 {
		t.Errorf("Provisioner legacy mapped to %v", p)
	}
	if len(snap.GetNodeClasses()) != 1 || snap.GetNodeClasses()[0].GetName() != "legacy" {
		t.Errorf("node classes %v, want the Provisioner's", snap.GetNodeClasses())
	}

	// The caches hold slim objects.
	cached, ok := get(e.c.inf.pods, "default/pending").(*cachedPod)
	if !ok || cached.model.GetContainers()[0].GetRequests().GetCpuMillis() != 1000 {
		t.Errorf("pod cache holds %T, want the pod's model with its requests", get(e.c.inf.pods, "default/pending"))
	}
	if n := get(e.c.inf.nodes, "node-1").(*corev1.Node); n.Status.Images != nil {
		t.Errorf("cached node keeps its images")
	}

	pending := e.c.Current(true)
	if len(pending.GetPods()) != 3 {
		t.Errorf("Current(pendingOnly) has %d pods, want the 3 pending ones", len(pending.GetPods()))
	}
}

func deltaNames(changes []*clusterv1.Change) []string {
	var out []string
	for _, ch := range changes {
		name := ""
		switch o := ch.GetObject().(type) {
		case *clusterv1.Change_Pod:
			name = "Pod " + o.Pod.GetName()
		case *clusterv1.Change_Node:
			name = "Node " + o.Node.GetName()
		case *clusterv1.Change_NodeClaim:
			name = "NodeClaim " + o.NodeClaim.GetName()
		case *clusterv1.Change_NodePool:
			name = "NodePool " + o.NodePool.GetName()
		case *clusterv1.Change_NodeClass:
			name = "NodeClass " + o.NodeClass.GetName()
		case *clusterv1.Change_InstanceType:
			name = "InstanceType " + o.InstanceType.GetName()
		}
		if ch.GetDeleted() {
			name += " deleted"
		}
		out = append(out, name)
	}
	return out
}

// collect gathers deltas until they hold want (in any number of deltas) or
// 5s pass, and returns every change seen.
func collect(t *testing.T, c *Cluster, want []string) []*clusterv1.Change {
	t.Helper()
	var all []*clusterv1.Change
	eventually(t, func() string {
		all = append(all, c.Delta()...)
		got := deltaNames(all)
		for _, w := range want {
			if !slices.Contains(got, w) {
				return "deltas " + join(got) + " lack " + w
			}
		}
		return ""
	})
	return all
}

func join(s []string) string {
	out := "["
	for i, x := range s {
		if i > 0 {
			out += ", "
		}
		out += x
	}
	return out + "]"
}

func TestDeltas(t *testing.T) {
	t.Parallel()
	e := start(t, []runtime.Object{pod("a"), pod("b")})
	e.c.Snapshot()
	ctx := context.Background()

	// A status change the planner does not read is no change.
	p := pod("a")
	p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{Type: corev1.PodReady, Status: corev1.ConditionFalse})
	if _, err := e.kube.CoreV1().Pods("default").UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() string {
		if e.c.Pending() == 0 {
			return "the update never arrived"
		}
		return ""
	})
	if got := e.c.Delta(); len(got) != 0 {
		t.Errorf("a readiness change gave %v, want nothing", deltaNames(got))
	}

	// Bound, created and deleted pods are.
	p.Spec.NodeName = "n1"
	if _, err := e.kube.CoreV1().Pods("default").Update(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.kube.CoreV1().Pods("default").Create(ctx, pod("c"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := e.kube.CoreV1().Pods("default").Delete(ctx, "b", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	all := collect(t, e.c, []string{"Pod a", "Pod c", "Pod b deleted"})
	for _, ch := range all {
		if ch.GetPod().GetName() == "a" && ch.GetPod().GetNodeName() != "n1" {
			t.Errorf("pod a delta has node %q, want n1", ch.GetPod().GetNodeName())
		}
	}

	// A pod created and deleted between two deltas never reaches the
	// planner.
	if _, err := e.kube.CoreV1().Pods("default").Create(ctx, pod("brief"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := e.kube.CoreV1().Pods("default").Delete(ctx, "brief", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.kube.CoreV1().Pods("default").Create(ctx, pod("marker"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	all = collect(t, e.c, []string{"Pod marker"})
	if names := deltaNames(all); slices.ContainsFunc(names, func(s string) bool { return s == "Pod brief" || s == "Pod brief deleted" }) {
		t.Errorf("deltas %v mention a pod the planner never had", names)
	}
}

func TestNominations(t *testing.T) {
	t.Parallel()
	e := start(t, []runtime.Object{pod("a"), pod("b")})
	e.c.Snapshot()
	ctx := context.Background()
	nominated := func(name string) string { return findPod(e.c.Current(false), name).GetNominatedNodeClaim() }

	// A plan nominates pods before the NodeClaim exists.
	e.c.Nominate("nc-1", []string{"default/a", "default/b"})
	all := collect(t, e.c, []string{"Pod a", "Pod b"})
	for _, ch := range all {
		if ch.GetPod().GetNominatedNodeClaim() != "nc-1" {
			t.Errorf("delta for %s has nomination %q, want nc-1", ch.GetPod().GetName(), ch.GetPod().GetNominatedNodeClaim())
		}
	}
	if e.c.NominatedClaim("default/a") != "nc-1" {
		t.Errorf("NominatedClaim(a) = %q", e.c.NominatedClaim("default/a"))
	}

	// The NodeClaim shows up; it keeps the nominations past the TTL while it
	// is in flight.
	u := toUnstructured(t, nodeClaim("nc-1"), gvkNodeClaim)
	if _, err := e.dyn.Resource(gvrNodeClaims).Create(ctx, u, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	collect(t, e.c, []string{"NodeClaim nc-1"})
	e.clock.add(5 * time.Minute)
	if got := nominated("a"); got != "nc-1" {
		t.Errorf("in flight past the TTL: nomination %q, want nc-1", got)
	}

	// Its launch fails: the pods are released.
	failed := nodeClaim("nc-1", func(nc *karpv1.NodeClaim) {
		nc.Status.Conditions = []metav1.Condition{{Type: "Launched", Status: metav1.ConditionFalse, Reason: "InsufficientCapacity", LastTransitionTime: metav1.Now()}}
	})
	if _, err := e.dyn.Resource(gvrNodeClaims).Update(ctx, toUnstructured(t, failed, gvkNodeClaim), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	all = collect(t, e.c, []string{"Pod a", "Pod b"})
	for _, ch := range all {
		if ch.GetPod() != nil && ch.GetPod().GetNominatedNodeClaim() != "" {
			t.Errorf("after the failed launch %s is still nominated to %q", ch.GetPod().GetName(), ch.GetPod().GetNominatedNodeClaim())
		}
	}

	// A nomination whose NodeClaim never appears lapses after the TTL.
	e.c.Nominate("nc-never", []string{"default/a"})
	if got := nominated("a"); got != "nc-never" {
		t.Fatalf("nomination %q, want nc-never", got)
	}
	e.clock.add(2 * time.Minute)
	if got := nominated("a"); got != "" {
		t.Errorf("after the TTL: nomination %q, want none", got)
	}

	// Release drops nominations at once.
	e.c.Nominate("nc-2", []string{"default/b"})
	e.c.Release("nc-2")
	if got := nominated("b"); got != "" {
		t.Errorf("after Release: nomination %q, want none", got)
	}

	// A NodeClaim that was seen and is deleted releases its pods at once,
	// not after the TTL.
	e.c.Nominate("nc-3", []string{"default/b"})
	if _, err := e.dyn.Resource(gvrNodeClaims).Create(ctx, toUnstructured(t, nodeClaim("nc-3"), gvkNodeClaim), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	collect(t, e.c, []string{"NodeClaim nc-3"})
	if err := e.dyn.Resource(gvrNodeClaims).Delete(ctx, "nc-3", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	collect(t, e.c, []string{"NodeClaim nc-3 deleted"})
	if got := nominated("b"); got != "" {
		t.Errorf("after the NodeClaim was deleted: nomination %q, want none", got)
	}
}

func TestDerivedChanges(t *testing.T) {
	t.Parallel()
	sc := "gp3"
	e := start(t, []runtime.Object{
		pod("db", func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "data"}}}}
		}),
		&corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "data"}, Spec: corev1.PersistentVolumeClaimSpec{StorageClassName: &sc}},
		&corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: "pv-1"}, Spec: corev1.PersistentVolumeSpec{
			NodeAffinity: &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{
				{Key: "topology.kubernetes.io/zone", Operator: corev1.NodeSelectorOpIn, Values: []string{"us-east-1c"}},
			}}}}},
			PersistentVolumeSource: corev1.PersistentVolumeSource{CSI: &corev1.CSIPersistentVolumeSource{Driver: "ebs.csi.aws.com", VolumeHandle: "vol-0abc"}},
		}},
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1"}},
	}, &karpv1.NodePool{ObjectMeta: metav1.ObjectMeta{Name: "default"}, Spec: karpv1.NodePoolSpec{Template: karpv1.NodeClaimTemplate{Spec: karpv1.NodeClaimTemplateSpec{
		NodeClassRef: karpv1.NodeClassReference{Group: "karpenter.k8s.aws", Kind: "EC2NodeClass", Name: "default"},
	}}}})
	e.c.Snapshot()
	ctx := context.Background()

	// The claim binds: the pod's volume topology follows the volume.
	pvc := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "data"}, Spec: corev1.PersistentVolumeClaimSpec{StorageClassName: &sc, VolumeName: "pv-1"}}
	if _, err := e.kube.CoreV1().PersistentVolumeClaims("default").Update(ctx, pvc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	all := collect(t, e.c, []string{"Pod db"})
	for _, ch := range all {
		if v := ch.GetPod().GetVolumes(); len(v) != 1 || v[0].GetTerms()[0].GetRequirements()[0].GetValues()[0] != "us-east-1c" ||
			v[0].GetDriver() != "ebs.csi.aws.com" {
			t.Errorf("pod db volumes %v, want the bound volume's zone and driver", v)
		}
	}

	// The node's CSI driver registers: the node says how many volumes it
	// attaches.
	csi := &storagev1.CSINode{ObjectMeta: metav1.ObjectMeta{Name: "node-1"}, Spec: storagev1.CSINodeSpec{Drivers: []storagev1.CSINodeDriver{
		{Name: "ebs.csi.aws.com", NodeID: "i-1", Allocatable: &storagev1.VolumeNodeResources{Count: new(int32(39))}},
	}}}
	if _, err := e.kube.StorageV1().CSINodes().Create(ctx, csi, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, ch := range collect(t, e.c, []string{"Node node-1"}) {
		if got := ch.GetNode().GetAttachableVolumes(); got["ebs.csi.aws.com"] != 39 {
			t.Errorf("node-1 attaches %v, want 39 EBS volumes", got)
		}
	}

	// The NodePool's node class appears: the NodePool becomes ready.
	nc := &awsv1.EC2NodeClass{ObjectMeta: metav1.ObjectMeta{Name: "default"}}
	if _, err := e.dyn.Resource(gvrNodeClasses).Create(ctx, toUnstructured(t, nc, gvkNodeClass), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	all = collect(t, e.c, []string{"NodeClass default", "NodePool default"})
	for _, ch := range all {
		if p := ch.GetNodePool(); p != nil && !p.GetReady() {
			t.Errorf("NodePool default still not ready: %q", p.GetNotReadyReason())
		}
	}
}
