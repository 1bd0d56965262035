package instance

import (
	"context"
	"encoding/base64"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	awsv1 "github.com/flotilla-dev/flotilla/api/aws/v1"
	"github.com/flotilla-dev/flotilla/services/actuator/internal/bootstrap"
	"github.com/flotilla-dev/flotilla/services/actuator/internal/nodeclass"
	"github.com/flotilla-dev/flotilla/services/actuator/internal/offering"
	"github.com/flotilla-dev/flotilla/test/moto"
)

var server *moto.Server

func TestMain(m *testing.M) { moto.Main(m, &server) }

// env is one test's cluster in moto: its network, node class and a provider
// on a real SDK client (with optional fault-injecting middleware).
type env struct {
	cluster  string
	ec2      *ec2.Client
	network  *moto.Network
	images   map[string]string
	class    *awsv1.EC2NodeClass
	resolved *nodeclass.Resolved
	provider *Provider
	clock    *fakeClock
}

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func newEnv(t *testing.T, cluster string, apiOptions ...func(*middleware.Stack) error) *env {
	t.Helper()
	ctx := t.Context()
	cfg, err := server.Config(ctx, apiOptions...)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{cluster: cluster, ec2: ec2.NewFromConfig(cfg), clock: &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}}
	e.network, err = moto.CreateNetwork(ctx, e.ec2, cluster)
	if err != nil {
		t.Fatal(err)
	}
	ssmClient := ssm.NewFromConfig(cfg)
	e.images, err = moto.SeedAMIParameters(ctx, ssmClient, moto.AMIParameterPrefix, "1.33")
	if err != nil {
		t.Fatal(err)
	}
	e.class = &awsv1.EC2NodeClass{
		ObjectMeta: metav1.ObjectMeta{Name: "default", UID: types.UID("uid-" + cluster)},
		Spec: awsv1.EC2NodeClassSpec{
			SubnetSelectorTerms:        []awsv1.SubnetSelectorTerm{{Tags: map[string]string{moto.DiscoveryTag: cluster}}},
			SecurityGroupSelectorTerms: []awsv1.SecurityGroupSelectorTerm{{Tags: map[string]string{moto.DiscoveryTag: cluster}}},
			AMISelectorTerms:           []awsv1.AMISelectorTerm{{Alias: "al2023@latest"}},
			Tags:                       map[string]string{"team": "flotilla"},
		},
	}
	r := nodeclass.NewResolver(e.ec2, ssmClient, nodeclass.Options{AMIParameterPrefix: moto.AMIParameterPrefix, KubernetesVersion: "1.33"})
	e.resolved, err = r.Resolve(ctx, e.class)
	if err != nil {
		t.Fatal(err)
	}
	e.provider = New(e.ec2, Options{ClusterName: cluster, Unavailable: offering.NewUnavailable(0, e.clock.Now)})
	return e
}

func (e *env) request(name string, offerings ...Offering) *LaunchRequest {
	return &LaunchRequest{
		NodeClaim: name, NodeClaimUID: "uid-" + name, NodePool: "default",
		NodeClass: e.class, Resolved: e.resolved, Offerings: offerings,
		UserData: func(o Offering) (string, error) {
			return bootstrap.UserData(
				bootstrap.Cluster{Name: e.cluster, APIServerEndpoint: "https://127.0.0.1:6443", CertificateAuthority: "Q0E=", CIDR: "10.96.0.0/16"},
				bootstrap.Node{
					Labels:     map[string]string{"karpenter.sh/nodepool": "default", "karpenter.sh/capacity-type": o.CapacityType},
					VCPU:       o.VCPU,
					ENIMaxPods: o.MaxPods,
				})
		},
	}
}

