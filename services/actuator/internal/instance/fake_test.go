package instance

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"
	"github.com/google/go-cmp/cmp"

	"github.com/flotilla-dev/flotilla/services/actuator/internal/nodeclass"
	"github.com/flotilla-dev/flotilla/services/actuator/internal/offering"
)

// fakeEC2 implements EC2API in memory: it records every call and answers
// CreateFleet with fleet(input).
type fakeEC2 struct {
	mu         sync.Mutex
	fleet      func(in *ec2.CreateFleetInput) (*ec2.CreateFleetOutput, error)
	fleets     []*ec2.CreateFleetInput
	templates  map[string]bool
	createdLTs int
	terminated []string
	next       int
}

func (f *fakeEC2) CreateFleet(_ context.Context, in *ec2.CreateFleetInput, _ ...func(*ec2.Options)) (*ec2.CreateFleetOutput, error) {
	f.mu.Lock()
	f.fleets = append(f.fleets, in)
	fleet := f.fleet
	f.mu.Unlock()
	return fleet(in)
}

func (f *fakeEC2) CreateLaunchTemplate(_ context.Context, in *ec2.CreateLaunchTemplateInput, _ ...func(*ec2.Options)) (*ec2.CreateLaunchTemplateOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.templates == nil {
		f.templates = map[string]bool{}
	}
	f.templates[aws.ToString(in.LaunchTemplateName)] = true
	f.createdLTs++
	return &ec2.CreateLaunchTemplateOutput{LaunchTemplate: &ec2types.LaunchTemplate{LaunchTemplateId: aws.String("lt-1")}}, nil
}

func (f *fakeEC2) DescribeLaunchTemplates(_ context.Context, in *ec2.DescribeLaunchTemplatesInput, _ ...func(*ec2.Options)) (*ec2.DescribeLaunchTemplatesOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.templates[in.LaunchTemplateNames[0]] {
		return &ec2.DescribeLaunchTemplatesOutput{LaunchTemplates: []ec2types.LaunchTemplate{{LaunchTemplateId: aws.String("lt-1")}}}, nil
	}
	return nil, &smithy.GenericAPIError{Code: "InvalidLaunchTemplateName.NotFoundException"}
}

func (f *fakeEC2) DescribeInstances(context.Context, *ec2.DescribeInstancesInput, ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error) {
	return &ec2.DescribeInstancesOutput{}, nil
}

func (f *fakeEC2) TerminateInstances(_ context.Context, in *ec2.TerminateInstancesInput, _ ...func(*ec2.Options)) (*ec2.TerminateInstancesOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.terminated = append(f.terminated, in.InstanceIds...)
	return &ec2.TerminateInstancesOutput{}, nil
}

func (f *fakeEC2) CreateTags(context.Context, *ec2.CreateTagsInput, ...func(*ec2.Options)) (*ec2.CreateTagsOutput, error) {
	return &ec2.CreateTagsOutput{}, nil
}

func (f *fakeEC2) DeleteLaunchTemplate(context.Context, *ec2.DeleteLaunchTemplateInput, ...func(*ec2.Options)) (*ec2.DeleteLaunchTemplateOutput, error) {
	return &ec2.DeleteLaunchTemplateOutput{}, nil
}

func (f *fakeEC2) ModifyInstanceAttribute(context.Context, *ec2.ModifyInstanceAttributeInput, ...func(*ec2.Options)) (*ec2.ModifyInstanceAttributeOutput, error) {
	return &ec2.ModifyInstanceAttributeOutput{}, nil
}

// launched answers a fleet request with n instances of its first override.
func launched(n int) func(in *ec2.CreateFleetInput) (*ec2.CreateFleetOutput, error) {
	return func(in *ec2.CreateFleetInput) (*ec2.CreateFleetOutput, error) {
		o := in.LaunchTemplateConfigs[0].Overrides[0]
		var ids []string
		for i := range n {
			ids = append(ids, fmt.Sprintf("i-%d", i))
		}
		return &ec2.CreateFleetOutput{Instances: []ec2types.CreateFleetInstance{{
			InstanceIds: ids, InstanceType: o.InstanceType,
			LaunchTemplateAndOverrides: &ec2types.LaunchTemplateAndOverridesResponse{Overrides: &ec2types.FleetLaunchTemplateOverrides{SubnetId: o.SubnetId}},
		}}}, nil
	}
}

