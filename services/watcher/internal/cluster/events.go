package cluster

import (
	"fmt"
	"time"

	karpv1 "github.com/flotilla-dev/flotilla/api/karpenter/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"
)

// EventSource is the component name on the events the watcher records.
const EventSource = "flotilla-watcher"

// Events records Kubernetes events on the pods and NodeClaims the cluster
// caches, so `kubectl describe` shows what Flotilla decided for them.
// Recording is asynchronous and never blocks the caller; client-go's
// recorder aggregates repeats and drops events when the API server cannot
// keep up.
type Events struct {
	c           *Cluster
	broadcaster record.EventBroadcaster
	recorder    record.EventRecorder
}

// NewEvents starts recording events through client. Stop flushes and stops.
func NewEvents(client kubernetes.Interface, c *Cluster) (*Events, error) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, fmt.Errorf("event scheme: %w", err)
	}
	if err := karpv1.AddToScheme(scheme); err != nil {
		return nil, fmt.Errorf("event scheme: %w", err)
	}
	b := record.NewBroadcaster()
	b.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: client.CoreV1().Events("")})
	return &Events{c: c, broadcaster: b, recorder: b.NewRecorder(scheme, corev1.EventSource{Component: EventSource})}, nil
}

// Stop stops recording.
func (e *Events) Stop() { e.broadcaster.Shutdown() }

// Pod records an event on a cached pod ("namespace/name"); pods that are
// gone are skipped.
func (e *Events) Pod(pod, eventType, reason, message string) {
	if e.c.inf == nil {
		return
	}
	p, ok := get(e.c.inf.pods, pod).(*cachedPod)
	if !ok {
		return
	}
	e.recorder.Event(p.reference(), eventType, reason, message)
}

// NodeClaim records an event on a NodeClaim. A NodeClaim the actuator has
// only just created may not be cached yet; the event is retried a few times
// before it is dropped.
func (e *Events) NodeClaim(claim, eventType, reason, message string) {
	e.nodeClaim(claim, eventType, reason, message, 5)
}

func (e *Events) nodeClaim(claim, eventType, reason, message string, tries int) {
	if e.c.inf == nil {
		return
	}
	if nc, ok := get(e.c.inf.nodeClaims, claim).(*karpv1.NodeClaim); ok {
		e.recorder.Event(nc, eventType, reason, message)
		return
	}
	if tries > 1 {
		time.AfterFunc(time.Second, func() { e.nodeClaim(claim, eventType, reason, message, tries-1) })
	}
}
