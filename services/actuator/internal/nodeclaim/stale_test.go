package nodeclaim

import (
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	karpv1 "github.com/flotilla-dev/flotilla/api/karpenter/v1"
	"github.com/flotilla-dev/flotilla/test/moto"
)

// TestLaunchAfterTheNetworkIsRebuilt: the node class's subnets and security
// group are deleted and made again with new ids (an account rebuilt, or
// moto restarted) while the controller still holds the old resolution. The
// next claim launches into the new subnets on its first attempt, without a
// LaunchFailed pause (the resolution would otherwise stay stale for its
// minute, and every launch in it fail with InvalidSubnetID.NotFound).
func TestLaunchAfterTheNetworkIsRebuilt(t *testing.T) {
	l := newLifecycle(t, "100")
	seen := l.watchLaunched(t)
	ctx := t.Context()
	a, b := l.name+"-a", l.name+"-b"

	if outcome, msg, err := l.ctrl.Create(ctx, l.planOf(a, "t3.medium")); err != nil || outcome != Created {
		t.Fatalf("Create %s = %v %q %v, want Created", a, outcome, msg, err)
	}
	waitFor(t, a+" launched", func() (bool, error) {
		claim, err := l.crd.GetNodeClaim(ctx, a)
		return err == nil && claim.IsTrue(karpv1.ConditionTypeLaunched), err
	})
	if err := l.crd.DeleteNodeClaim(ctx, a); err != nil {
		t.Fatal(err)
	}
	waitFor(t, a+" gone", func() (bool, error) {
		_, err := l.crd.GetNodeClaim(ctx, a)
		return apierrors.IsNotFound(err), nil
	})

	old, err := moto.FindNetwork(ctx, l.ec2, l.name)
	if err != nil || old == nil {
		t.Fatalf("FindNetwork = %v, %v", old, err)
	}
	for _, id := range old.SubnetIDs() {
		if _, err := l.ec2.DeleteSubnet(ctx, &ec2.DeleteSubnetInput{SubnetId: aws.String(id)}); err != nil {
			t.Fatalf("delete subnet %s: %v", id, err)
		}
	}
	if _, err := l.ec2.DeleteSecurityGroup(ctx, &ec2.DeleteSecurityGroupInput{GroupId: aws.String(old.SecurityGroup)}); err != nil {
		t.Fatalf("delete security group: %v", err)
	}
	if _, err := l.ec2.DeleteVpc(ctx, &ec2.DeleteVpcInput{VpcId: aws.String(old.VPC)}); err != nil {
		t.Fatalf("delete vpc: %v", err)
	}
	rebuilt, err := moto.CreateNetwork(ctx, l.ec2, l.name)
	if err != nil {
		t.Fatal(err)
	}

	if outcome, msg, err := l.ctrl.Create(ctx, l.planOf(b, "t3.medium")); err != nil || outcome != Created {
		t.Fatalf("Create %s = %v %q %v, want Created", b, outcome, msg, err)
	}
	waitFor(t, b+" launched", func() (bool, error) {
		claim, err := l.crd.GetNodeClaim(ctx, b)
		return err == nil && claim.IsTrue(karpv1.ConditionTypeLaunched), err
	})
	if got, failed := seen.find(b, ReasonLaunchFailed); failed {
		t.Errorf("the claim waited on a stale resolution: %s", got)
	}
	is := l.instances(t, b)
	if len(is) != 1 {
		t.Fatalf("instances of %s = %d, want 1", b, len(is))
	}
	if subnet := aws.ToString(is[0].SubnetId); !slices.Contains(rebuilt.SubnetIDs(), subnet) {
		t.Errorf("instance in subnet %s, want one of the rebuilt network's %v", subnet, rebuilt.SubnetIDs())
	}
	var groups []string
	for _, g := range is[0].SecurityGroups {
		groups = append(groups, aws.ToString(g.GroupId))
	}
	if !slices.Contains(groups, rebuilt.SecurityGroup) {
		t.Errorf("instance security groups %v, want the rebuilt %s", groups, rebuilt.SecurityGroup)
	}
}