var (
	t3mediumA = Offering{InstanceType: "t3.medium", Zone: "us-east-1a", CapacityType: "on-demand", Price: 0.0416, Arch: "amd64", VCPU: 2, MaxPods: 17}
	t3largeB  = Offering{InstanceType: "t3.large", Zone: "us-east-1b", CapacityType: "on-demand", Price: 0.0832, Arch: "amd64", VCPU: 2, MaxPods: 35}
	spotA     = Offering{InstanceType: "t3.medium", Zone: "us-east-1a", CapacityType: "spot", Price: 0.015, Arch: "amd64", VCPU: 2, MaxPods: 17}
	spotB     = Offering{InstanceType: "t3.medium", Zone: "us-east-1b", CapacityType: "spot", Price: 0.016, Arch: "amd64", VCPU: 2, MaxPods: 17}
	spotLarge = Offering{InstanceType: "t3.large", Zone: "us-east-1c", CapacityType: "spot", Price: 0.03, Arch: "amd64", VCPU: 2, MaxPods: 35}
	// elsewhere is in a zone the node class has no subnet in.
	elsewhere = Offering{InstanceType: "t3.micro", Zone: "us-east-1d", CapacityType: "on-demand", Price: 0.01, Arch: "amd64", VCPU: 2, MaxPods: 4}
)

