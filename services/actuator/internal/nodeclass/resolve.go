// Package nodeclass resolves an EC2NodeClass's selector terms to the
// subnets, security groups and images instances launch with, and writes what
// resolved (or why not, in words) to the node class's status.
package nodeclass

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	awsv1 "github.com/flotilla-dev/flotilla/api/aws/v1"
)

// EC2API is the part of the EC2 API the resolver calls.
type EC2API interface {
	DescribeSubnets(ctx context.Context, in *ec2.DescribeSubnetsInput, opts ...func(*ec2.Options)) (*ec2.DescribeSubnetsOutput, error)
	DescribeSecurityGroups(ctx context.Context, in *ec2.DescribeSecurityGroupsInput, opts ...func(*ec2.Options)) (*ec2.DescribeSecurityGroupsOutput, error)
	DescribeImages(ctx context.Context, in *ec2.DescribeImagesInput, opts ...func(*ec2.Options)) (*ec2.DescribeImagesOutput, error)
}

// SSMAPI is the part of the SSM API the resolver calls.
type SSMAPI interface {
	GetParameter(ctx context.Context, in *ssm.GetParameterInput, opts ...func(*ssm.Options)) (*ssm.GetParameterOutput, error)
}

// DefaultAMIParameterPrefix is where AWS publishes the EKS-optimized AMI ids.
const DefaultAMIParameterPrefix = "/aws/service/eks/optimized-ami"

// DefaultCacheTTL is how long a resolution is reused.
const DefaultCacheTTL = time.Minute

// Options configure a Resolver.
type Options struct {
	// AMIParameterPrefix replaces DefaultAMIParameterPrefix in alias
	// lookups (a test environment cannot write under /aws).
	AMIParameterPrefix string
	// KubernetesVersion is the cluster's minor version ("1.33"), part of
	// the alias parameter path.
	KubernetesVersion string
	// CacheTTL is how long a resolution is reused; DefaultCacheTTL when 0.
	CacheTTL time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Subnet is a resolved subnet.
type Subnet struct {
	ID           string
	Zone         string
	ZoneID       string
	AvailableIPs int64
}

// SecurityGroup is a resolved security group.
type SecurityGroup struct {
	ID   string
	Name string
}

// Image is a resolved machine image.
type Image struct {
	ID   string
	Name string
	// Arch is the Kubernetes architecture: amd64 or arm64.
	Arch    string
	Created time.Time
}

// Resolved is what a node class's selectors matched.
type Resolved struct {
	Subnets        []Subnet
	SecurityGroups []SecurityGroup
	// Images holds the newest matching image per architecture.
	Images []Image
}

// Image returns the image for an architecture.
func (r *Resolved) Image(arch string) (Image, bool) {
	for _, im := range r.Images {
		if im.Arch == arch {
			return im, true
		}
	}
	return Image{}, false
}

// Zones returns the zones of the resolved subnets, sorted.
func (r *Resolved) Zones() []string {
	set := map[string]bool{}
	for _, s := range r.Subnets {
		set[s.Zone] = true
	}
	return slices.Sorted(maps.Keys(set))
}

// ErrNotResolved is wrapped by every error saying a selector matched
// nothing; the message says which and why.
var ErrNotResolved = errors.New("node class not resolved")

// SelectorError says which selector of a node class matched nothing.
type SelectorError struct {
	// Condition is the status condition type it concerns
	// (SubnetsReady, SecurityGroupsReady, AMIsReady).
	Condition string
	// Message is the reason in words.
	Message string
}

func (e *SelectorError) Error() string { return e.Message }

// Unwrap makes errors.Is(err, ErrNotResolved) true.
func (e *SelectorError) Unwrap() error { return ErrNotResolved }

// Resolver resolves node classes, caching each resolution for a while.
// It is safe for concurrent use.
type Resolver struct {
	ec2    EC2API
	ssm    SSMAPI
	prefix string
	k8s    string
	ttl    time.Duration
	now    func() time.Time

	mu    sync.Mutex
	cache map[string]cached
	// refresh asks RunStatus to resolve every node class now.
	refresh chan struct{}
}

type cached struct {
	key      string
	resolved *Resolved
	until    time.Time
}

// NewResolver returns a Resolver using the given clients.
func NewResolver(ec2API EC2API, ssmAPI SSMAPI, opts Options) *Resolver {
	r := &Resolver{ec2: ec2API, ssm: ssmAPI, prefix: opts.AMIParameterPrefix, k8s: opts.KubernetesVersion,
		ttl: opts.CacheTTL, now: opts.Now, cache: map[string]cached{}, refresh: make(chan struct{}, 1)}
	if r.prefix == "" {
		r.prefix = DefaultAMIParameterPrefix
	}
	r.prefix = strings.TrimSuffix(r.prefix, "/")
	if r.ttl <= 0 {
		r.ttl = DefaultCacheTTL
	}
	if r.now == nil {
		r.now = time.Now
	}
	return r
}

// Resolve returns what the node class's selectors match. An error wrapping
// ErrNotResolved (a *SelectorError) says which selector matched nothing;
// other errors are API failures.
func (r *Resolver) Resolve(ctx context.Context, nc *awsv1.EC2NodeClass) (*Resolved, error) {
	key := fmt.Sprintf("%s/%d", nc.UID, nc.Generation)
	r.mu.Lock()
	c, ok := r.cache[nc.Name]
	r.mu.Unlock()
	if ok && c.key == key && r.now().Before(c.until) {
		return c.resolved, nil
	}
	subnets, err := r.Subnets(ctx, nc.Spec.SubnetSelectorTerms)
	if err != nil {
		return nil, err
	}
	groups, err := r.SecurityGroups(ctx, nc.Spec.SecurityGroupSelectorTerms)
	if err != nil {
		return nil, err
	}
	images, err := r.Images(ctx, nc.Spec.AMISelectorTerms)
	if err != nil {
		return nil, err
	}
	res := &Resolved{Subnets: subnets, SecurityGroups: groups, Images: images}
	r.mu.Lock()
	r.cache[nc.Name] = cached{key: key, resolved: res, until: r.now().Add(r.ttl)}
	r.mu.Unlock()
	return res, nil
}

// Forget drops a node class's cached resolution (after a launch failed on
// it, say).
func (r *Resolver) Forget(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.cache, name)
}

