package cluster

import (
	"bytes"
	"fmt"
	"log/slog"
	"runtime"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/cache"

	"github.com/flotilla-dev/flotilla/services/watcher/internal/podwire"
)

// benchCluster fills unstarted informer stores with nodes and pods bound to
// them, as they arrive from the API server (full objects, run through the
// transforms).
func benchCluster(b *testing.B, nodes, pods int) *Cluster {
	b.Helper()
	newInf := func(obj any, idx cache.Indexers) cache.SharedIndexInformer {
		return cache.NewSharedIndexInformer(&cache.ListWatch{}, nil, 0, idx)
	}
	inf := &informers{
		pods:           newInf(&corev1.Pod{}, podIndexers()),
		nodes:          newInf(&corev1.Node{}, cache.Indexers{indexProviderID: nodeProviderID}),
		daemonSets:     newInf(nil, nil),
		pdbs:           newInf(nil, nil),
		pvcs:           newInf(nil, nil),
		pvs:            newInf(nil, nil),
		storageClasses: newInf(nil, nil),
		nodeClaims:     newInf(nil, cache.Indexers{indexNominated: claimNominated, indexNodeName: claimNodeName, indexProviderID: claimProviderID}),
	}
	c := New(Options{Logger: slog.New(slog.DiscardHandler)})
	c.inf = inf
	for i := range nodes {
		n := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("node-%05d", i), Labels: map[string]string{
				"node.kubernetes.io/instance-type": "m5.xlarge", "topology.kubernetes.io/zone": "us-east-1a", "kubernetes.io/hostname": fmt.Sprintf("node-%05d", i),
			}, Annotations: map[string]string{"node.alpha.kubernetes.io/ttl": "0", "volumes.kubernetes.io/controller-managed-attach-detach": "true"}},
			Spec: corev1.NodeSpec{ProviderID: fmt.Sprintf("aws:///us-east-1a/i-%05d", i)},
			Status: corev1.NodeStatus{
				Capacity:    corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("4"), corev1.ResourceMemory: resource.MustParse("16Gi"), corev1.ResourcePods: resource.MustParse("58")},
				Allocatable: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("3920m"), corev1.ResourceMemory: resource.MustParse("15Gi"), corev1.ResourcePods: resource.MustParse("58")},
				Conditions:  []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", Message: "kubelet is posting ready status"}},
				Images:      []corev1.ContainerImage{{Names: []string{"registry.local/app:1"}, SizeBytes: 100 << 20}},
			},
		}
		o, _ := transformNode(n)
		if err := inf.nodes.GetIndexer().Add(o); err != nil {
			b.Fatal(err)
		}
	}
	for i := range pods {
		p := benchPod(i, fmt.Sprintf("node-%05d", i%max(nodes, 1)))
		o, _ := transformPod(p)
		if err := inf.pods.GetIndexer().Add(o); err != nil {
			b.Fatal(err)
		}
	}
	return c
}