func (e *env) instancesOf(t *testing.T, nodeClaim string) []ec2types.Instance {
	t.Helper()
	out, err := e.ec2.DescribeInstances(t.Context(), &ec2.DescribeInstancesInput{Filters: []ec2types.Filter{
		{Name: aws.String("tag:karpenter.sh/nodeclaim"), Values: []string{nodeClaim}},
		{Name: aws.String("tag:kubernetes.io/cluster/" + e.cluster), Values: []string{"owned"}},
		{Name: aws.String("instance-state-name"), Values: []string{"pending", "running"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	var is []ec2types.Instance
	for _, r := range out.Reservations {
		is = append(is, r.Instances...)
	}
	return is
}

func tagMap(tags []ec2types.Tag) map[string]string {
	m := map[string]string{}
	for _, t := range tags {
		m[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	return m
}

func TestLaunchOnMoto(t *testing.T) {
	e := newEnv(t, "launch")
	ctx := t.Context()
	req := e.request("default-abc12", elsewhere, t3mediumA, t3largeB)
	inst, err := e.provider.Launch(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if inst.Type != "t3.medium" || inst.Zone != "us-east-1a" || inst.CapacityType != "on-demand" {
		t.Errorf("launched %s in %s (%s), want the cheapest offering in the node class's zones: t3.medium in us-east-1a (on-demand)",
			inst.Type, inst.Zone, inst.CapacityType)
	}
	if want := "aws:///us-east-1a/" + inst.ID; inst.ProviderID() != want {
		t.Errorf("ProviderID = %q, want %q", inst.ProviderID(), want)
	}

	got := e.instancesOf(t, "default-abc12")
	if len(got) != 1 {
		t.Fatalf("instances tagged for the NodeClaim = %d, want 1", len(got))
	}
	i := got[0]
	if sn := aws.ToString(i.SubnetId); sn != e.network.Subnets["us-east-1a"] {
		t.Errorf("subnet = %s, want the node class's us-east-1a subnet %s", sn, e.network.Subnets["us-east-1a"])
	}
	var groups []string
	for _, g := range i.SecurityGroups {
		groups = append(groups, aws.ToString(g.GroupId))
	}
	if diff := cmp.Diff([]string{e.network.SecurityGroup}, groups); diff != "" {
		t.Errorf("security groups (-want +got):\n%s", diff)
	}
	if aws.ToString(i.ImageId) != e.images["x86_64"] {
		t.Errorf("image = %s, want the al2023 alias's %s", aws.ToString(i.ImageId), e.images["x86_64"])
	}
	wantTags := map[string]string{
		"kubernetes.io/cluster/launch":   "owned",
		"karpenter.sh/nodepool":          "default",
		"karpenter.sh/nodeclaim":         "default-abc12",
		"karpenter.k8s.aws/ec2nodeclass": "default",
		"eks:eks-cluster-name":           "launch",
		"karpenter.sh/managed-by":        "launch",
		"Name":                           "default-abc12",
		"team":                           "flotilla",
	}
	if diff := cmp.Diff(wantTags, tagMap(i.Tags)); diff != "" {
		t.Errorf("instance tags (-want +got):\n%s", diff)
	}

	// Volumes and network interfaces carry the same tags.
	vols, err := e.ec2.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{Filters: []ec2types.Filter{
		{Name: aws.String("attachment.instance-id"), Values: []string{inst.ID}}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(vols.Volumes) == 0 {
		t.Error("instance has no volume")
	}
	for _, v := range vols.Volumes {
		if diff := cmp.Diff(wantTags, tagMap(v.Tags)); diff != "" {
			t.Errorf("volume %s tags (-want +got):\n%s", aws.ToString(v.VolumeId), diff)
		}
	}
	enis, err := e.ec2.DescribeNetworkInterfaces(ctx, &ec2.DescribeNetworkInterfacesInput{Filters: []ec2types.Filter{
		{Name: aws.String("attachment.instance-id"), Values: []string{inst.ID}}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(enis.NetworkInterfaces) == 0 {
		t.Error("instance has no network interface")
	}
	for _, n := range enis.NetworkInterfaces {
		if diff := cmp.Diff(wantTags, tagMap(n.TagSet)); diff != "" {
			t.Errorf("network interface %s tags (-want +got):\n%s", aws.ToString(n.NetworkInterfaceId), diff)
		}
	}

	// The launch template: named for the cluster, with the image and the
	// nodeadm bootstrap as user data.
	lts, err := e.ec2.DescribeLaunchTemplates(ctx, &ec2.DescribeLaunchTemplatesInput{Filters: []ec2types.Filter{
		{Name: aws.String("tag:kubernetes.io/cluster/launch"), Values: []string{"owned"}}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(lts.LaunchTemplates) == 0 {
		t.Fatal("no launch template tagged for the cluster")
	}
	var names []string
	for _, lt := range lts.LaunchTemplates {
		names = append(names, aws.ToString(lt.LaunchTemplateName))
		if !strings.HasPrefix(aws.ToString(lt.LaunchTemplateName), "flotilla/launch/") {
			t.Errorf("launch template name %q, want prefix flotilla/launch/", aws.ToString(lt.LaunchTemplateName))
		}
	}
	attr, err := e.ec2.DescribeInstanceAttribute(ctx, &ec2.DescribeInstanceAttributeInput{
		InstanceId: aws.String(inst.ID), Attribute: ec2types.InstanceAttributeNameUserData})
	if err != nil {
		t.Fatal(err)
	}
	doc, err := base64.StdEncoding.DecodeString(aws.ToString(attr.UserData.Value))
	if err != nil {
		t.Fatalf("user data is not base64: %v", err)
	}
	for _, want := range []string{
		"Content-Type: application/node.eks.aws",
		"kind: NodeConfig",
		"name: launch",
		"maxPods: 17",
		"memory: 442Mi",
		"--node-labels=karpenter.sh/capacity-type=on-demand,karpenter.sh/nodepool=default",
		"--register-with-taints=karpenter.sh/unregistered:NoExecute",
	} {
		if !strings.Contains(string(doc), want) {
			t.Errorf("user data lacks %q:\n%s", want, doc)
		}
	}

	// A repeated launch of the same NodeClaim launches nothing more, even
	// from a fresh provider (a restarted actuator).
	again, err := New(e.ec2, Options{ClusterName: "launch"}).Launch(ctx, e.request("default-abc12", t3largeB))
	if err != nil {
		t.Fatal(err)
	}
	if again.ID != inst.ID {
		t.Errorf("repeated launch returned %s, want the first instance %s", again.ID, inst.ID)
	}
	if n := len(e.instancesOf(t, "default-abc12")); n != 1 {
		t.Errorf("instances after a repeated launch = %d, want 1", n)
	}

	// A second NodeClaim with the same settings reuses the launch template.
	if _, err := e.provider.Launch(ctx, e.request("default-def34", t3mediumA)); err != nil {
		t.Fatal(err)
	}
	lts2, err := e.ec2.DescribeLaunchTemplates(ctx, &ec2.DescribeLaunchTemplatesInput{Filters: []ec2types.Filter{
		{Name: aws.String("tag:kubernetes.io/cluster/launch"), Values: []string{"owned"}}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(lts2.LaunchTemplates) != len(lts.LaunchTemplates) {
		t.Errorf("launch templates after a second launch = %d, want the same %d (%v)", len(lts2.LaunchTemplates), len(lts.LaunchTemplates), names)
	}
}

// fleetFaults injects EC2 behaviour moto cannot produce into the real
// client: capacity errors for some offerings and throttling.
type fleetFaults struct {
	mu sync.Mutex
	// exhausted capacity types fail every override with this code.
	exhausted map[string]string
	// throttle is how many CreateFleet attempts to fail with
	// RequestLimitExceeded.
	throttle int
	calls    []fleetCall
	attempts int
}

type fleetCall struct {
	at           time.Time
	capacityType string
	types        []string
}

func (f *fleetFaults) option(stack *middleware.Stack) error {
	// Capacity: answer the request as EC2 does, with per-override errors
	// and no instance.
	err := stack.Initialize.Add(middleware.InitializeMiddlewareFunc("inject-capacity", func(
		ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler,
	) (middleware.InitializeOutput, middleware.Metadata, error) {
		fleet, ok := in.Parameters.(*ec2.CreateFleetInput)
		if !ok {
			return next.HandleInitialize(ctx, in)
		}
		ct := string(fleet.TargetCapacitySpecification.DefaultTargetCapacityType)
		call := fleetCall{at: time.Now(), capacityType: ct}
		for _, c := range fleet.LaunchTemplateConfigs {
			for _, o := range c.Overrides {
				call.types = append(call.types, string(o.InstanceType))
			}
		}
		f.mu.Lock()
		f.calls = append(f.calls, call)
		code, fail := f.exhausted[ct]
		f.mu.Unlock()
		if !fail {
			return next.HandleInitialize(ctx, in)
		}
		out := &ec2.CreateFleetOutput{}
		for _, c := range fleet.LaunchTemplateConfigs {
			for _, o := range c.Overrides {
				out.Errors = append(out.Errors, ec2types.CreateFleetError{
					ErrorCode:    aws.String(code),
					ErrorMessage: aws.String("We currently do not have sufficient capacity in the Availability Zone you requested."),
					Lifecycle:    ec2types.InstanceLifecycle(ct),
					LaunchTemplateAndOverrides: &ec2types.LaunchTemplateAndOverridesResponse{
						Overrides: &ec2types.FleetLaunchTemplateOverrides{InstanceType: o.InstanceType, SubnetId: o.SubnetId},
					},
				})
			}
		}
		return middleware.InitializeOutput{Result: out}, middleware.Metadata{}, nil
	}), middleware.Before)
	if err != nil {
		return err
	}
	// Throttling: fail the attempt after the retry middleware, so the SDK's
	// retryer sees it as EC2's throttle.
	return stack.Finalize.Insert(middleware.FinalizeMiddlewareFunc("inject-throttle", func(
		ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler,
	) (middleware.FinalizeOutput, middleware.Metadata, error) {
		if middleware.GetOperationName(ctx) != "CreateFleet" {
			return next.HandleFinalize(ctx, in)
		}
		f.mu.Lock()
		f.attempts++
		throttle := f.throttle > 0
		if throttle {
			f.throttle--
		}
		f.mu.Unlock()
		if throttle {
			return middleware.FinalizeOutput{}, middleware.Metadata{}, &smithy.GenericAPIError{Code: "RequestLimitExceeded", Message: "Request limit exceeded."}
		}
		return next.HandleFinalize(ctx, in)
	}), "Retry", middleware.After)
}

func TestLaunchFallsBackOnCapacityErrors(t *testing.T) {
	faults := &fleetFaults{exhausted: map[string]string{"spot": "InsufficientInstanceCapacity"}}
	e := newEnv(t, "capacity", faults.option)
	ctx := t.Context()

	inst, err := e.provider.Launch(ctx, e.request("capacity-1", spotA, spotB, t3mediumA, t3largeB))
	if err != nil {
		t.Fatal(err)
	}
	if inst.CapacityType != "on-demand" || inst.Type != "t3.medium" {
		t.Errorf("launched %s %s, want the on-demand fallback t3.medium", inst.CapacityType, inst.Type)
	}
	faults.mu.Lock()
	calls := slices.Clone(faults.calls)
	faults.mu.Unlock()
	if len(calls) != 2 {
		t.Fatalf("CreateFleet calls = %d, want 2 (spot refused, then on-demand)", len(calls))
	}
	if calls[0].capacityType != "spot" || calls[1].capacityType != "on-demand" {
		t.Errorf("capacity types tried = %s then %s, want spot then on-demand", calls[0].capacityType, calls[1].capacityType)
	}
	// The fallback is immediate: no backoff, no new plan. The gap is CPU
	// time only (measured: well under 100 ms on a quiet machine); the bound
	// catches a sleep or a retry delay without flaking under load.
	gap := calls[1].at.Sub(calls[0].at)
	t.Logf("on-demand CreateFleet %v after the spot capacity error", gap.Round(time.Microsecond))
	if gap > time.Second {
		t.Errorf("fallback took %v after the capacity error; it should not wait", gap)
	}
	for _, k := range []offering.Key{spotA.key(), spotB.key()} {
		if reason, ok := e.provider.Unavailable().Reason(k); !ok || reason != "InsufficientInstanceCapacity" {
			t.Errorf("offering %v unavailable = %v (%q), want true (InsufficientInstanceCapacity)", k, ok, reason)
		}
	}

	// While the offerings are marked, a new NodeClaim skips them without
	// asking EC2.
	if _, err := e.provider.Launch(ctx, e.request("capacity-2", spotA, t3mediumA)); err != nil {
		t.Fatal(err)
	}
	faults.mu.Lock()
	if got := faults.calls[len(faults.calls)-1].capacityType; len(faults.calls) != 3 || got != "on-demand" {
		t.Errorf("CreateFleet calls = %d, last %s; want 3, on-demand only", len(faults.calls), got)
	}
	// Spot capacity is back, and the cache expires after its TTL.
	delete(faults.exhausted, "spot")
	faults.mu.Unlock()
	e.clock.Advance(offering.DefaultUnavailableTTL - time.Second)
	if !e.provider.Unavailable().Contains(spotA.key()) {
		t.Error("offering available again before the TTL ran out")
	}
	e.clock.Advance(2 * time.Second)
	if e.provider.Unavailable().Contains(spotA.key()) {
		t.Error("offering still unavailable after the TTL ran out")
	}
	spot, err := e.provider.Launch(ctx, e.request("capacity-3", spotA, t3mediumA))
	if err != nil {
		t.Fatal(err)
	}
	if spot.CapacityType != "spot" {
		t.Errorf("after the TTL launched %s, want spot again", spot.CapacityType)
	}
}

func TestLaunchReportsWhenNoOfferingIsLeft(t *testing.T) {
	faults := &fleetFaults{exhausted: map[string]string{"spot": "InsufficientInstanceCapacity", "on-demand": "InsufficientInstanceCapacity"}}
	e := newEnv(t, "nocapacity", faults.option)
	_, err := e.provider.Launch(t.Context(), e.request("none-1", spotA, t3mediumA, spotLarge))
	var ce *CapacityError
	if !errors.As(err, &ce) || !errors.Is(err, ErrInsufficientCapacity) {
		t.Fatalf("Launch error = %v, want a *CapacityError", err)
	}
	if !strings.Contains(err.Error(), "t3.medium us-east-1a spot: InsufficientInstanceCapacity") {
		t.Errorf("error %q does not say which offering failed and why", err)
	}
	if n := len(e.instancesOf(t, "none-1")); n != 0 {
		t.Errorf("instances = %d, want 0", n)
	}
}

func TestLaunchRetriesThrottling(t *testing.T) {
	faults := &fleetFaults{throttle: 2}
	e := newEnv(t, "throttle", faults.option)
	inst, err := e.provider.Launch(t.Context(), e.request("throttle-1", t3mediumA))
	if err != nil {
		t.Fatalf("Launch through two throttled attempts: %v", err)
	}
	faults.mu.Lock()
	attempts := faults.attempts
	faults.mu.Unlock()
	if attempts != 3 {
		t.Errorf("CreateFleet attempts = %d, want 3 (two throttled, one through)", attempts)
	}
	if got := e.instancesOf(t, "throttle-1"); len(got) != 1 || aws.ToString(got[0].InstanceId) != inst.ID {
		t.Errorf("instances = %d, want exactly the one launched", len(got))
	}

	// Throttled past the retry budget: an error, nothing launched, and the
	// offering is not blamed for capacity.
	faults.mu.Lock()
	faults.throttle = 10
	faults.mu.Unlock()
	_, err = e.provider.Launch(t.Context(), e.request("throttle-2", t3largeB))
	if err == nil || errors.Is(err, ErrInsufficientCapacity) {
		t.Fatalf("Launch while throttled = %v, want the throttling error", err)
	}
	if e.provider.Unavailable().Contains(t3largeB.key()) {
		t.Error("throttling marked the offering unavailable")
	}
	if n := len(e.instancesOf(t, "throttle-2")); n != 0 {
		t.Errorf("instances = %d, want 0", n)
	}
}

// TestLaunchRenewsMissingTemplates: a launch template the actuator made is
// gone from EC2 (deleted by hand, or the account's state lost) while the
// actuator still counts on it. The next launch makes it again and
// succeeds, rather than failing until the node class changes.
func TestLaunchRenewsMissingTemplates(t *testing.T) {
	e := newEnv(t, "renew")
	ctx := t.Context()
	if _, err := e.provider.Launch(ctx, e.request("renew-1", t3mediumA)); err != nil {
		t.Fatal(err)
	}
	out, err := e.ec2.DescribeLaunchTemplates(ctx, &ec2.DescribeLaunchTemplatesInput{})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.LaunchTemplates) == 0 {
		t.Fatal("the first launch made no launch template")
	}
	for _, lt := range out.LaunchTemplates {
		if _, err := e.ec2.DeleteLaunchTemplate(ctx, &ec2.DeleteLaunchTemplateInput{LaunchTemplateId: lt.LaunchTemplateId}); err != nil {
			t.Fatal(err)
		}
	}
	inst, err := e.provider.Launch(ctx, e.request("renew-2", t3mediumA))
	if err != nil {
		t.Fatalf("launch after the template was deleted: %v", err)
	}
	if inst.Type != "t3.medium" {
		t.Errorf("launched %s, want t3.medium", inst.Type)
	}
	out, err = e.ec2.DescribeLaunchTemplates(ctx, &ec2.DescribeLaunchTemplatesInput{})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.LaunchTemplates) == 0 {
		t.Error("no launch template after the launch: it was not made again")
	}
}

// TestLaunchSaysWhenTheResolutionIsStale: EC2 refusing a launch because a
// resolved subnet, security group or image is gone (as a request error or
// as the fleet's per-override errors) is told apart from other failures,
// so the caller resolves the node class again; other refusals are not.
func TestLaunchSaysWhenTheResolutionIsStale(t *testing.T) {
	faults := &fleetFaults{exhausted: map[string]string{}}
	e := newEnv(t, "stale", faults.option)
	ctx := t.Context()

	gone := e.request("stale-subnet", t3mediumA)
	resolved := *e.resolved
	resolved.Subnets = slices.Clone(resolved.Subnets)
	for i := range resolved.Subnets {
		resolved.Subnets[i].ID = "subnet-0123456789abcdef0"
	}
	gone.Resolved = &resolved
	if _, err := e.provider.Launch(ctx, gone); !errors.Is(err, ErrStaleResolution) {
		t.Errorf("launch into a deleted subnet: error %v, want ErrStaleResolution", err)
	}

	for code, stale := range map[string]bool{"InvalidGroup.NotFound": true, "InvalidAMIID.NotFound": true, "InvalidParameterValue": false} {
		faults.mu.Lock()
		faults.exhausted["on-demand"] = code
		faults.mu.Unlock()
		_, err := e.provider.Launch(ctx, e.request("stale-"+strings.ToLower(strings.ReplaceAll(code, ".", "-")), t3mediumA))
		if err == nil || errors.Is(err, ErrStaleResolution) != stale {
			t.Errorf("fleet error %s: Launch error %v, want stale=%v", code, err, stale)
		}
	}
}