// Refresh drops a node class's cached resolution, so the next Resolve
// looks again, and asks RunStatus to resolve every node class and update
// its status now rather than at the next interval (a launch found a
// resolved id gone). It does not wait.
func (r *Resolver) Refresh(name string) {
	r.Forget(name)
	select {
	case r.refresh <- struct{}{}:
	default:
	}
}

// Subnets returns the available subnets matching any term, sorted by id.
func (r *Resolver) Subnets(ctx context.Context, terms []awsv1.SubnetSelectorTerm) ([]Subnet, error) {
	found := map[string]Subnet{}
	for _, t := range terms {
		in := &ec2.DescribeSubnetsInput{Filters: tagFilters(t.Tags)}
		if t.ID != "" {
			in.Filters = append(in.Filters, filter("subnet-id", t.ID))
		}
		p := ec2.NewDescribeSubnetsPaginator(r.ec2, in)
		for p.HasMorePages() {
			out, err := p.NextPage(ctx)
			if err != nil {
				return nil, fmt.Errorf("describe subnets: %w", err)
			}
			for _, s := range out.Subnets {
				if s.State != "" && s.State != ec2types.SubnetStateAvailable {
					continue
				}
				found[aws.ToString(s.SubnetId)] = Subnet{
					ID:           aws.ToString(s.SubnetId),
					Zone:         aws.ToString(s.AvailabilityZone),
					ZoneID:       aws.ToString(s.AvailabilityZoneId),
					AvailableIPs: int64(aws.ToInt32(s.AvailableIpAddressCount)),
				}
			}
		}
	}
	if len(found) == 0 {
		return nil, &SelectorError{Condition: awsv1.ConditionTypeSubnetsReady,
			Message: "no available subnet matches subnetSelectorTerms " + describeTerms(subnetTerms(terms))}
	}
	return sortedValues(found, func(s Subnet) string { return s.ID }), nil
}

// SecurityGroups returns the security groups matching any term, sorted by
// id.
func (r *Resolver) SecurityGroups(ctx context.Context, terms []awsv1.SecurityGroupSelectorTerm) ([]SecurityGroup, error) {
	found := map[string]SecurityGroup{}
	for _, t := range terms {
		in := &ec2.DescribeSecurityGroupsInput{Filters: tagFilters(t.Tags)}
		if t.ID != "" {
			in.Filters = append(in.Filters, filter("group-id", t.ID))
		}
		if t.Name != "" {
			in.Filters = append(in.Filters, filter("group-name", t.Name))
		}
		p := ec2.NewDescribeSecurityGroupsPaginator(r.ec2, in)
		for p.HasMorePages() {
			out, err := p.NextPage(ctx)
			if err != nil {
				return nil, fmt.Errorf("describe security groups: %w", err)
			}
			for _, g := range out.SecurityGroups {
				found[aws.ToString(g.GroupId)] = SecurityGroup{ID: aws.ToString(g.GroupId), Name: aws.ToString(g.GroupName)}
			}
		}
	}
	if len(found) == 0 {
		return nil, &SelectorError{Condition: awsv1.ConditionTypeSecurityGroupsReady,
			Message: "no security group matches securityGroupSelectorTerms " + describeTerms(groupTerms(terms))}
	}
	return sortedValues(found, func(g SecurityGroup) string { return g.ID }), nil
}

