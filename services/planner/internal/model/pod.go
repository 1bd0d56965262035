package model

import "time"

// Pod phases.
const (
	PodPending   = "Pending"
	PodRunning   = "Running"
	PodSucceeded = "Succeeded"
	PodFailed    = "Failed"
)

// Topology keys the planner knows how to place new nodes in.
const (
	LabelHostname = "kubernetes.io/hostname"
)

// HostPort is a host port a container asks for.
type HostPort struct {
	Port int32
	// TCP, UDP or SCTP; empty means TCP.
	Protocol string
	HostIP   string
}

// Conflicts reports whether two host ports cannot share a node: same port
// and protocol, and host IPs that overlap (empty or 0.0.0.0 overlaps all).
func (h HostPort) Conflicts(o HostPort) bool {
	if h.Port != o.Port || h.protocol() != o.protocol() {
		return false
	}
	return wildcardIP(h.HostIP) || wildcardIP(o.HostIP) || h.HostIP == o.HostIP
}

func (h HostPort) protocol() string {
	if h.Protocol == "" {
		return "TCP"
	}
	return h.Protocol
}

func wildcardIP(ip string) bool { return ip == "" || ip == "0.0.0.0" || ip == "::" }

// Container carries what the planner reads from a container.
type Container struct {
	Name      string
	Requests  Resources
	HostPorts []HostPort
	// Sidecar marks a restartable init container, whose requests add to the
	// pod's.
	Sidecar bool
}

// PodAffinityTerm is a pod (anti-)affinity term.
type PodAffinityTerm struct {
	// Selector picks the pods the term refers to; nil matches none.
	Selector *LabelSelector
	// Namespaces the selector applies to; empty means the pod's own
	// namespace unless AllNamespaces is set.
	Namespaces    []string
	AllNamespaces bool
	TopologyKey   string
}

// WeightedPodAffinityTerm is a preferred pod (anti-)affinity term.
type WeightedPodAffinityTerm struct {
	Weight int32
	Term   PodAffinityTerm
}

// TopologySpreadConstraint mirrors the Kubernetes field of the same name.
type TopologySpreadConstraint struct {
	MaxSkew     int32
	TopologyKey string
	// DoNotSchedule when true; ScheduleAnyway (a preference) otherwise.
	DoNotSchedule bool
	Selector      *LabelSelector
	MinDomains    int32
	// NodeAffinityPolicyIgnore counts nodes the pod's node affinity excludes
	// (Kubernetes' default is Honor). NodeTaintsPolicyHonor leaves out nodes
	// whose taints the pod does not tolerate (default Ignore).
	NodeAffinityPolicyIgnore bool
	NodeTaintsPolicyHonor    bool
	MatchLabelKeys           []string
}

// VolumeTopology restricts where a pod may run because of a volume: the
// node must satisfy one of Terms.
type VolumeTopology struct {
	Claim string
	Terms []NodeSelectorTerm
}

// Pod is a pod as the planner sees it.
type Pod struct {
	Namespace string
	Name      string
	UID       string
	Labels    map[string]string

	Containers     []Container
	InitContainers []Container
	Overhead       Resources

	// NodeName is the bound node; empty for a pending pod.
	NodeName string
	// NominatedNodeClaim is the in-flight NodeClaim the pod waits for.
	NominatedNodeClaim string

	NodeSelector             map[string]string
	NodeAffinity             NodeAffinity
	PodAffinity              []PodAffinityTerm
	PreferredPodAffinity     []WeightedPodAffinityTerm
	PodAntiAffinity          []PodAffinityTerm
	PreferredPodAntiAffinity []WeightedPodAffinityTerm
	TopologySpread           []TopologySpreadConstraint
	Tolerations              []Toleration
	Volumes                  []VolumeTopology

	// OwnerKind is "ReplicaSet", "StatefulSet", "DaemonSet", "Job", ...
	OwnerKind string
	OwnerName string
	Priority  int32
	// DoNotDisrupt is karpenter.sh/do-not-disrupt: "true".
	DoNotDisrupt bool
	// LocalStorage is set when the pod uses emptyDir or hostPath storage.
	LocalStorage bool
	Phase        string
	Terminating  bool
	Created      time.Time
	// Unschedulable is set when the scheduler reported PodScheduled=False
	// with reason Unschedulable.
	Unschedulable bool
	SchedulerName string
}

// Key returns "namespace/name".
func (p *Pod) Key() string { return p.Namespace + "/" + p.Name }

// Requests returns what the pod asks of a node, as Kubernetes computes it:
// the sum of its containers; each init container at its peak together with
// the sidecars started before it, the pod needing the largest such peak;
// sidecars adding to the running sum; then the pod overhead. Pods is 1.
func (p *Pod) Requests() Resources {
	return PodRequests(p.Containers, p.InitContainers, p.Overhead)
}

// PodRequests computes a pod's requests from its parts; see Pod.Requests.
func PodRequests(containers, initContainers []Container, overhead Resources) Resources {
	var reqs Resources
	for _, c := range containers {
		reqs = reqs.Add(c.Requests)
	}
	var sidecars, initPeak Resources
	for _, c := range initContainers {
		var peak Resources
		if c.Sidecar {
			reqs = reqs.Add(c.Requests)
			sidecars = sidecars.Add(c.Requests)
			peak = sidecars
		} else {
			peak = c.Requests.Add(sidecars)
		}
		initPeak = initPeak.Max(peak)
	}
	reqs = reqs.Max(initPeak).Add(overhead)
	reqs.Pods = 1
	return reqs
}

// HostPorts returns every host port the pod's containers and init
// containers ask for.
func (p *Pod) HostPorts() []HostPort {
	var out []HostPort
	for _, cs := range [][]Container{p.InitContainers, p.Containers} {
		for _, c := range cs {
			out = append(out, c.HostPorts...)
		}
	}
	return out
}

// IsDaemonSetPod reports whether a DaemonSet owns the pod.
func (p *Pod) IsDaemonSetPod() bool { return p.OwnerKind == "DaemonSet" }

// IsTerminal reports whether the pod has finished (Succeeded or Failed).
func (p *Pod) IsTerminal() bool { return p.Phase == PodSucceeded || p.Phase == PodFailed }

// IsPending reports whether the pod waits for a node the planner should
// find: unbound, not finished, not being deleted, and not a DaemonSet pod
// (those follow their nodes).
func (p *Pod) IsPending() bool {
	return p.NodeName == "" && !p.IsTerminal() && !p.Terminating && !p.IsDaemonSetPod()
}

// IsBound reports whether the pod occupies a node: bound and not finished.
func (p *Pod) IsBound() bool { return p.NodeName != "" && !p.IsTerminal() }
