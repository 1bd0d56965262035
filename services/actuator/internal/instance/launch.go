package instance

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	awsv1 "github.com/flotilla-dev/flotilla/api/aws/v1"
	"github.com/flotilla-dev/flotilla/services/actuator/internal/nodeclass"
	"github.com/flotilla-dev/flotilla/services/actuator/internal/offering"
)

// MaxOverrides bounds the instance type × subnet overrides of one fleet
// request.
const MaxOverrides = 60

// ErrInsufficientCapacity is returned (wrapped in a *CapacityError) when no
// acceptable offering is left to try.
var ErrInsufficientCapacity = errors.New("insufficient capacity")

// CapacityError says that every acceptable offering is unavailable, and why.
type CapacityError struct {
	NodeClaim string
	// Reasons lists the offerings tried or skipped and the error of each.
	Reasons []string
}

func (e *CapacityError) Error() string {
	if len(e.Reasons) == 0 {
		return fmt.Sprintf("launch %s: no acceptable offering in the node class's zones: %s", e.NodeClaim, ErrInsufficientCapacity)
	}
	return fmt.Sprintf("launch %s: %s: %s", e.NodeClaim, ErrInsufficientCapacity, strings.Join(e.Reasons, "; "))
}

// Unwrap makes errors.Is(err, ErrInsufficientCapacity) true.
func (e *CapacityError) Unwrap() error { return ErrInsufficientCapacity }

// Offering is one acceptable way to launch a NodeClaim: an instance type in
// a zone with a capacity type, and what the bootstrap needs to know of the
// type.
type Offering struct {
	InstanceType string
	Zone         string
	CapacityType string
	Price        float64
	// Arch is the Kubernetes architecture (amd64, arm64): it picks the image.
	Arch string
	// VCPU and MaxPods size the kubelet's reservations.
	VCPU    int64
	MaxPods int64
}

func (o Offering) key() offering.Key {
	return offering.Key{InstanceType: o.InstanceType, Zone: o.Zone, CapacityType: o.CapacityType}
}

// LaunchRequest is what Launch needs for one NodeClaim.
type LaunchRequest struct {
	NodeClaim    string
	NodeClaimUID string
	NodePool     string
	NodeClass    *awsv1.EC2NodeClass
	Resolved     *nodeclass.Resolved
	// Offerings are the acceptable offerings, cheapest first.
	Offerings []Offering
	// UserData returns the user data for an offering (its pod limit and
	// reservations depend on the instance type).
	UserData func(Offering) (string, error)
	// InstanceProfile is used when the node class names none.
	InstanceProfile string
}

// Tags returns the tags of a NodeClaim's instance, volumes and network
// interfaces.
func (p *Provider) Tags(req *LaunchRequest) map[string]string {
	tags := map[string]string{}
	if req.NodeClass != nil {
		for k, v := range req.NodeClass.Spec.Tags {
			tags[k] = v
		}
	}
	k, v := p.ClusterTag()
	tags[k] = v
	tags[awsv1.TagManagedBy] = p.cluster
	tags[awsv1.TagEKSClusterName] = p.cluster
	tags[awsv1.TagNodePool] = req.NodePool
	tags[awsv1.TagNodeClaim] = req.NodeClaim
	if req.NodeClass != nil {
		tags[awsv1.TagEC2NodeClass] = req.NodeClass.Name
	}
	tags[awsv1.TagName] = req.NodeClaim
	return tags
}

