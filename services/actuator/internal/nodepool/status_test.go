package nodepool

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"

	awsv1 "github.com/flotilla-dev/flotilla/api/aws/v1"
	karpv1 "github.com/flotilla-dev/flotilla/api/karpenter/v1"
)

func pool(class string, reqs ...karpv1.NodeSelectorRequirementWithMinValues) *karpv1.NodePool {
	return &karpv1.NodePool{ObjectMeta: metav1.ObjectMeta{Name: "default", Generation: 3}, Spec: karpv1.NodePoolSpec{
		Template: karpv1.NodeClaimTemplate{Spec: karpv1.NodeClaimTemplateSpec{
			Requirements: reqs,
			NodeClassRef: karpv1.NodeClassReference{Group: awsv1.Group, Kind: "EC2NodeClass", Name: class},
		}},
	}}
}

func class(name string, ready *metav1.Condition) *awsv1.EC2NodeClass {
	c := &awsv1.EC2NodeClass{ObjectMeta: metav1.ObjectMeta{Name: name, Generation: 7}}
	if ready != nil {
		c.Status.Conditions = []metav1.Condition{*ready}
	}
	return c
}

func claim(name, pool, cpu string, node string) *karpv1.NodeClaim {
	return &karpv1.NodeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{karpv1.NodePoolLabelKey: pool}},
		Status: karpv1.NodeClaimStatus{NodeName: node, Capacity: corev1.ResourceList{
			corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse("4Gi")}},
	}
}

func TestStatus(t *testing.T) {
	t.Parallel()
	classes := cache.NewSharedIndexInformer(&cache.ListWatch{}, &awsv1.EC2NodeClass{}, 0, cache.Indexers{})
	for _, c := range []*awsv1.EC2NodeClass{
		class("ready", &metav1.Condition{Type: awsv1.ConditionTypeReady, Status: metav1.ConditionTrue, Reason: "Ready"}),
		class("broken", &metav1.Condition{Type: awsv1.ConditionTypeReady, Status: metav1.ConditionFalse, Reason: "SubnetsReadyFalse",
			Message: "no subnet matches tags karpenter.sh/discovery=nope"}),
		class("new", nil),
	} {
		if err := classes.GetStore().Add(c); err != nil {
			t.Fatal(err)
		}
	}
	ctrl := New(nil, classes, nil, nil, Options{Now: func() time.Time { return time.Unix(0, 0) }})
	claims := []*karpv1.NodeClaim{
		claim("a", "default", "2", "node-a"),
		claim("b", "default", "4", ""), // launched, not registered yet
		claim("c", "other", "8", "node-c"),
	}
	for _, tc := range []struct {
		name    string
		pool    *karpv1.NodePool
		ready   bool
		reason  string
		message string
	}{
		{"ready", pool("ready"), true, ReasonReady, "the NodePool can launch nodes"},
		{"class not found", pool("missing"), false, ReasonNodeClassNotFound, "EC2NodeClass missing not found"},
		{"class not ready", pool("broken"), false, ReasonNodeClassNotReady,
			"EC2NodeClass broken is not ready: no subnet matches tags karpenter.sh/discovery=nope"},
		{"class not resolved yet", pool("new"), false, ReasonNodeClassPending, "EC2NodeClass new has not been resolved yet"},
		{"invalid", pool("ready", karpv1.NodeSelectorRequirementWithMinValues{Key: "karpenter.sh/capacity-type", Operator: "Sometimes"}),
			false, ReasonInvalid, "Sometimes"},
		{"negative limit", withLimits(pool("ready"), karpv1.Limits{corev1.ResourceCPU: resource.MustParse("-4")}),
			false, ReasonInvalid, "spec.limits[cpu]: quantity -4 is negative"},
		{"requirement on a well-known label with no values", pool("ready", karpv1.NodeSelectorRequirementWithMinValues{Key: "node.kubernetes.io/instance-type", Operator: "In"}),
			false, ReasonInvalid, "requirements[0].values: operator In needs at least one value"},
		{"invalid and its class missing: the invalid spec is said first", pool("missing", karpv1.NodeSelectorRequirementWithMinValues{Key: "team", Operator: "Equals", Values: []string{"a"}}),
			false, ReasonInvalid, "Equals"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			st := ctrl.Status(tc.pool, claims)
			ready := meta.FindStatusCondition(st.Conditions, karpv1.ConditionTypeReady)
			if ready == nil || (ready.Status == metav1.ConditionTrue) != tc.ready || ready.Reason != tc.reason || !strings.Contains(ready.Message, tc.message) {
				t.Errorf("Ready = %+v, want ready %v, reason %s, message containing %q", ready, tc.ready, tc.reason, tc.message)
			}
			if st.Nodes == nil || *st.Nodes != 1 {
				t.Errorf("nodes = %v, want 1 (b has no node yet, c is another pool's)", st.Nodes)
			}
			if cpu := st.Resources[corev1.ResourceCPU]; cpu.Cmp(resource.MustParse("6")) != 0 {
				t.Errorf("cpu in use = %s, want 6", cpu.String())
			}
			if mem := st.Resources[corev1.ResourceMemory]; mem.Cmp(resource.MustParse("8Gi")) != 0 {
				t.Errorf("memory in use = %s, want 8Gi", mem.String())
			}
		})
	}
}

func withLimits(np *karpv1.NodePool, limits karpv1.Limits) *karpv1.NodePool {
	np.Spec.Limits = limits
	return np
}
