package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/test/kubelet"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

// What the integration and load tests use to put many objects into the API
// server quickly and to measure the watcher from the outside.

// fastClients returns n clientsets speaking protobuf, unthrottled, each on
// its own connection, for creating objects in parallel.
func fastClients(t testing.TB, cfg *rest.Config, n int) []kubernetes.Interface {
	t.Helper()
	out := make([]kubernetes.Interface, n)
	for i := range out {
		c := rest.CopyConfig(cfg)
		c.QPS, c.Burst = -1, 0 // no client-side rate limit
		c.ContentType = runtime.ContentTypeProtobuf
		c.AcceptContentTypes = runtime.ContentTypeProtobuf
		// A distinct user agent keeps the connections apart (client-go
		// shares transports between equal configs).
		c.UserAgent = fmt.Sprintf("flotilla-watcher-load/%d", i)
		cs, err := kubernetes.NewForConfig(c)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = cs
	}
	return out
}

// parallel runs do(ctx, client, i) for every i in [0, n) on workers
// goroutines spread over clients. Calls the API server refuses for load
// (429, 5xx, timeouts) are retried; an object that already exists (a retried
// create that had gone through) counts as created. It returns the first
// error that is not retried away.
func parallel(ctx context.Context, clients []kubernetes.Interface, workers, n int, do func(context.Context, kubernetes.Interface, int) error) error {
	var next atomic.Int64
	var firstErr error
	var once sync.Once
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for w := range workers {
		client := clients[w%len(clients)]
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				var err error
				for attempt := range 8 {
					err = do(ctx, client, i)
					if err == nil || apierrors.IsAlreadyExists(err) || !retriable(err) {
						break
					}
					time.Sleep(time.Duration(50<<attempt) * time.Millisecond)
				}
				if err != nil && !apierrors.IsAlreadyExists(err) {
					once.Do(func() { firstErr = fmt.Errorf("object %d: %w", i, err); cancel() })
					return
				}
			}
		})
	}
	wg.Wait()
	return firstErr
}

func retriable(err error) bool {
	return apierrors.IsTooManyRequests(err) || apierrors.IsServerTimeout(err) || apierrors.IsTimeout(err) ||
		apierrors.IsInternalError(err) || apierrors.IsServiceUnavailable(err) || errors.Is(err, context.DeadlineExceeded) ||
		strings.Contains(err.Error(), "connection reset") || strings.Contains(err.Error(), "EOF")
}

// creations records, through a watch of its own (an informer, which
// re-lists if the API server drops a watch that falls behind), when the API
// server announced each new pod of a namespace: the reference clock of the
// latency figures. Call it before creating the pods.
func creations(t testing.TB, client kubernetes.Interface, namespace string) func() map[string]time.Time {
	t.Helper()
	var mu sync.Mutex
	seen := map[string]time.Time{}
	factory := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithNamespace(namespace))
	inf := factory.Core().V1().Pods().Informer()
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: func(obj any) {
		at := time.Now()
		if p, ok := obj.(*corev1.Pod); ok {
			mu.Lock()
			if _, dup := seen[p.Namespace+"/"+p.Name]; !dup {
				seen[p.Namespace+"/"+p.Name] = at
			}
			mu.Unlock()
		}
	}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() {
		cancel()
		factory.Shutdown()
	})
	factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(t.Context().Done(), inf.HasSynced) {
		t.Fatal("the pod watch did not sync")
	}
	return func() map[string]time.Time {
		mu.Lock()
		defer mu.Unlock()
		return maps.Clone(seen)
	}
}

// latencyStats summarises how long pods took from creation to the Execute
// that launched for them.
type latencyStats struct {
	n             int
	p50, p99, max time.Duration
	// spread is how long the burst took to create: first to last creation.
	spread time.Duration
}

func (s latencyStats) String() string {
	return fmt.Sprintf("p50 %s, p99 %s, max %s over %d pods (created within %s)", s.p50.Round(time.Millisecond),
		s.p99.Round(time.Millisecond), s.max.Round(time.Millisecond), s.n, s.spread.Round(time.Millisecond))
}