// Launch launches the NodeClaim's instance, or returns the one already
// launched for it. It tries the cheapest offerings first in one fleet
// request; offerings that fail for lack of capacity are marked unavailable
// and the next ones are tried at once. When none is left it returns a
// *CapacityError.
func (p *Provider) Launch(ctx context.Context, req *LaunchRequest) (*Instance, error) {
	existing, err := p.FindByNodeClaim(ctx, req.NodeClaim)
	if err == nil {
		return existing, nil
	}
	if !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	// Every launch template is in place before the first request, so a
	// fallback after a capacity error is one more request and nothing else.
	templates, err := p.ensureTemplates(ctx, req)
	if err != nil {
		return nil, err
	}
	var reasons []string
	uncertain := 0
	templatesRenewed := false
	for {
		batch := p.candidates(req)
		if len(batch) == 0 {
			return nil, &CapacityError{NodeClaim: req.NodeClaim, Reasons: append(reasons, p.skipped(req)...)}
		}
		inst, failed, err := p.createFleet(ctx, req, batch, templates)
		if templateMissing(err) && !templatesRenewed {
			// A launch template this process created is gone (deleted by
			// hand, or the account's state lost): make them again, once.
			templatesRenewed = true
			p.log.InfoContext(ctx, "launch_templates_renewed", "nodeclaim", req.NodeClaim, "error", err.Error())
			p.forgetTemplates(templates)
			if templates, err = p.ensureTemplates(ctx, req); err != nil {
				return nil, err
			}
			continue
		}
		if errors.Is(err, errOutcomeUnknown) && uncertain < maxUncertainAttempts-1 {
			// The request may have launched the instance though its answer
			// was lost: look for it before asking again (with the same
			// client token, so EC2 itself would not launch twice either).
			uncertain++
			found, ferr := p.FindByNodeClaim(ctx, req.NodeClaim)
			if ferr == nil {
				p.log.InfoContext(ctx, "instance_found_after_lost_answer", "nodeclaim", req.NodeClaim, "instance", found.ID)
				return found, nil
			}
			if !errors.Is(ferr, ErrNotFound) {
				// Not knowing whether it launched, asking again could
				// launch twice: leave it to the next attempt.
				return nil, fmt.Errorf("%w (and looking for its instance: %w)", err, ferr)
			}
			p.log.InfoContext(ctx, "create_fleet_retry", "nodeclaim", req.NodeClaim, "attempt", uncertain, "error", err.Error())
			if werr := sleep(ctx, time.Duration(uncertain)*uncertainBackoff); werr != nil {
				return nil, fmt.Errorf("launch %s: %w", req.NodeClaim, werr)
			}
			continue
		}
		if err != nil || inst != nil {
			return inst, err
		}
		reasons = append(reasons, failed...)
	}
}

// ErrStaleResolution is wrapped by a launch error that says a subnet,
// security group or image of the request's node class resolution no longer
// exists in EC2 (deleted, or the account's state lost): the resolution is
// stale, and resolving the node class again may mend it.
var ErrStaleResolution = errors.New("the node class's resolved subnets, security groups or images are gone")

// staleCodes are the EC2 error codes that mean a resolved id is gone.
var staleCodes = map[string]bool{
	"InvalidSubnetID.NotFound":        true,
	"InvalidGroup.NotFound":           true,
	"InvalidSecurityGroupID.NotFound": true,
	"InvalidAMIID.NotFound":           true,
	"InvalidAMIID.Unavailable":        true,
}

// templateMissing reports whether EC2 refused a request because a launch
// template it names does not exist.
func templateMissing(err error) bool {
	return isCode(err, "InvalidLaunchTemplateName.NotFoundException") || isCode(err, "InvalidLaunchTemplateId.NotFound")
}

// forgetTemplates drops launch templates from the cache of those known to
// exist, so the next ensureTemplates looks for them (and makes them) again.
func (p *Provider) forgetTemplates(templates map[offering.Key]string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, name := range templates {
		delete(p.templates, name)
	}
}

// errOutcomeUnknown marks a CreateFleet that failed in a way that does not
// say whether it launched anything.
var errOutcomeUnknown = errors.New("outcome unknown")

// maxUncertainAttempts bounds the CreateFleet requests of one Launch whose
// outcome was unknown (a timeout or a 5xx); uncertainBackoff is the pause
// before the first retry, growing linearly.
const (
	maxUncertainAttempts = 3
	uncertainBackoff     = 200 * time.Millisecond
)

// uncertainOutcome reports whether a failed request may have taken effect:
// a transport error (timeout, reset) or a 5xx answer. A 4xx answer, a
// throttle included, means EC2 did nothing.
func uncertainOutcome(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var status interface{ HTTPStatusCode() int }
	if errors.As(err, &status) && status.HTTPStatusCode() != 0 {
		return status.HTTPStatusCode() >= 500 && !throttled(err)
	}
	return errorCode(err) == ""
}