var fakeResolved = &nodeclass.Resolved{
	Subnets: []nodeclass.Subnet{
		{ID: "subnet-a1", Zone: "us-east-1a", AvailableIPs: 10},
		{ID: "subnet-a2", Zone: "us-east-1a", AvailableIPs: 200},
		{ID: "subnet-b", Zone: "us-east-1b", AvailableIPs: 50},
	},
	SecurityGroups: []nodeclass.SecurityGroup{{ID: "sg-1"}},
	Images:         []nodeclass.Image{{ID: "ami-amd", Arch: "amd64"}, {ID: "ami-arm", Arch: "arm64"}},
}

func fakeRequest(name string, offerings ...Offering) *LaunchRequest {
	return &LaunchRequest{
		NodeClaim: name, NodeClaimUID: "uid", NodePool: "default", Resolved: fakeResolved, Offerings: offerings,
		UserData: func(o Offering) (string, error) { return "pods=" + fmt.Sprint(o.MaxPods), nil },
	}
}

func TestLaunchRequestShape(t *testing.T) {
	t.Parallel()
	f := &fakeEC2{fleet: launched(3)}
	p := New(f, Options{ClusterName: "c"})
	var offers []Offering
	for i := range 70 {
		offers = append(offers, Offering{InstanceType: fmt.Sprintf("m5.%dxlarge", i), Zone: "us-east-1a", CapacityType: "spot", Arch: "amd64", MaxPods: 29})
	}
	offers = append(offers, Offering{InstanceType: "m5.large", Zone: "us-east-1b", CapacityType: "on-demand", Arch: "amd64", MaxPods: 29})
	inst, err := p.Launch(t.Context(), fakeRequest("nc-1", offers...))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.fleets) != 1 {
		t.Fatalf("CreateFleet calls = %d, want 1", len(f.fleets))
	}
	in := f.fleets[0]
	var overrides []ec2types.FleetLaunchTemplateOverridesRequest
	for _, c := range in.LaunchTemplateConfigs {
		overrides = append(overrides, c.Overrides...)
	}
	if len(overrides) != MaxOverrides {
		t.Errorf("overrides = %d, want %d", len(overrides), MaxOverrides)
	}
	for _, o := range overrides {
		if aws.ToString(o.SubnetId) != "subnet-a2" {
			t.Errorf("override subnet %s, want subnet-a2 (the zone's subnet with most free addresses)", aws.ToString(o.SubnetId))
			break
		}
	}
	if in.Type != ec2types.FleetTypeInstant || in.TargetCapacitySpecification.DefaultTargetCapacityType != "spot" ||
		in.SpotOptions == nil || in.SpotOptions.AllocationStrategy != ec2types.SpotAllocationStrategyPriceCapacityOptimized {
		t.Errorf("fleet type %s capacity %s spot options %+v, want instant spot price-capacity-optimized",
			in.Type, in.TargetCapacitySpecification.DefaultTargetCapacityType, in.SpotOptions)
	}
	if diff := cmp.Diff([]string{"i-1", "i-2"}, f.terminated); diff != "" {
		t.Errorf("extra instances terminated (-want +got):\n%s", diff)
	}
	if inst.ID != "i-0" || inst.Zone != "us-east-1a" {
		t.Errorf("instance %s in %s, want i-0 in us-east-1a", inst.ID, inst.Zone)
	}

	// The same request again gets the same client token; the templates are
	// reused, not created again.
	created := f.createdLTs
	if _, err := New(f, Options{ClusterName: "c"}).Launch(t.Context(), fakeRequest("nc-1", offers...)); err != nil {
		t.Fatal(err)
	}
	if a, b := aws.ToString(f.fleets[0].ClientToken), aws.ToString(f.fleets[1].ClientToken); a != b || a == "" {
		t.Errorf("client tokens %q and %q, want equal and set", a, b)
	}
	if f.createdLTs != created {
		t.Errorf("launch templates created again: %d, want %d", f.createdLTs, created)
	}
}