// Images returns the newest image per architecture among those matching
// any term, amd64 first.
func (r *Resolver) Images(ctx context.Context, terms []awsv1.AMISelectorTerm) ([]Image, error) {
	var all []Image
	for _, t := range terms {
		var in *ec2.DescribeImagesInput
		switch {
		case t.Alias != "":
			ids, err := r.aliasImageIDs(ctx, t.Alias)
			if err != nil {
				return nil, err
			}
			in = &ec2.DescribeImagesInput{ImageIds: ids}
		case t.SSMParameter != "":
			id, err := r.parameter(ctx, t.SSMParameter)
			if err != nil {
				return nil, err
			}
			if id == "" {
				return nil, &SelectorError{Condition: awsv1.ConditionTypeAMIsReady,
					Message: fmt.Sprintf("SSM parameter %q does not exist", t.SSMParameter)}
			}
			in = &ec2.DescribeImagesInput{ImageIds: []string{id}}
		default:
			in = &ec2.DescribeImagesInput{Filters: tagFilters(t.Tags)}
			if t.ID != "" {
				in.ImageIds = []string{t.ID}
			}
			if t.Name != "" {
				in.Filters = append(in.Filters, filter("name", t.Name))
			}
			if t.Owner != "" {
				in.Owners = []string{t.Owner}
			} else if t.ID == "" && len(t.Tags) == 0 {
				// A bare name matches your own and Amazon's images, as
				// Karpenter's default owners do.
				in.Owners = []string{"self", "amazon"}
			}
		}
		images, err := r.describeImages(ctx, in)
		if err != nil {
			return nil, err
		}
		all = append(all, images...)
	}
	newest := map[string]Image{}
	for _, im := range all {
		if cur, ok := newest[im.Arch]; !ok || im.Created.After(cur.Created) || (im.Created.Equal(cur.Created) && im.ID > cur.ID) {
			newest[im.Arch] = im
		}
	}
	if len(newest) == 0 {
		return nil, &SelectorError{Condition: awsv1.ConditionTypeAMIsReady,
			Message: "no image matches amiSelectorTerms " + describeTerms(amiTerms(terms))}
	}
	return sortedValues(newest, func(im Image) string { return im.Arch }), nil
}

func (r *Resolver) describeImages(ctx context.Context, in *ec2.DescribeImagesInput) ([]Image, error) {
	var out []Image
	p := ec2.NewDescribeImagesPaginator(r.ec2, in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			if isNotFound(err) {
				return nil, nil
			}
			return nil, fmt.Errorf("describe images: %w", err)
		}
		for _, im := range page.Images {
			if im.State != "" && im.State != ec2types.ImageStateAvailable {
				continue
			}
			arch := kubeArch(im.Architecture)
			if arch == "" {
				continue
			}
			created, _ := time.Parse(time.RFC3339, aws.ToString(im.CreationDate))
			out = append(out, Image{ID: aws.ToString(im.ImageId), Name: aws.ToString(im.Name), Arch: arch, Created: created})
		}
	}
	return out, nil
}

// AliasParameter is the SSM parameter holding the image id of an alias's
// family and version for one architecture (x86_64 or arm64), under prefix.
// Only the al2023 family is supported: Flotilla's bootstrap is nodeadm's.
func AliasParameter(prefix, kubernetesVersion, alias, ec2Arch string) (string, error) {
	family, version, ok := strings.Cut(alias, "@")
	if !ok || version == "" {
		return "", fmt.Errorf("alias %q: want family@version", alias)
	}
	if family != "al2023" {
		return "", fmt.Errorf("alias %q: family %q is not supported (Flotilla bootstraps nodes with nodeadm: use al2023)", alias, family)
	}
	if kubernetesVersion == "" {
		return "", fmt.Errorf("alias %q: the actuator needs the cluster's Kubernetes version (--kubernetes-version)", alias)
	}
	base := fmt.Sprintf("%s/%s/amazon-linux-2023/%s/standard", strings.TrimSuffix(prefix, "/"), kubernetesVersion, ec2Arch)
	if version == "latest" {
		return base + "/recommended/image_id", nil
	}
	return fmt.Sprintf("%s/amazon-eks-node-al2023-%s-standard-%s-%s/image_id", base, ec2Arch, kubernetesVersion, version), nil
}