func launchLatencies(created map[string]time.Time, launches []launch) latencyStats {
	var lat []time.Duration
	for _, l := range launches {
		for _, p := range l.pods {
			if at, ok := created[p]; ok {
				lat = append(lat, l.at.Sub(at))
			}
		}
	}
	var first, last time.Time
	for _, at := range created {
		if first.IsZero() || at.Before(first) {
			first = at
		}
		if at.After(last) {
			last = at
		}
	}
	slices.Sort(lat)
	s := latencyStats{n: len(lat), spread: last.Sub(first)}
	if len(lat) > 0 {
		s.p50, s.p99, s.max = percentile(lat, 0.50), percentile(lat, 0.99), lat[len(lat)-1]
	}
	return s
}

// percentile is the nearest-rank percentile of sorted durations.
func percentile(sorted []time.Duration, p float64) time.Duration {
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[max(i, 0)]
}

// checkLaunchedOnce fails t unless every pod of want is on exactly one
// launched NodeClaim.
func checkLaunchedOnce(t *testing.T, launches []launch, want []string) {
	t.Helper()
	count := map[string]int{}
	for _, l := range launches {
		for _, p := range l.pods {
			count[p]++
		}
	}
	for _, p := range want {
		if count[p] != 1 {
			t.Errorf("pod %s was launched for %d times, want once", p, count[p])
		}
	}
	if len(count) != len(want) {
		t.Errorf("%d pods were launched for, want %d", len(count), len(want))
	}
}

// pendingPod is a pod no existing node fits: it selects a NodePool no node
// belongs to, as a pod waiting for Flotilla does.
func pendingPod(name string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "burst"}},
		Spec: corev1.PodSpec{
			NodeSelector: map[string]string{"karpenter.sh/nodepool": "burst"},
			Containers: []corev1.Container{{Name: "c", Image: "registry.local/app:1",
				Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")}}}},
		},
	}
}

// createPending creates n pending pods named prefix-0000… in namespace
// with 64 parallel clients and returns their keys and when each create
// call returned.
func createPending(t *testing.T, clients []kubernetes.Interface, namespace, prefix string, n int) ([]string, map[string]time.Time) {
	t.Helper()
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("%s/%s-%04d", namespace, prefix, i)
	}
	var mu sync.Mutex
	returned := make(map[string]time.Time, n)
	err := parallel(t.Context(), clients, 64, n, func(ctx context.Context, c kubernetes.Interface, i int) error {
		_, err := c.CoreV1().Pods(namespace).Create(ctx, pendingPod(fmt.Sprintf("%s-%04d", prefix, i)), metav1.CreateOptions{})
		mu.Lock()
		returned[keys[i]] = time.Now()
		mu.Unlock()
		return err
	})
	if err != nil {
		t.Fatalf("create pods: %v", err)
	}
	return keys, returned
}

// creationTimes waits until the watch of creations saw every pod of keys
// and returns, for each, the earlier of the watch event and the create
// call's return: both come after the pod exists, and on a loaded machine
// either can lag, so the earlier one is the closer bound (and the latency
// measured from it the more conservative).
func creationTimes(t *testing.T, watched func() map[string]time.Time, returned map[string]time.Time, keys []string) map[string]time.Time {
	t.Helper()
	var seen map[string]time.Time
	eventually(t, time.Minute, func() error {
		seen = watched()
		if missing := len(keys) - len(seen); missing > 0 {
			return fmt.Errorf("the watch has not seen %d of %d pods", missing, len(keys))
		}
		return nil
	})
	out := make(map[string]time.Time, len(keys))
	byWatch := 0
	for _, k := range keys {
		at := seen[k]
		if r, ok := returned[k]; ok && r.Before(at) {
			at = r
		} else {
			byWatch++
		}
		out[k] = at
	}
	t.Logf("creation times: the watch's for %d pods, the create call's (earlier) for %d", byWatch, len(keys)-byWatch)
	return out
}

// The load test's cluster: nodes as the simulated kubelet registers them,
// and pods as Deployments make them, with what real ones carry (images,
// env, probes, mounts, annotations) so that the watcher's transforms and
// decoding get their real work.

var loadZones = []string{"us-east-1a", "us-east-1b", "us-east-1c"}

