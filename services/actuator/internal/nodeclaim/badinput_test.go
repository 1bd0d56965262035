package nodeclaim

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	awsv1 "github.com/flotilla-dev/flotilla/api/aws/v1"
	karpv1 "github.com/flotilla-dev/flotilla/api/karpenter/v1"
	"github.com/flotilla-dev/flotilla/services/actuator/internal/karpenter"
	"github.com/flotilla-dev/flotilla/test/moto"
)

// TestBrokenNodeClassesLeaveOtherPoolsWorking gives NodePools node classes
// the schema accepts but EC2 cannot serve. Their NodeClaims say why in
// words and launch nothing, while the good NodePool's claim launches.
func TestBrokenNodeClassesLeaveOtherPoolsWorking(t *testing.T) {
	l := newLifecycle(t, "100")
	cfg := restConfig(t)
	ctx := t.Context()
	good := map[string]string{moto.DiscoveryTag: l.name}

	tests := []struct {
		name        string
		spec        awsv1.EC2NodeClassSpec
		wantMessage string
	}{{
		name: "subnets",
		spec: awsv1.EC2NodeClassSpec{
			SubnetSelectorTerms:        []awsv1.SubnetSelectorTerm{{Tags: map[string]string{"team": "nobody"}}},
			SecurityGroupSelectorTerms: []awsv1.SecurityGroupSelectorTerm{{Tags: good}},
			AMISelectorTerms:           []awsv1.AMISelectorTerm{{Alias: "al2023@latest"}},
		},
		wantMessage: "team=nobody",
	}, {
		name: "groups",
		spec: awsv1.EC2NodeClassSpec{
			SubnetSelectorTerms:        []awsv1.SubnetSelectorTerm{{Tags: good}},
			SecurityGroupSelectorTerms: []awsv1.SecurityGroupSelectorTerm{{Name: "no-such-group"}},
			AMISelectorTerms:           []awsv1.AMISelectorTerm{{Alias: "al2023@latest"}},
		},
		wantMessage: "no-such-group",
	}, {
		name: "alias",
		spec: awsv1.EC2NodeClassSpec{
			SubnetSelectorTerms:        []awsv1.SubnetSelectorTerm{{Tags: good}},
			SecurityGroupSelectorTerms: []awsv1.SecurityGroupSelectorTerm{{Tags: good}},
			AMISelectorTerms:           []awsv1.AMISelectorTerm{{Alias: "al2023@v19990101"}},
		},
		wantMessage: "al2023@v19990101",
	}, {
		name: "images",
		spec: awsv1.EC2NodeClassSpec{
			AMIFamily:                  "AL2023",
			SubnetSelectorTerms:        []awsv1.SubnetSelectorTerm{{Tags: good}},
			SecurityGroupSelectorTerms: []awsv1.SecurityGroupSelectorTerm{{Tags: good}},
			AMISelectorTerms:           []awsv1.AMISelectorTerm{{Tags: map[string]string{"release": "never"}}},
		},
		wantMessage: "release=never",
	}}
	broken := map[string]string{} // claim → what its condition must name
	for _, tt := range tests {
		name := l.name + "-" + tt.name
		create(t, cfg, awsv1.SchemeGroupVersion, karpenter.EC2NodeClasses, &awsv1.EC2NodeClass{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: tt.spec})
		create(t, cfg, karpv1.SchemeGroupVersion, karpenter.NodePools, &karpv1.NodePool{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: karpv1.NodePoolSpec{
			Template: karpv1.NodeClaimTemplate{Spec: karpv1.NodeClaimTemplateSpec{
				Requirements: []karpv1.NodeSelectorRequirementWithMinValues{req(karpv1.CapacityTypeLabelKey, corev1.NodeSelectorOpIn, "on-demand")},
				NodeClassRef: karpv1.NodeClassReference{Group: awsv1.Group, Kind: "EC2NodeClass", Name: name},
			}},
		}})
		t.Cleanup(func() {
			del(cfg, karpv1.SchemeGroupVersion, karpenter.NodePools, name)
			del(cfg, awsv1.SchemeGroupVersion, karpenter.EC2NodeClasses, name)
		})
		plan := l.plan(name+"-1", "t3.medium")
		plan.NodePool = name
		outcome, msg, err := l.ctrl.Create(ctx, plan)
		if err != nil {
			t.Fatalf("%s: Create: %v", tt.name, err)
		}
		if outcome == Created {
			broken[plan.Name] = tt.wantMessage
		} else if !strings.Contains(msg, tt.wantMessage) {
			// Refused at once is fine too, if it says why.
			t.Errorf("%s: Create = %v %q, want Created or a refusal naming %q", tt.name, outcome, msg, tt.wantMessage)
		}
	}

	// The good NodePool launches meanwhile.
	okName := l.name + "-a"
	if outcome, msg, err := l.ctrl.Create(ctx, l.plan(okName, "t3.medium")); err != nil || outcome != Created {
		t.Fatalf("Create in the good NodePool = %v %q %v", outcome, msg, err)
	}
	waitFor(t, "good claim Launched", func() (bool, error) {
		c, err := l.crd.GetNodeClaim(ctx, okName)
		return err == nil && c.IsTrue(karpv1.ConditionTypeLaunched), err
	})
	if n := len(l.instances(t, okName)); n != 1 {
		t.Errorf("instances of the good claim = %d, want 1", n)
	}

	for name, wantMessage := range broken {
		waitFor(t, name+" says why", func() (bool, error) {
			c, err := l.crd.GetNodeClaim(ctx, name)
			if err != nil {
				return false, err
			}
			cond := c.Condition(karpv1.ConditionTypeLaunched)
			return cond != nil && cond.Reason == ReasonNodeClassNotReady, nil
		})
		c, err := l.crd.GetNodeClaim(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		cond := c.Condition(karpv1.ConditionTypeLaunched)
		if cond.Status != metav1.ConditionFalse || !strings.Contains(cond.Message, wantMessage) {
			t.Errorf("%s: Launched = %s %q, want False naming %q", name, cond.Status, cond.Message, wantMessage)
		}
		if n := len(l.instances(t, name)); n != 0 {
			t.Errorf("%s: instances = %d, want 0", name, n)
		}
		if err := l.ctrl.Delete(ctx, name); err != nil {
			t.Fatal(err)
		}
		waitFor(t, name+" gone", func() (bool, error) {
			_, err := l.crd.GetNodeClaim(ctx, name)
			return apierrors.IsNotFound(err), nil
		})
	}
}