func (r *Resolver) aliasImageIDs(ctx context.Context, alias string) ([]string, error) {
	var ids, tried []string
	for _, arch := range []string{"x86_64", "arm64"} {
		name, err := AliasParameter(r.prefix, r.k8s, alias, arch)
		if err != nil {
			return nil, &SelectorError{Condition: awsv1.ConditionTypeAMIsReady, Message: err.Error()}
		}
		tried = append(tried, name)
		id, err := r.parameter(ctx, name)
		if err != nil {
			return nil, err
		}
		if id != "" {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return nil, &SelectorError{Condition: awsv1.ConditionTypeAMIsReady,
			Message: fmt.Sprintf("alias %q did not resolve: no SSM parameter %s", alias, strings.Join(tried, " or "))}
	}
	return ids, nil
}

// parameter returns an SSM parameter's value, "" when it does not exist.
func (r *Resolver) parameter(ctx context.Context, name string) (string, error) {
	out, err := r.ssm.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(name)})
	if err != nil {
		var nf *ssmtypes.ParameterNotFound
		if errors.As(err, &nf) {
			return "", nil
		}
		return "", fmt.Errorf("get SSM parameter %s: %w", name, err)
	}
	if out.Parameter == nil {
		return "", nil
	}
	return aws.ToString(out.Parameter.Value), nil
}

func kubeArch(a ec2types.ArchitectureValues) string {
	switch a {
	case ec2types.ArchitectureValuesX8664:
		return "amd64"
	case ec2types.ArchitectureValuesArm64:
		return "arm64"
	}
	return ""
}

// EC2Arch is the EC2 architecture name of a Kubernetes one.
func EC2Arch(kubeArch string) string {
	if kubeArch == "arm64" {
		return "arm64"
	}
	return "x86_64"
}

func filter(name string, values ...string) ec2types.Filter {
	return ec2types.Filter{Name: aws.String(name), Values: values}
}

// tagFilters turns selector tags into filters; "*" matches any value.
func tagFilters(tags map[string]string) []ec2types.Filter {
	var out []ec2types.Filter
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		if v := tags[k]; v == "*" {
			out = append(out, filter("tag-key", k))
		} else {
			out = append(out, filter("tag:"+k, v))
		}
	}
	return out
}

func sortedValues[T any](m map[string]T, key func(T) string) []T {
	out := slices.Collect(maps.Values(m))
	slices.SortFunc(out, func(a, b T) int { return strings.Compare(key(a), key(b)) })
	return out
}

func isNotFound(err error) bool {
	var code interface{ ErrorCode() string }
	return errors.As(err, &code) && strings.HasSuffix(code.ErrorCode(), ".NotFound")
}

type term map[string]string

func describeTerms(terms []term) string {
	var parts []string
	for _, t := range terms {
		var fields []string
		for _, k := range slices.Sorted(maps.Keys(t)) {
			fields = append(fields, k+" "+t[k])
		}
		parts = append(parts, "{"+strings.Join(fields, ", ")+"}")
	}
	return "[" + strings.Join(parts, " or ") + "]"
}

func tagsText(tags map[string]string) string {
	var s []string
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		s = append(s, k+"="+tags[k])
	}
	return strings.Join(s, ",")
}

func subnetTerms(ts []awsv1.SubnetSelectorTerm) []term {
	var out []term
	for _, t := range ts {
		out = append(out, compact(term{"tags": tagsText(t.Tags), "id": t.ID}))
	}
	return out
}

func groupTerms(ts []awsv1.SecurityGroupSelectorTerm) []term {
	var out []term
	for _, t := range ts {
		out = append(out, compact(term{"tags": tagsText(t.Tags), "id": t.ID, "name": t.Name}))
	}
	return out
}

func amiTerms(ts []awsv1.AMISelectorTerm) []term {
	var out []term
	for _, t := range ts {
		out = append(out, compact(term{"alias": t.Alias, "tags": tagsText(t.Tags), "id": t.ID, "name": t.Name,
			"owner": t.Owner, "ssmParameter": t.SSMParameter}))
	}
	return out
}

func compact(t term) term {
	maps.DeleteFunc(t, func(_, v string) bool { return v == "" })
	return t
}