// benchPod is the i-th pod of 500 Deployments in 50 namespaces, bound to
// node, as the API server sends it: two containers with images,
// environment, probes and mounts, five labels, annotations, an owner,
// volumes, a spread constraint on every tenth workload, and the status a
// kubelet writes.
func benchPod(i int, node string) *corev1.Pod {
	app := fmt.Sprintf("svc-%03d", i%500)
	ns := fmt.Sprintf("team-%02d", i%50)
	hash := fmt.Sprintf("%010x", 0x5d8c9f7b4+(i%500)*7919)
	probe := func(path string) *corev1.Probe {
		return &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromInt32(8080)}},
			PeriodSeconds: 10, TimeoutSeconds: 1, FailureThreshold: 3, SuccessThreshold: 1}
	}
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: ns, Name: fmt.Sprintf("%s-%s-%06d", app, hash, i), UID: types.UID(fmt.Sprintf("8f3c2a1e-%04x-4b7d-9c2e-%012x", i%65536, i)),
			ResourceVersion: fmt.Sprint(1000 + i), CreationTimestamp: metav1.NewTime(time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Second)),
			Labels: map[string]string{"app": app, "app.kubernetes.io/name": app, "app.kubernetes.io/part-of": ns, "pod-template-hash": hash, "version": "v1.4.2"},
			Annotations: map[string]string{
				"kubectl.kubernetes.io/restartedAt": "2026-11-20T09:14:03Z", "prometheus.io/scrape": "true", "prometheus.io/port": "9090",
				"checksum/config": "4f1c9a0e2b7d3c5a8e6f0b1d2c3a4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d",
			},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: app + "-" + hash, UID: "rs-uid", Controller: new(true), BlockOwnerDeletion: new(true)}},
			ManagedFields:   []metav1.ManagedFieldsEntry{{Manager: "kube-controller-manager", Operation: metav1.ManagedFieldsOperationUpdate, APIVersion: "v1", FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:metadata":{"f:labels":{}},"f:spec":{"f:containers":{}}}`)}}},
		},
		Spec: corev1.PodSpec{
			NodeName: node,
			Containers: []corev1.Container{{
				Name: "app", Image: "123456789012.dkr.ecr.us-east-1.amazonaws.com/" + app + ":v1.4.2",
				Command: []string{"/app/server"}, Args: []string{"--port=8080", "--metrics-port=9090"},
				Env: []corev1.EnvVar{
					{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
					{Name: "LOG_LEVEL", Value: "info"}, {Name: "DATABASE_URL", Value: "postgres://app@db.internal:5432/" + app},
				},
				Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}, {Name: "metrics", ContainerPort: 9090, Protocol: corev1.ProtocolTCP}},
				Resources: corev1.ResourceRequirements{
					Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m"), corev1.ResourceMemory: resource.MustParse("256Mi")},
					Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")},
				},
				LivenessProbe: probe("/healthz"), ReadinessProbe: probe("/readyz"),
				VolumeMounts: []corev1.VolumeMount{{Name: "config", MountPath: "/etc/app"}, {Name: "tmp", MountPath: "/tmp"}},
			}, {
				Name: "log-shipper", Image: "public.ecr.aws/aws-observability/aws-for-fluent-bit:2.32.4",
				Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("32Mi")}},
			}},
			Volumes: []corev1.Volume{
				{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: app + "-config"}}}},
				{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
			},
			Tolerations: []corev1.Toleration{
				{Key: "node.kubernetes.io/not-ready", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: new(int64(300))},
				{Key: "node.kubernetes.io/unreachable", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: new(int64(300))},
			},
		},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: fmt.Sprintf("10.0.%d.%d", i/250%256, i%250),
			Conditions:        []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionTrue}, {Type: corev1.PodReady, Status: corev1.ConditionTrue}},
			ContainerStatuses: []corev1.ContainerStatus{{Name: "app", Ready: true, Image: "registry.local/app:1", ImageID: "sha256:abc"}}},
	}
	if i%10 == 0 {
		p.Spec.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{
			MaxSkew: 1, TopologyKey: corev1.LabelTopologyZone, WhenUnsatisfiable: corev1.ScheduleAnyway,
			LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": app}},
		}}
	}
	return p
}

