// Package instance launches, finds and terminates the EC2 instances behind
// NodeClaims: one instant CreateFleet per NodeClaim over the cheapest
// acceptable offerings, launch templates per node class, image and bootstrap
// created once and reused, capacity errors remembered so the next attempt
// moves on at once, and tags that tie every instance, volume and network
// interface to its cluster, NodePool and NodeClaim.
package instance

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	awsv1 "github.com/flotilla-dev/flotilla/api/aws/v1"
	"github.com/flotilla-dev/flotilla/services/actuator/internal/offering"
)

// EC2API is exactly the part of the EC2 API this package calls.
type EC2API interface {
	CreateFleet(ctx context.Context, in *ec2.CreateFleetInput, opts ...func(*ec2.Options)) (*ec2.CreateFleetOutput, error)
	CreateLaunchTemplate(ctx context.Context, in *ec2.CreateLaunchTemplateInput, opts ...func(*ec2.Options)) (*ec2.CreateLaunchTemplateOutput, error)
	DescribeLaunchTemplates(ctx context.Context, in *ec2.DescribeLaunchTemplatesInput, opts ...func(*ec2.Options)) (*ec2.DescribeLaunchTemplatesOutput, error)
	DescribeInstances(ctx context.Context, in *ec2.DescribeInstancesInput, opts ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error)
	TerminateInstances(ctx context.Context, in *ec2.TerminateInstancesInput, opts ...func(*ec2.Options)) (*ec2.TerminateInstancesOutput, error)
	CreateTags(ctx context.Context, in *ec2.CreateTagsInput, opts ...func(*ec2.Options)) (*ec2.CreateTagsOutput, error)
	ModifyInstanceAttribute(ctx context.Context, in *ec2.ModifyInstanceAttributeInput, opts ...func(*ec2.Options)) (*ec2.ModifyInstanceAttributeOutput, error)
	DeleteLaunchTemplate(ctx context.Context, in *ec2.DeleteLaunchTemplateInput, opts ...func(*ec2.Options)) (*ec2.DeleteLaunchTemplateOutput, error)
}

// ErrNotFound is returned (wrapped) when an instance does not exist or is
// terminated.
var ErrNotFound = errors.New("instance not found")

// Options configure a Provider.
type Options struct {
	// ClusterName tags everything launched (kubernetes.io/cluster/<name>).
	ClusterName string
	// Unavailable remembers capacity errors; a fresh cache with the default
	// TTL when nil.
	Unavailable *offering.Unavailable
	// Logger gets launch and capacity-error records; slog.Default when nil.
	Logger *slog.Logger
}

// Provider launches and terminates instances for one cluster. It is safe for
// concurrent use.
type Provider struct {
	ec2         EC2API
	cluster     string
	unavailable *offering.Unavailable
	log         *slog.Logger

	mu        sync.Mutex
	templates map[string]string // launch template name → id
}

// New returns a Provider calling api.
func New(api EC2API, opts Options) *Provider {
	p := &Provider{ec2: api, cluster: opts.ClusterName, unavailable: opts.Unavailable, log: opts.Logger,
		templates: map[string]string{}}
	if p.unavailable == nil {
		p.unavailable = offering.NewUnavailable(0, nil)
	}
	if p.log == nil {
		p.log = slog.Default()
	}
	return p
}

// Unavailable returns the capacity-error cache the provider marks.
func (p *Provider) Unavailable() *offering.Unavailable { return p.unavailable }

// Instance is a launched EC2 instance.
type Instance struct {
	ID           string
	Type         string
	Zone         string
	CapacityType string
	ImageID      string
	SubnetID     string
	// State is the EC2 state name: pending, running, shutting-down, ...
	State      string
	LaunchTime time.Time
	Tags       map[string]string
	// PrivateDNSName is the instance's private host name, "" until known.
	PrivateDNSName string
}

// ProviderID is the Kubernetes providerID of the instance:
// aws:///<zone>/<instance-id>.
func (i *Instance) ProviderID() string {
	return "aws:///" + i.Zone + "/" + i.ID
}

// ParseProviderID returns the instance id of an aws:///zone/i-... provider
// id.
func ParseProviderID(providerID string) (string, error) {
	rest, ok := strings.CutPrefix(providerID, "aws://")
	if !ok {
		return "", fmt.Errorf("provider id %q: not aws://", providerID)
	}
	id := rest[strings.LastIndex(rest, "/")+1:]
	if !strings.HasPrefix(id, "i-") {
		return "", fmt.Errorf("provider id %q: no instance id", providerID)
	}
	return id, nil
}

// ClusterTag is the tag every instance of the cluster carries.
func (p *Provider) ClusterTag() (string, string) {
	return awsv1.TagClusterPrefix + p.cluster, "owned"
}