// loadNode is node i: an m5.4xlarge registered by the simulated kubelet's
// code, Ready, with the status a kubelet reports. It has no kwok annotation:
// nothing keeps it alive, which is fine for the watcher.
func loadNode(i int) *corev1.Node {
	zone := loadZones[i%len(loadZones)]
	inst := kubelet.Instance{
		ID:             fmt.Sprintf("i-%017x", 0x0a000000+i),
		Type:           "m5.4xlarge",
		Zone:           zone,
		PrivateDNSName: fmt.Sprintf("ip-10-%d-%d-%d.ec2.internal", 16+i/65536, (i/256)%256, i%256),
		PrivateIP:      fmt.Sprintf("10.%d.%d.%d", 16+i/65536, (i/256)%256, i%256),
	}
	n := kubelet.NodeFor(inst, kubelet.InstanceType{Arch: "amd64", VCPU: 16, MemoryMiB: 65536}, "us-east-1", &kubelet.Bootstrap{
		MaxPods: 234,
		Labels: map[string]string{
			"karpenter.sh/nodepool": "default", "karpenter.sh/registered": "true", "karpenter.sh/initialized": "true",
			"karpenter.k8s.aws/instance-family": "m5", "karpenter.k8s.aws/instance-category": "m",
			"karpenter.k8s.aws/instance-generation": "5", "karpenter.k8s.aws/instance-size": "4xlarge",
			"karpenter.k8s.aws/instance-cpu": "16", "karpenter.k8s.aws/instance-memory": "65536",
			"karpenter.k8s.aws/instance-hypervisor": "nitro", "karpenter.k8s.aws/instance-network-bandwidth": "5000",
		},
		KubeReserved: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("110m"), corev1.ResourceMemory: resource.MustParse("2829Mi")},
	})
	delete(n.Annotations, kubelet.KwokAnnotation)
	n.Annotations["node.alpha.kubernetes.io/ttl"] = "0"
	n.Annotations["volumes.kubernetes.io/controller-managed-attach-detach"] = "true"
	n.Annotations["alpha.kubernetes.io/provided-node-ip"] = inst.PrivateIP
	now := metav1.Now()
	cond := func(t corev1.NodeConditionType, s corev1.ConditionStatus, reason, msg string) corev1.NodeCondition {
		return corev1.NodeCondition{Type: t, Status: s, Reason: reason, Message: msg, LastHeartbeatTime: now, LastTransitionTime: now}
	}
	n.Status.Conditions = []corev1.NodeCondition{
		cond(corev1.NodeMemoryPressure, corev1.ConditionFalse, "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
		cond(corev1.NodeDiskPressure, corev1.ConditionFalse, "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
		cond(corev1.NodePIDPressure, corev1.ConditionFalse, "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
		cond(corev1.NodeReady, corev1.ConditionTrue, "KubeletReady", "kubelet is posting ready status"),
	}
	n.Status.NodeInfo = corev1.NodeSystemInfo{
		MachineID: fmt.Sprintf("ec2%029x", i), SystemUUID: fmt.Sprintf("ec2%05x-0000-0000-0000-000000000000", i), BootID: fmt.Sprintf("%08x-1111-2222-3333-444444444444", i),
		KernelVersion: "6.1.112-124.190.amzn2023.x86_64", OSImage: "Amazon Linux 2023.6.20241010", ContainerRuntimeVersion: "containerd://1.7.22",
		KubeletVersion: "v1.37.2-eks-7f9249a", KubeProxyVersion: "v1.37.2-eks-7f9249a", OperatingSystem: "linux", Architecture: "amd64",
	}
	n.Status.DaemonEndpoints = corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: 10250}}
	for j := range 12 {
		n.Status.Images = append(n.Status.Images, corev1.ContainerImage{
			Names:     []string{fmt.Sprintf("123456789012.dkr.ecr.us-east-1.amazonaws.com/svc-%03d@sha256:%064x", j, j), fmt.Sprintf("123456789012.dkr.ecr.us-east-1.amazonaws.com/svc-%03d:v1.%d.0", j, j)},
			SizeBytes: int64(50+j*10) << 20,
		})
	}
	return n
}

// loadWorkload is a Deployment's ReplicaSet: its pods share a template.
type loadWorkload struct {
	namespace, app, hash string
	uid                  types.UID
	cpu, memory          string
	spread               bool
}

func loadWorkloads(n, namespaces int) []loadWorkload {
	cpus := []string{"100m", "250m", "500m", "50m"}
	mems := []string{"128Mi", "256Mi", "512Mi", "1Gi"}
	out := make([]loadWorkload, n)
	for i := range out {
		out[i] = loadWorkload{
			namespace: loadNamespace(i % namespaces),
			app:       fmt.Sprintf("svc-%03d", i),
			hash:      fmt.Sprintf("%010x", 0x5d8c9f7b4+i*7919)[:10],
			uid:       types.UID(fmt.Sprintf("8f3c2a1e-%04x-4b7d-9c2e-%012x", i, i)),
			cpu:       cpus[i%len(cpus)],
			memory:    mems[i%len(mems)],
			spread:    i%10 == 0,
		}
	}
	return out
}