// BenchmarkSnapshot builds the full snapshot of 5,000 nodes and 100,000
// pods (the target: at most 1s) and reports the heap the slimmed
// caches hold.
func BenchmarkSnapshot(b *testing.B) {
	for _, size := range []struct{ nodes, pods int }{{500, 10_000}, {5_000, 100_000}} {
		b.Run(fmt.Sprintf("nodes=%d/pods=%d", size.nodes, size.pods), func(b *testing.B) {
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			c := benchCluster(b, size.nodes, size.pods)
			runtime.GC()
			runtime.ReadMemStats(&after)
			cacheMiB := float64(after.HeapAlloc-before.HeapAlloc) / (1 << 20)
			b.ReportAllocs()
			b.ResetTimer()
			cpu := processCPU(b)
			for b.Loop() {
				snap := c.Snapshot()
				if len(snap.GetPods()) != size.pods {
					b.Fatalf("snapshot has %d pods", len(snap.GetPods()))
				}
			}
			// CPU time, unlike ns/op, does not depend on what else the
			// machine runs.
			b.ReportMetric(float64(processCPU(b)-cpu)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
			b.ReportMetric(cacheMiB, "cache-MiB")
			runtime.KeepAlive(c)
		})
	}
}

// BenchmarkDelta measures a steady 100 pod changes between deltas.
func BenchmarkDelta(b *testing.B) {
	c := benchCluster(b, 5_000, 100_000)
	c.Snapshot()
	keys := c.inf.pods.GetStore().ListKeys()[:100]
	b.ReportAllocs()
	for b.Loop() {
		for _, k := range keys {
			c.tracker.mark(key{kindPod, k})
		}
		c.Delta()
	}
}

// processCPU is the CPU time the process has used, on every thread.
func processCPU(b *testing.B) time.Duration {
	b.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkCurrentPending reads the pending pods (none here) among 100,000
// bound ones, as the Snapshot RPC with pending_only does.
func BenchmarkCurrentPending(b *testing.B) {
	c := benchCluster(b, 5_000, 100_000)
	b.ReportAllocs()
	cpu := processCPU(b)
	for b.Loop() {
		if snap := c.Current(true); len(snap.GetPods()) != 0 {
			b.Fatalf("%d pending pods", len(snap.GetPods()))
		}
	}
	b.ReportMetric(float64(processCPU(b)-cpu)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
}

// BenchmarkProvisioning is what the launch metrics poll (while the cluster
// changes) and a scrape reads.
func BenchmarkProvisioning(b *testing.B) {
	c := benchCluster(b, 5_000, 100_000)
	b.ReportAllocs()
	cpu := processCPU(b)
	for b.Loop() {
		if snap := c.Provisioning(); len(snap.GetPods()) != 0 {
			b.Fatalf("%d pending pods", len(snap.GetPods()))
		}
	}
	b.ReportMetric(float64(processCPU(b)-cpu)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
}

// BenchmarkTransformPod is the watcher's own work on every pod event (the
// API server's object decoded, slimmed and converted into its model).
func BenchmarkTransformPod(b *testing.B) {
	pods := make([]*corev1.Pod, 1000)
	for i := range pods {
		pods[i] = benchPod(i, "node-1")
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		p := pods[i%len(pods)].DeepCopy()
		i++
		if _, err := transformPod(p); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTransformPodUpdate is the same for an update that leaves the
// model as it was (a status change the planner does not read), the most
// common pod event: the cached version's model is reused.
func BenchmarkTransformPodUpdate(b *testing.B) {
	pods := make([]*corev1.Pod, 1000)
	cached := map[string]*cachedPod{}
	for i := range pods {
		pods[i] = benchPod(i, "node-1")
		o, err := transformPod(pods[i].DeepCopy())
		if err != nil {
			b.Fatal(err)
		}
		cached[pods[i].Namespace+"/"+pods[i].Name] = o.(*cachedPod)
	}
	transform := podTransform(func(k string) *cachedPod { return cached[k] })
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		p := pods[i%len(pods)].DeepCopy()
		i++
		p.ResourceVersion = fmt.Sprint(i)
		if _, err := transform(p); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWatchedStatusReport is a kubelet's status report of a cached
// pod as the informer meets it: the watch event's bytes decoded, then
// transformed. "full" decodes the whole pod (the client-go decoder);
// "in-part" is the watcher's (podwire), which compares the trimmed encoding
// with the cached pod's and decodes nothing more when they are equal.
func BenchmarkWatchedStatusReport(b *testing.B) {
	const n = 1000
	reports := make([][]byte, n)
	keyed := map[string]*cachedPod{}
	info, _ := kruntime.SerializerInfoForMediaType(scheme.Codecs.SupportedMediaTypes(), kruntime.ContentTypeProtobuf)
	enc := scheme.Codecs.EncoderForVersion(info.Serializer, corev1.SchemeGroupVersion)
	for i := range n {
		p := benchPod(i, "node-1")
		var b0 bytes.Buffer
		if err := enc.Encode(p, &b0); err != nil {
			b.Fatal(err)
		}
		obj, _, err := podwire.Decoder().Decode(b0.Bytes(), nil, nil)
		if err != nil {
			b.Fatal(err)
		}
		o, err := transformPod(obj)
		if err != nil {
			b.Fatal(err)
		}
		keyed[p.Namespace+"/"+p.Name] = o.(*cachedPod)
		p.ResourceVersion = "99"
		p.Status.PodIP = "10.244.0.9"
		p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{Type: corev1.PodReady, Status: corev1.ConditionTrue})
		var b1 bytes.Buffer
		if err := enc.Encode(p, &b1); err != nil {
			b.Fatal(err)
		}
		reports[i] = b1.Bytes()
	}
	transform := podTransform(func(k string) *cachedPod { return keyed[k] })
	for _, c := range []struct {
		name string
		dec  kruntime.Decoder
	}{{"full", scheme.Codecs.UniversalDeserializer()}, {"in-part", podwire.Decoder()}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				obj, _, err := c.dec.Decode(reports[i%n], nil, nil)
				i++
				if err != nil {
					b.Fatal(err)
				}
				if _, err := transform(obj); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