func throttled(err error) bool {
	return retry.IsErrorThrottles(retry.DefaultThrottles).IsErrorThrottle(err) == aws.TrueTernary
}

// fleetRetryer lets the SDK retry a CreateFleet only when EC2 refused it
// (throttling): a request that may have launched an instance is retried by
// Launch, which looks for the instance first.
type fleetRetryer struct{ aws.RetryerV2 }

func (r fleetRetryer) IsErrorRetryable(err error) bool {
	return throttled(err) && r.RetryerV2.IsErrorRetryable(err)
}

func withFleetRetryer(o *ec2.Options) {
	if o.Retryer == nil {
		return
	}
	v2, ok := o.Retryer.(aws.RetryerV2)
	if !ok {
		v2 = wrapV1Retryer{o.Retryer}
	}
	o.Retryer = fleetRetryer{v2}
}

// wrapV1Retryer lifts an aws.Retryer without GetAttemptToken(ctx).
type wrapV1Retryer struct{ aws.Retryer }

func (r wrapV1Retryer) GetAttemptToken(context.Context) (func(error) error, error) {
	return r.GetInitialToken(), nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// candidates returns the next offerings to try: the available ones in zones
// with a subnet, of the capacity type of the cheapest, at most
// MaxOverrides.
func (p *Provider) candidates(req *LaunchRequest) []Offering {
	zones := map[string]bool{}
	for _, s := range req.Resolved.Subnets {
		zones[s.Zone] = true
	}
	var out []Offering
	seen := map[offering.Key]bool{}
	for _, o := range req.Offerings {
		if !zones[o.Zone] || seen[o.key()] || p.unavailable.Contains(o.key()) {
			continue
		}
		if _, ok := req.Resolved.Image(o.Arch); !ok {
			continue
		}
		if len(out) > 0 && o.CapacityType != out[0].CapacityType {
			continue
		}
		seen[o.key()] = true
		out = append(out, o)
		if len(out) == MaxOverrides {
			break
		}
	}
	return out
}

// skipped explains why offerings were left out of every attempt.
func (p *Provider) skipped(req *LaunchRequest) []string {
	var out []string
	for _, o := range req.Offerings {
		if reason, ok := p.unavailable.Reason(o.key()); ok {
			out = append(out, fmt.Sprintf("%s %s %s unavailable (%s)", o.InstanceType, o.Zone, o.CapacityType, reason))
		}
	}
	if len(out) > 10 {
		out = append(out[:10], fmt.Sprintf("and %d more", len(out)-10))
	}
	return out
}

// subnetFor picks the subnet with the most free addresses in a zone.
func subnetFor(subnets []nodeclass.Subnet, zone string) (nodeclass.Subnet, bool) {
	var best nodeclass.Subnet
	found := false
	for _, s := range subnets {
		if s.Zone != zone {
			continue
		}
		if !found || s.AvailableIPs > best.AvailableIPs || (s.AvailableIPs == best.AvailableIPs && s.ID < best.ID) {
			best, found = s, true
		}
	}
	return best, found
}

// createFleet makes one instant fleet request over the batch. It returns the
// instance, or the capacity errors it met (having marked those offerings),
// or an error that retrying other offerings would not fix.
func (p *Provider) createFleet(ctx context.Context, req *LaunchRequest, batch []Offering, templates map[offering.Key]string) (*Instance, []string, error) {
	type group struct {
		template  string
		overrides []ec2types.FleetLaunchTemplateOverridesRequest
	}
	var groups []*group
	byTemplate := map[string]*group{}
	subnetZone := map[string]string{}
	var overrideKeys []string
	for _, o := range batch {
		name := templates[o.key()]
		g, ok := byTemplate[name]
		if !ok {
			g = &group{template: name}
			byTemplate[name] = g
			groups = append(groups, g)
		}
		subnet, _ := subnetFor(req.Resolved.Subnets, o.Zone)
		subnetZone[subnet.ID] = subnet.Zone
		g.overrides = append(g.overrides, ec2types.FleetLaunchTemplateOverridesRequest{
			InstanceType: ec2types.InstanceType(o.InstanceType),
			SubnetId:     aws.String(subnet.ID),
		})
		overrideKeys = append(overrideKeys, name+"|"+o.InstanceType+"|"+subnet.ID)
	}
	capacityType := batch[0].CapacityType
	in := &ec2.CreateFleetInput{
		Type:        ec2types.FleetTypeInstant,
		ClientToken: aws.String(clientToken(req, capacityType, overrideKeys)),
		TargetCapacitySpecification: &ec2types.TargetCapacitySpecificationRequest{
			TotalTargetCapacity:       aws.Int32(1),
			DefaultTargetCapacityType: ec2types.DefaultTargetCapacityType(capacityType),
		},
		TagSpecifications: p.tagSpecifications(req),
	}
	if capacityType == "spot" {
		in.SpotOptions = &ec2types.SpotOptionsRequest{AllocationStrategy: ec2types.SpotAllocationStrategyPriceCapacityOptimized}
	} else {
		in.OnDemandOptions = &ec2types.OnDemandOptionsRequest{AllocationStrategy: ec2types.FleetOnDemandAllocationStrategyLowestPrice}
	}
	for _, g := range groups {
		in.LaunchTemplateConfigs = append(in.LaunchTemplateConfigs, ec2types.FleetLaunchTemplateConfigRequest{
			LaunchTemplateSpecification: &ec2types.FleetLaunchTemplateSpecificationRequest{
				LaunchTemplateName: aws.String(g.template),
				Version:            aws.String("$Latest"),
			},
			Overrides: g.overrides,
		})
	}

	out, err := p.ec2.CreateFleet(ctx, in, withFleetRetryer)
	if err != nil {
		code := errorCode(err)
		if !IsCapacityErrorCode(code) {
			if uncertainOutcome(err) {
				return nil, nil, fmt.Errorf("launch %s: create fleet: %w: %w", req.NodeClaim, errOutcomeUnknown, err)
			}
			if staleCodes[code] {
				return nil, nil, fmt.Errorf("%w: launch %s: create fleet: %w", ErrStaleResolution, req.NodeClaim, err)
			}
			return nil, nil, fmt.Errorf("launch %s: create fleet: %w", req.NodeClaim, err)
		}
		// The whole request failed for capacity: every offering in it.
		var reasons []string
		for _, o := range batch {
			reasons = append(reasons, p.markUnavailable(ctx, req, o.key(), code))
		}
		return nil, reasons, nil
	}

	var ids []string
	var launched ec2types.CreateFleetInstance
	for _, fi := range out.Instances {
		if len(ids) == 0 && len(fi.InstanceIds) > 0 {
			launched = fi
		}
		ids = append(ids, fi.InstanceIds...)
	}
	if len(ids) > 0 {
		if len(ids) > 1 {
			// Asked for one; never keep more.
			if err := p.Terminate(ctx, ids[1:]...); err != nil {
				p.log.WarnContext(ctx, "extra_instances_not_terminated", "nodeclaim", req.NodeClaim, "error", err.Error())
			}
		}
		return p.finish(ctx, req, ids[0], launched, subnetZone, capacityType), nil, nil
	}

	var reasons, other []string
	marked, stale := 0, false
	for _, fe := range out.Errors {
		code := aws.ToString(fe.ErrorCode)
		if !IsCapacityErrorCode(code) {
			other = append(other, code+": "+aws.ToString(fe.ErrorMessage))
			stale = stale || staleCodes[code]
			continue
		}
		k := offering.Key{CapacityType: capacityType}
		if lt := fe.LaunchTemplateAndOverrides; lt != nil && lt.Overrides != nil {
			k.InstanceType = string(lt.Overrides.InstanceType)
			k.Zone = aws.ToString(lt.Overrides.AvailabilityZone)
			if z, ok := subnetZone[aws.ToString(lt.Overrides.SubnetId)]; ok {
				k.Zone = z
			}
		}
		if k.InstanceType == "" && code != "MaxSpotInstanceCountExceeded" {
			continue
		}
		reasons = append(reasons, p.markUnavailable(ctx, req, k, code))
		marked++
	}
	if marked == 0 {
		if stale {
			return nil, nil, fmt.Errorf("launch %s: create fleet launched nothing: %w: %s", req.NodeClaim, ErrStaleResolution, strings.Join(other, "; "))
		}
		if len(other) > 0 {
			return nil, nil, fmt.Errorf("launch %s: create fleet launched nothing: %s", req.NodeClaim, strings.Join(other, "; "))
		}
		if len(reasons) == 0 {
			// Capacity errors that named no offering: all of them failed.
			for _, o := range batch {
				reasons = append(reasons, p.markUnavailable(ctx, req, o.key(), "UnfulfillableCapacity"))
			}
		}
	}
	return nil, reasons, nil
}

func (p *Provider) markUnavailable(ctx context.Context, req *LaunchRequest, k offering.Key, code string) string {
	if code == "MaxSpotInstanceCountExceeded" {
		k = offering.Key{CapacityType: "spot"}
	}
	p.unavailable.Mark(k, code)
	p.log.InfoContext(ctx, "offering_unavailable", "nodeclaim", req.NodeClaim, "instance_type", k.InstanceType,
		"zone", k.Zone, "capacity_type", k.CapacityType, "code", code)
	what := strings.TrimSpace(strings.Join([]string{k.InstanceType, k.Zone, k.CapacityType}, " "))
	return what + ": " + code
}

// finish describes the new instance, tags its volumes and network
// interfaces and makes sure it has the node class's security groups (not
// every EC2 implementation applies the fleet's tag specifications or the
// launch template's security groups; on EC2 itself both are no-ops).
func (p *Provider) finish(ctx context.Context, req *LaunchRequest, id string, fi ec2types.CreateFleetInstance, subnetZone map[string]string, capacityType string) *Instance {
	tags := p.Tags(req)
	d, err := p.describeFull(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	if err == nil && len(d) == 1 {
		inst := d[0]
		if inst.CapacityType == "" {
			inst.CapacityType = capacityType
		}
		if err := p.Tag(ctx, tags, append(inst.volumes, inst.enis...)...); err != nil {
			p.log.WarnContext(ctx, "volume_tags_not_set", "nodeclaim", req.NodeClaim, "instance", id, "error", err.Error())
		}
		p.ensureSecurityGroups(ctx, req, inst)
		p.log.InfoContext(ctx, "instance_launched", "nodeclaim", req.NodeClaim, "instance", id,
			"instance_type", inst.Type, "zone", inst.Zone, "capacity_type", inst.CapacityType)
		return inst.Instance
	}
	// Not visible yet (EC2 is eventually consistent): what the fleet said.
	inst := &Instance{ID: id, Type: string(fi.InstanceType), CapacityType: capacityType, State: "pending", Tags: tags}
	if fi.LaunchTemplateAndOverrides != nil && fi.LaunchTemplateAndOverrides.Overrides != nil {
		inst.SubnetID = aws.ToString(fi.LaunchTemplateAndOverrides.Overrides.SubnetId)
		inst.Zone = subnetZone[inst.SubnetID]
	}
	p.log.InfoContext(ctx, "instance_launched", "nodeclaim", req.NodeClaim, "instance", id,
		"instance_type", inst.Type, "zone", inst.Zone, "capacity_type", inst.CapacityType)
	return inst
}

// ensureTemplates makes sure the launch template of every usable offering
// exists and returns their names by offering.
func (p *Provider) ensureTemplates(ctx context.Context, req *LaunchRequest) (map[offering.Key]string, error) {
	zones := map[string]bool{}
	for _, s := range req.Resolved.Subnets {
		zones[s.Zone] = true
	}
	out := map[offering.Key]string{}
	for _, o := range req.Offerings {
		if _, ok := req.Resolved.Image(o.Arch); !ok || !zones[o.Zone] {
			continue
		}
		if _, done := out[o.key()]; done {
			continue
		}
		tmpl, err := p.templateFor(req, o)
		if err != nil {
			return nil, err
		}
		name, err := p.ensureTemplate(ctx, tmpl)
		if err != nil {
			return nil, err
		}
		out[o.key()] = name
	}
	return out, nil
}

func (p *Provider) ensureSecurityGroups(ctx context.Context, req *LaunchRequest, inst described) {
	var want []string
	for _, g := range req.Resolved.SecurityGroups {
		want = append(want, g.ID)
	}
	have := slices.Clone(inst.securityGroups)
	slices.Sort(have)
	slices.Sort(want)
	if len(want) == 0 || slices.Equal(have, want) {
		return
	}
	_, err := p.ec2.ModifyInstanceAttribute(ctx, &ec2.ModifyInstanceAttributeInput{InstanceId: aws.String(inst.ID), Groups: want})
	if err != nil {
		p.log.WarnContext(ctx, "security_groups_not_set", "nodeclaim", req.NodeClaim, "instance", inst.ID, "error", err.Error())
		return
	}
	p.log.InfoContext(ctx, "security_groups_set", "nodeclaim", req.NodeClaim, "instance", inst.ID, "had", strings.Join(have, ","))
}

func (p *Provider) templateFor(req *LaunchRequest, o Offering) (*template, error) {
	image, _ := req.Resolved.Image(o.Arch)
	userData, err := req.UserData(o)
	if err != nil {
		return nil, fmt.Errorf("launch %s: user data for %s: %w", req.NodeClaim, o.InstanceType, err)
	}
	t := &template{
		ImageID:         image.ID,
		Arch:            o.Arch,
		UserData:        userData,
		InstanceProfile: req.InstanceProfile,
	}
	for _, g := range req.Resolved.SecurityGroups {
		t.SecurityGroups = append(t.SecurityGroups, g.ID)
	}
	if nc := req.NodeClass; nc != nil {
		t.NodeClass = nc.Name
		if nc.Spec.InstanceProfile != "" {
			t.InstanceProfile = nc.Spec.InstanceProfile
		} else if nc.Status.InstanceProfile != "" {
			t.InstanceProfile = nc.Status.InstanceProfile
		}
		t.BlockDevices = nc.Spec.BlockDeviceMappings
		t.Metadata = nc.Spec.MetadataOptions
		t.PublicIP = nc.Spec.AssociatePublicIPAddress
		t.Monitoring = nc.Spec.DetailedMonitoring
		t.Tags = nc.Spec.Tags
	}
	return t, nil
}

func (p *Provider) tagSpecifications(req *LaunchRequest) []ec2types.TagSpecification {
	tags := ec2Tags(p.Tags(req))
	var out []ec2types.TagSpecification
	for _, rt := range []ec2types.ResourceType{ec2types.ResourceTypeInstance, ec2types.ResourceTypeVolume, ec2types.ResourceTypeNetworkInterface} {
		out = append(out, ec2types.TagSpecification{ResourceType: rt, Tags: tags})
	}
	return out
}

// clientToken is the fleet request's idempotency token: the same NodeClaim
// asking for the same offerings gets the same token, so a retried request
// never launches a second instance.
func clientToken(req *LaunchRequest, capacityType string, overrides []string) string {
	keys := slices.Clone(overrides)
	slices.Sort(keys)
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s", req.NodeClaim, req.NodeClaimUID, capacityType, strings.Join(keys, "\x00"))
	return "flotilla-" + hex.EncodeToString(h.Sum(nil))[:48]
}

// capacityErrorCodes are EC2 error codes that mean "not this offering, not
// now": the offering is skipped for a while and the next one tried.
var capacityErrorCodes = map[string]bool{
	"InsufficientInstanceCapacity":         true,
	"InsufficientCapacity":                 true,
	"MaxSpotInstanceCountExceeded":         true,
	"UnfulfillableCapacity":                true,
	"Unsupported":                          true,
	"InsufficientFreeAddressesInSubnet":    true,
	"SpotMaxPriceTooLow":                   true,
	"InsufficientHostCapacity":             true,
	"InsufficientReservedInstanceCapacity": true,
}

// IsCapacityErrorCode reports whether an EC2 error code means the offering
// has no capacity now.
func IsCapacityErrorCode(code string) bool { return capacityErrorCodes[code] }

func errorCode(err error) string {
	var apiErr interface{ ErrorCode() string }
	if errors.As(err, &apiErr) {
		return apiErr.ErrorCode()
	}
	return ""
}