func loadNamespace(i int) string { return fmt.Sprintf("load-%02d", i) }

// pod returns the workload's pod name, bound to node.
func (w loadWorkload) pod(name, node string) *corev1.Pod {
	labels := map[string]string{
		"app": w.app, "app.kubernetes.io/name": w.app, "app.kubernetes.io/part-of": w.namespace,
		"pod-template-hash": w.hash, "version": "v1.4.2",
	}
	env := []corev1.EnvVar{
		{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
		{Name: "POD_IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}},
		{Name: "LOG_LEVEL", Value: "info"}, {Name: "GOMAXPROCS", Value: "2"},
		{Name: "DATABASE_URL", Value: "postgres://app@db.internal:5432/" + w.app},
		{Name: "OTEL_EXPORTER_OTLP_ENDPOINT", Value: "http://otel-collector.observability:4317"},
		{Name: "FEATURE_FLAGS", Value: "checkout-v2,search-ranking,async-writes"},
	}
	probe := func(path string) *corev1.Probe {
		return &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromInt32(8080)}},
			PeriodSeconds: 10, TimeoutSeconds: 1, FailureThreshold: 3, SuccessThreshold: 1}
	}
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: w.namespace, Name: name, Labels: labels,
			Annotations: map[string]string{
				"kubectl.kubernetes.io/restartedAt": "2026-11-20T09:14:03Z", "prometheus.io/scrape": "true", "prometheus.io/port": "9090",
				"checksum/config": "4f1c9a0e2b7d3c5a8e6f0b1d2c3a4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d",
			},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: w.app + "-" + w.hash, UID: w.uid,
				Controller: new(true), BlockOwnerDeletion: new(true)}},
		},
		Spec: corev1.PodSpec{
			NodeName: node,
			Containers: []corev1.Container{
				{
					Name: "app", Image: "123456789012.dkr.ecr.us-east-1.amazonaws.com/" + w.app + ":v1.4.2",
					Command: []string{"/app/server"}, Args: []string{"--port=8080", "--metrics-port=9090"}, Env: env,
					Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}, {Name: "metrics", ContainerPort: 9090, Protocol: corev1.ProtocolTCP}},
					Resources: corev1.ResourceRequirements{
						Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(w.cpu), corev1.ResourceMemory: resource.MustParse(w.memory)},
						Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse(w.memory)},
					},
					LivenessProbe: probe("/healthz"), ReadinessProbe: probe("/readyz"),
					VolumeMounts: []corev1.VolumeMount{{Name: "config", MountPath: "/etc/app"}, {Name: "tmp", MountPath: "/tmp"}},
				},
				{
					Name: "log-shipper", Image: "public.ecr.aws/aws-observability/aws-for-fluent-bit:2.32.4",
					Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("32Mi")}},
				},
			},
			Volumes: []corev1.Volume{
				{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: w.app + "-config"}}}},
				{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
			},
			TerminationGracePeriodSeconds: new(int64(30)),
		},
	}
	if w.spread {
		p.Spec.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{
			MaxSkew: 1, TopologyKey: corev1.LabelTopologyZone, WhenUnsatisfiable: corev1.ScheduleAnyway,
			LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": w.app}},
		}}
	}
	return p
}

// procMem returns a process's resident set now and at its peak
// (/proc/<pid>/status VmRSS and VmHWM), in bytes.
func procMem(pid int) (rss, hwm int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, fmt.Errorf("read status of %d: %w", pid, err)
	}
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kib, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			rss = kib << 10
		case "VmHWM:":
			hwm = kib << 10
		}
	}
	return rss, hwm, nil
}

// clockTick is USER_HZ, the unit of /proc/<pid>/stat times: 100 on every
// Linux architecture Go supports.
const clockTick = 100

// procCPU returns the CPU time a process has used (user + system, from
// /proc/<pid>/stat).
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("read stat of %d: %w", pid, err)
	}
	// The command name may hold spaces; the fields after it do not.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("stat of %d: %d fields", pid, len(f))
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / clockTick, nil
}

// loadAvg is the machine's 1-minute load average and core count, as the
// figures are reported with.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	return fmt.Sprintf("load %s/%s/%s", f[0], f[1], f[2])
}