func TestLaunchCapacityErrors(t *testing.T) {
	t.Parallel()
	spot := Offering{InstanceType: "c5.large", Zone: "us-east-1a", CapacityType: "spot", Arch: "amd64"}
	spot2 := Offering{InstanceType: "c5.xlarge", Zone: "us-east-1b", CapacityType: "spot", Arch: "amd64"}
	od := Offering{InstanceType: "c5.large", Zone: "us-east-1b", CapacityType: "on-demand", Arch: "amd64"}
	tests := []struct {
		name string
		// first answers the first request; later ones launch.
		first           func(in *ec2.CreateFleetInput) (*ec2.CreateFleetOutput, error)
		wantUnavailable []offering.Key
		wantSecondType  string
	}{
		{
			name: "account spot limit makes every spot offering unavailable",
			first: func(in *ec2.CreateFleetInput) (*ec2.CreateFleetOutput, error) {
				return &ec2.CreateFleetOutput{Errors: []ec2types.CreateFleetError{{ErrorCode: aws.String("MaxSpotInstanceCountExceeded")}}}, nil
			},
			wantUnavailable: []offering.Key{{CapacityType: "spot"}},
			wantSecondType:  "on-demand",
		},
		{
			name: "the whole request refused for capacity",
			first: func(in *ec2.CreateFleetInput) (*ec2.CreateFleetOutput, error) {
				return nil, &smithy.GenericAPIError{Code: "InsufficientInstanceCapacity"}
			},
			wantUnavailable: []offering.Key{
				{InstanceType: "c5.large", Zone: "us-east-1a", CapacityType: "spot"},
				{InstanceType: "c5.xlarge", Zone: "us-east-1b", CapacityType: "spot"},
			},
			wantSecondType: "on-demand",
		},
		{
			name: "one override unfulfillable",
			first: func(in *ec2.CreateFleetInput) (*ec2.CreateFleetOutput, error) {
				return &ec2.CreateFleetOutput{Errors: []ec2types.CreateFleetError{{
					ErrorCode: aws.String("UnfulfillableCapacity"),
					LaunchTemplateAndOverrides: &ec2types.LaunchTemplateAndOverridesResponse{Overrides: &ec2types.FleetLaunchTemplateOverrides{
						InstanceType: "c5.large", SubnetId: aws.String("subnet-a2")}},
				}}}, nil
			},
			wantUnavailable: []offering.Key{{InstanceType: "c5.large", Zone: "us-east-1a", CapacityType: "spot"}},
			wantSecondType:  "spot",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			calls := 0
			f := &fakeEC2{}
			f.fleet = func(in *ec2.CreateFleetInput) (*ec2.CreateFleetOutput, error) {
				calls++
				if calls == 1 {
					return tt.first(in)
				}
				return launched(1)(in)
			}
			p := New(f, Options{ClusterName: "c"})
			if _, err := p.Launch(t.Context(), fakeRequest("nc", spot, spot2, od)); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.wantUnavailable, p.Unavailable().Keys()); diff != "" {
				t.Errorf("unavailable (-want +got):\n%s", diff)
			}
			if len(f.fleets) != 2 {
				t.Fatalf("CreateFleet calls = %d, want 2", len(f.fleets))
			}
			if got := string(f.fleets[1].TargetCapacitySpecification.DefaultTargetCapacityType); got != tt.wantSecondType {
				t.Errorf("second request capacity type %s, want %s", got, tt.wantSecondType)
			}
		})
	}
}

func TestLaunchOtherErrorsStop(t *testing.T) {
	t.Parallel()
	f := &fakeEC2{fleet: func(*ec2.CreateFleetInput) (*ec2.CreateFleetOutput, error) {
		return &ec2.CreateFleetOutput{Errors: []ec2types.CreateFleetError{{ErrorCode: aws.String("InvalidParameterValue"), ErrorMessage: aws.String("bad AMI")}}}, nil
	}}
	p := New(f, Options{ClusterName: "c"})
	_, err := p.Launch(t.Context(), fakeRequest("nc", Offering{InstanceType: "c5.large", Zone: "us-east-1a", CapacityType: "on-demand", Arch: "amd64"}))
	if err == nil || len(f.fleets) != 1 || len(p.Unavailable().Keys()) != 0 {
		t.Errorf("err %v after %d requests with %d offerings marked; want an error after 1 request, none marked", err, len(f.fleets), len(p.Unavailable().Keys()))
	}
}

func TestParseProviderID(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"aws:///us-east-1a/i-0abc": "i-0abc", "aws:///i-0abc": "i-0abc", "gce://x/y": "", "aws:///us-east-1a/": ""} {
		got, err := ParseProviderID(in)
		if got != want || (want == "") != (err != nil) {
			t.Errorf("ParseProviderID(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}
