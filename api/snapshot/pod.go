package snapshot

import (
	"fmt"
	"maps"

	clusterv1 "github.com/flotilla-dev/flotilla/gen/flotilla/cluster/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// AnnotationDoNotDisrupt on a pod (or node) keeps the planner from
// disrupting it.
const AnnotationDoNotDisrupt = "karpenter.sh/do-not-disrupt"

// ReasonUnschedulable is the reason the scheduler gives on PodScheduled=False
// when no node fits a pod.
const ReasonUnschedulable = corev1.PodReasonUnschedulable

// Lookup supplies what a pod's conversion needs beyond the pod itself. Both
// fields may be nil: without Volumes no volume topology is recorded, without
// Namespaces a pod affinity namespaceSelector matches every namespace.
type Lookup struct {
	Volumes    VolumeSource
	Namespaces NamespaceSource
}

// Pod converts a pod into the model. Errors name the field
// (*FieldError wrapped in an *ObjectError). The nominated NodeClaim is not
// set here: see Nominations.
func Pod(p *corev1.Pod, l Lookup) (*clusterv1.Pod, error) {
	out, err := podSpec(p, l)
	if err != nil {
		return nil, objectError("Pod", p.Namespace, p.Name, err)
	}
	return out, nil
}

func podSpec(p *corev1.Pod, l Lookup) (*clusterv1.Pod, error) {
	out := &clusterv1.Pod{
		Namespace:     p.Namespace,
		Name:          p.Name,
		Uid:           string(p.UID),
		Labels:        maps.Clone(p.Labels),
		NodeName:      p.Spec.NodeName,
		NodeSelector:  maps.Clone(p.Spec.NodeSelector),
		Phase:         string(p.Status.Phase),
		Terminating:   p.DeletionTimestamp != nil,
		SchedulerName: p.Spec.SchedulerName,
		DoNotDisrupt:  p.Annotations[AnnotationDoNotDisrupt] == "true",
		Created:       timestamp(p.CreationTimestamp),
		Unschedulable: isUnschedulable(p),
	}
	if p.Spec.Priority != nil {
		out.Priority = *p.Spec.Priority
	}
	if ref := owner(p.OwnerReferences); ref != nil {
		out.OwnerKind = ref.Kind
		out.OwnerName = ref.Name
	}
	var err error
	for i := range p.Spec.Containers {
		c, err := container(fmt.Sprintf("spec.containers[%d]", i), &p.Spec.Containers[i], p.Spec.HostNetwork)
		if err != nil {
			return nil, err
		}
		out.Containers = append(out.Containers, c)
	}
	for i := range p.Spec.InitContainers {
		ic := &p.Spec.InitContainers[i]
		c, err := container(fmt.Sprintf("spec.initContainers[%d]", i), ic, p.Spec.HostNetwork)
		if err != nil {
			return nil, err
		}
		c.Sidecar = ic.RestartPolicy != nil && *ic.RestartPolicy == corev1.ContainerRestartPolicyAlways
		out.InitContainers = append(out.InitContainers, c)
	}
	if out.Overhead, err = Resources("spec.overhead", p.Spec.Overhead); err != nil {
		return nil, err
	}
	if a := p.Spec.Affinity; a != nil {
		if out.NodeAffinity, err = nodeAffinity("spec.affinity.nodeAffinity", a.NodeAffinity); err != nil {
			return nil, err
		}
		if out.PodAffinity, out.PreferredPodAffinity, err = podAffinity("spec.affinity.podAffinity", p, a.PodAffinity, l.Namespaces); err != nil {
			return nil, err
		}
		if out.PodAntiAffinity, out.PreferredPodAntiAffinity, err = podAntiAffinity("spec.affinity.podAntiAffinity", p, a.PodAntiAffinity, l.Namespaces); err != nil {
			return nil, err
		}
	}
	if out.TopologySpread, err = topologySpread("spec.topologySpreadConstraints", p, p.Spec.TopologySpreadConstraints); err != nil {
		return nil, err
	}
	if out.Tolerations, err = Tolerations("spec.tolerations", p.Spec.Tolerations); err != nil {
		return nil, err
	}
	for _, v := range p.Spec.Volumes {
		if v.EmptyDir != nil || v.HostPath != nil {
			out.LocalStorage = true
			break
		}
	}
	if out.Volumes, err = volumeTopology(p, l.Volumes); err != nil {
		return nil, err
	}
	return out, nil
}

// container converts what the planner reads from a container: requests
// (a limit without a request counts as the request, as the API server
// defaults it) and host ports (with host networking a container port is a
// host port).
func container(field string, c *corev1.Container, hostNetwork bool) (*clusterv1.Container, error) {
	requests := c.Resources.Requests
	for name := range c.Resources.Limits {
		if _, ok := requests[name]; !ok {
			requests = withLimits(requests, c.Resources.Limits)
			break
		}
	}
	res, err := Resources(field+".resources.requests", requests)
	if err != nil {
		return nil, err
	}
	out := &clusterv1.Container{Name: c.Name, Requests: res}
	for i, p := range c.Ports {
		port := p.HostPort
		if port == 0 && hostNetwork {
			port = p.ContainerPort
		}
		if port == 0 {
			continue
		}
		if port < 0 || port > 65535 {
			return nil, fieldErrorf(fmt.Sprintf("%s.ports[%d].hostPort", field, i), "must be between 1 and 65535, got %d", port)
		}
		out.HostPorts = append(out.HostPorts, &clusterv1.HostPort{Port: port, Protocol: string(p.Protocol), HostIp: p.HostIP})
	}
	return out, nil
}

// withLimits returns a copy of requests with every limit that has no request
// added as the request.
func withLimits(requests, limits corev1.ResourceList) corev1.ResourceList {
	out := make(corev1.ResourceList, len(requests)+len(limits))
	maps.Copy(out, requests)
	for name, q := range limits {
		if _, ok := out[name]; !ok {
			out[name] = q
		}
	}
	return out
}

// isUnschedulable reports whether the scheduler gave up on the pod:
// PodScheduled=False with reason Unschedulable.
func isUnschedulable(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled {
			return c.Status == corev1.ConditionFalse && c.Reason == ReasonUnschedulable
		}
	}
	return false
}

// owner returns the controller owner reference, else the first one.
func owner(refs []metav1.OwnerReference) *metav1.OwnerReference {
	for i := range refs {
		if refs[i].Controller != nil && *refs[i].Controller {
			return &refs[i]
		}
	}
	if len(refs) > 0 {
		return &refs[0]
	}
	return nil
}

func timestamp(t metav1.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t.Time)
}
