package cluster

import (
	"fmt"
	"log/slog"
	"runtime"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
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
		pods:           newInf(&corev1.Pod{}, cache.Indexers{indexClaim: podClaims}),
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
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{
				Namespace: fmt.Sprintf("team-%02d", i%50), Name: fmt.Sprintf("app-%06d", i), UID: types.UID(fmt.Sprintf("uid-%06d", i)),
				Labels:          map[string]string{"app": fmt.Sprintf("app-%d", i%500), "pod-template-hash": "5d8c9"},
				Annotations:     map[string]string{"kubectl.kubernetes.io/restartedAt": time.Now().String()},
				OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: fmt.Sprintf("app-%d-5d8c9", i%500), Controller: new(true)}},
			},
			Spec: corev1.PodSpec{
				NodeName: fmt.Sprintf("node-%05d", i%max(nodes, 1)),
				Containers: []corev1.Container{{
					Name: "app", Image: "registry.local/app:1", Command: []string{"/app", "--serve"},
					Env:       []corev1.EnvVar{{Name: "A", Value: "1"}, {Name: "B", Value: "2"}},
					Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi")}},
				}},
				Tolerations: []corev1.Toleration{{Key: "node.kubernetes.io/not-ready", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute}},
			},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionTrue}, {Type: corev1.PodReady, Status: corev1.ConditionTrue}},
				ContainerStatuses: []corev1.ContainerStatus{{Name: "app", Ready: true, Image: "registry.local/app:1", ImageID: "sha256:abc"}}},
		}
		o, _ := transformPod(p)
		if err := inf.pods.GetIndexer().Add(o); err != nil {
			b.Fatal(err)
		}
	}
	return c
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