// Get returns a live (not terminated) instance by id.
func (p *Provider) Get(ctx context.Context, id string) (*Instance, error) {
	out, err := p.describe(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	if err != nil {
		if isCode(err, "InvalidInstanceID.NotFound") || isCode(err, "InvalidInstanceID.Malformed") {
			return nil, fmt.Errorf("instance %s: %w", id, ErrNotFound)
		}
		return nil, err
	}
	for _, i := range out {
		if i.ID == id && live(i.State) {
			return i, nil
		}
	}
	return nil, fmt.Errorf("instance %s: %w", id, ErrNotFound)
}

// FindByNodeClaim returns the live instance launched for a NodeClaim, or an
// error wrapping ErrNotFound.
func (p *Provider) FindByNodeClaim(ctx context.Context, nodeClaim string) (*Instance, error) {
	k, v := p.ClusterTag()
	out, err := p.describe(ctx, &ec2.DescribeInstancesInput{Filters: []ec2types.Filter{
		{Name: aws.String("tag:" + k), Values: []string{v}},
		{Name: aws.String("tag:" + awsv1.TagNodeClaim), Values: []string{nodeClaim}},
		{Name: aws.String("instance-state-name"), Values: []string{"pending", "running"}},
	}})
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("instance of nodeclaim %s: %w", nodeClaim, ErrNotFound)
	}
	// More than one can only come from a lost response; keep the oldest, the
	// rest have no NodeClaim and garbage collection terminates them.
	slices.SortFunc(out, func(a, b *Instance) int { return a.LaunchTime.Compare(b.LaunchTime) })
	return out[0], nil
}

// List returns the cluster's live instances (pending, running, stopping,
// stopped).
func (p *Provider) List(ctx context.Context) ([]*Instance, error) {
	k, v := p.ClusterTag()
	return p.describe(ctx, &ec2.DescribeInstancesInput{Filters: []ec2types.Filter{
		{Name: aws.String("tag:" + k), Values: []string{v}},
		{Name: aws.String("instance-state-name"), Values: []string{"pending", "running", "stopping", "stopped"}},
	}})
}

// Terminate terminates instances; ones already gone are not an error.
func (p *Provider) Terminate(ctx context.Context, ids ...string) error {
	if len(ids) == 0 {
		return nil
	}
	_, err := p.ec2.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: ids})
	if err == nil {
		return nil
	}
	if !isCode(err, "InvalidInstanceID.NotFound") {
		return fmt.Errorf("terminate %s: %w", strings.Join(ids, ","), err)
	}
	if len(ids) == 1 {
		return nil
	}
	// One unknown id fails the whole call: terminate the rest one by one.
	var errs []error
	for _, id := range ids {
		if err := p.Terminate(ctx, id); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Tag sets tags on resources (instances, volumes, network interfaces).
func (p *Provider) Tag(ctx context.Context, tags map[string]string, ids ...string) error {
	if len(ids) == 0 || len(tags) == 0 {
		return nil
	}
	_, err := p.ec2.CreateTags(ctx, &ec2.CreateTagsInput{Resources: ids, Tags: ec2Tags(tags)})
	if err != nil {
		return fmt.Errorf("tag %s: %w", strings.Join(ids, ","), err)
	}
	return nil
}

type described struct {
	*Instance
	volumes        []string
	enis           []string
	securityGroups []string
}

func (p *Provider) describe(ctx context.Context, in *ec2.DescribeInstancesInput) ([]*Instance, error) {
	d, err := p.describeFull(ctx, in)
	if err != nil {
		return nil, err
	}
	out := make([]*Instance, len(d))
	for i := range d {
		out[i] = d[i].Instance
	}
	return out, nil
}

func (p *Provider) describeFull(ctx context.Context, in *ec2.DescribeInstancesInput) ([]described, error) {
	var out []described
	pg := ec2.NewDescribeInstancesPaginator(p.ec2, in)
	for pg.HasMorePages() {
		page, err := pg.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("describe instances: %w", err)
		}
		for _, r := range page.Reservations {
			for _, i := range r.Instances {
				out = append(out, fromEC2(i))
			}
		}
	}
	return out, nil
}

func fromEC2(i ec2types.Instance) described {
	inst := &Instance{
		ID:             aws.ToString(i.InstanceId),
		Type:           string(i.InstanceType),
		ImageID:        aws.ToString(i.ImageId),
		SubnetID:       aws.ToString(i.SubnetId),
		LaunchTime:     aws.ToTime(i.LaunchTime),
		Tags:           map[string]string{},
		CapacityType:   awsCapacityType(i.InstanceLifecycle),
		PrivateDNSName: aws.ToString(i.PrivateDnsName),
	}
	if i.Placement != nil {
		inst.Zone = aws.ToString(i.Placement.AvailabilityZone)
	}
	if i.State != nil {
		inst.State = string(i.State.Name)
	}
	for _, t := range i.Tags {
		inst.Tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	d := described{Instance: inst}
	for _, b := range i.BlockDeviceMappings {
		if b.Ebs != nil && b.Ebs.VolumeId != nil {
			d.volumes = append(d.volumes, *b.Ebs.VolumeId)
		}
	}
	for _, g := range i.SecurityGroups {
		d.securityGroups = append(d.securityGroups, aws.ToString(g.GroupId))
	}
	for _, n := range i.NetworkInterfaces {
		if n.NetworkInterfaceId != nil {
			d.enis = append(d.enis, *n.NetworkInterfaceId)
		}
	}
	return d
}

func awsCapacityType(l ec2types.InstanceLifecycleType) string {
	if l == ec2types.InstanceLifecycleTypeSpot {
		return "spot"
	}
	return "on-demand"
}

func live(state string) bool {
	return state != string(ec2types.InstanceStateNameTerminated) && state != string(ec2types.InstanceStateNameShuttingDown)
}

func ec2Tags(tags map[string]string) []ec2types.Tag {
	out := make([]ec2types.Tag, 0, len(tags))
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		out = append(out, ec2types.Tag{Key: aws.String(k), Value: aws.String(tags[k])})
	}
	return out
}

// isCode reports whether err is an AWS API error with the given code.
func isCode(err error, code string) bool {
	var apiErr interface{ ErrorCode() string }
	return errors.As(err, &apiErr) && apiErr.ErrorCode() == code
}
