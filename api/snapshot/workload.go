package snapshot

import (
	"slices"

	clusterv1 "github.com/flotilla-dev/flotilla/gen/flotilla/cluster/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// daemonTolerations are the tolerations the DaemonSet controller adds to
// every daemon pod, so a daemon also lands on not-ready, pressured and
// cordoned nodes.
var daemonTolerations = []corev1.Toleration{
	{Key: corev1.TaintNodeNotReady, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute},
	{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute},
	{Key: corev1.TaintNodeDiskPressure, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
	{Key: corev1.TaintNodeMemoryPressure, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
	{Key: corev1.TaintNodePIDPressure, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
	{Key: corev1.TaintNodeUnschedulable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
}

// DaemonSet converts a DaemonSet into the model: its pod template as a pod
// named after the DaemonSet, owned by it, with the tolerations the
// DaemonSet controller adds to daemon pods.
func DaemonSet(ds *appsv1.DaemonSet, l Lookup) (*clusterv1.DaemonSet, error) {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace:   ds.Namespace,
			Name:        ds.Name,
			Labels:      ds.Spec.Template.Labels,
			Annotations: ds.Spec.Template.Annotations,
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "apps/v1", Kind: "DaemonSet", Name: ds.Name, UID: ds.UID, Controller: new(true),
			}},
		},
		Spec: ds.Spec.Template.Spec,
	}
	p.Spec.Tolerations = slices.Clone(p.Spec.Tolerations)
	extra := daemonTolerations
	if p.Spec.HostNetwork {
		extra = append(slices.Clone(extra), corev1.Toleration{Key: corev1.TaintNodeNetworkUnavailable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule})
	}
	for _, t := range extra {
		if !slices.ContainsFunc(p.Spec.Tolerations, func(have corev1.Toleration) bool {
			return have.Key == t.Key && have.Operator == t.Operator && have.Effect == t.Effect
		}) {
			p.Spec.Tolerations = append(p.Spec.Tolerations, t)
		}
	}
	tmpl, err := podSpec(p, l)
	if err != nil {
		return nil, objectError("DaemonSet", ds.Namespace, ds.Name, prefixField("spec.template", err))
	}
	// The template is not a running pod: no phase, no scheduling state.
	tmpl.Uid = ""
	return &clusterv1.DaemonSet{Namespace: ds.Namespace, Name: ds.Name, Template: tmpl}, nil
}

// PodDisruptionBudget converts a PDB: its selector and how many disruptions
// it allows right now (status.disruptionsAllowed).
func PodDisruptionBudget(pdb *policyv1.PodDisruptionBudget) (*clusterv1.PodDisruptionBudget, error) {
	sel, err := LabelSelector("spec.selector", pdb.Spec.Selector)
	if err != nil {
		return nil, objectError("PodDisruptionBudget", pdb.Namespace, pdb.Name, err)
	}
	return &clusterv1.PodDisruptionBudget{
		Namespace:          pdb.Namespace,
		Name:               pdb.Name,
		Selector:           sel,
		DisruptionsAllowed: pdb.Status.DisruptionsAllowed,
	}, nil
}
