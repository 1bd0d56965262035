package v1alpha5

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	awsv1 "github.com/flotilla-dev/flotilla/api/aws/v1"
	karpv1 "github.com/flotilla-dev/flotilla/api/karpenter/v1"
)

// ErrNotConvertible is wrapped by every error Convert returns: the
// Provisioner is valid v1alpha5 but describes something the v1 API cannot.
var ErrNotConvertible = errors.New("provisioner cannot be mapped to a NodePool")

// Defaults v1alpha5 applied to a Provisioner's requirements, which Convert
// makes explicit on the NodePool.
var (
	// DefaultCapacityTypes is used when neither requirements nor labels
	// constrain karpenter.sh/capacity-type.
	DefaultCapacityTypes = []string{karpv1.CapacityTypeOnDemand}
	// DefaultArchitectures is used when kubernetes.io/arch is unconstrained.
	DefaultArchitectures = []string{karpv1.ArchitectureAmd64}
	// DefaultInstanceCategories and DefaultMinInstanceGeneration ("Gt 2")
	// are used when nothing narrows the instance types.
	DefaultInstanceCategories = []string{"c", "m", "r"}
	// DefaultMinInstanceGeneration is the exclusive lower bound on
	// karpenter.k8s.aws/instance-generation used with
	// DefaultInstanceCategories.
	DefaultMinInstanceGeneration = "2"
)

// instanceTypeKeys are the requirement keys that, when present, switch off
// the default instance categories and generation.
var instanceTypeKeys = []string{
	karpv1.LabelInstanceType,
	"beta.kubernetes.io/instance-type",
	karpv1.LabelInstanceFamily,
	karpv1.LabelInstanceCategory,
	karpv1.LabelInstanceGeneration,
	karpv1.LabelInstanceSize,
}

// Convert returns the NodePool and EC2NodeClass a Provisioner describes. Both
// are named after the Provisioner and labelled
// karpenter.sh/provisioner-name=<name>; when the Provisioner has a UID they
// are owned by it. With providerRef the EC2NodeClass is the referenced one
// and Convert returns nil for it.
//
// The mapping: requirements (plus v1alpha5's defaults: on-demand, amd64, and
// categories c/m/r of generation > 2 unless instance types are narrowed),
// labels, annotations, taints, startup taints, limits and weight carry over;
// ttlSecondsAfterEmpty N becomes consolidationPolicy WhenEmpty with
// consolidateAfter Ns; consolidation.enabled becomes WhenEmptyOrUnderutilized
// with consolidateAfter 0s, and an explicit enabled: false keeps empty nodes
// (consolidateAfter Never); neither means WhenEmpty with consolidateAfter
// DefaultEmptyAfter (Flotilla removes empty nodes of a Provisioner that says
// nothing, where v1alpha5 kept them forever: an idle node is pure cost, and
// a user who wants them kept sets a budget of 0); ttlSecondsUntilExpired becomes expireAfter (unset: Never). The
// provider's subnet and security group selectors become selector terms (tags,
// or ids from "aws::ids"), the AMI selector becomes AMI terms, or, without
// one, the alias <family>@latest (al2023@latest by default);
// kubeletConfiguration becomes the EC2NodeClass's kubelet settings; the
// disruption budget is ProvisionerBudgetNodes.
//
// The error wraps ErrNotConvertible when the Provisioner uses something the v1
// API lacks (the Ubuntu family, dockerd, ids mixed with tags in a selector,
// kubelet settings with providerRef) or an id without its resource prefix.
func (p *Provisioner) Convert() (*karpv1.NodePool, *awsv1.EC2NodeClass, error) {
	spec := &p.Spec
	if (spec.Provider == nil) == (spec.ProviderRef == nil) {
		return nil, nil, notConvertible("exactly one of provider or providerRef must be set")
	}
	if kc := spec.KubeletConfiguration; kc != nil && kc.ContainerRuntime != nil && *kc.ContainerRuntime != "containerd" {
		return nil, nil, notConvertible("containerRuntime %q is not supported: only containerd is", *kc.ContainerRuntime)
	}

	nodeClassName := p.Name
	if spec.ProviderRef != nil {
		nodeClassName = spec.ProviderRef.Name
		if spec.KubeletConfiguration != nil {
			return nil, nil, notConvertible("kubeletConfiguration cannot be combined with providerRef: set kubelet on EC2NodeClass %q instead", nodeClassName)
		}
	}

	nodePool := &karpv1.NodePool{
		TypeMeta:   metav1.TypeMeta{APIVersion: karpv1.SchemeGroupVersion.String(), Kind: "NodePool"},
		ObjectMeta: p.derivedMeta(),
		Spec: karpv1.NodePoolSpec{
			Template: karpv1.NodeClaimTemplate{
				TemplateMetadata: karpv1.TemplateMetadata{
					Labels:      templateLabels(p.Name, spec.Labels),
					Annotations: maps.Clone(spec.Annotations),
				},
				Spec: karpv1.NodeClaimTemplateSpec{
					Taints:        slices.Clone(spec.Taints),
					StartupTaints: slices.Clone(spec.StartupTaints),
					Requirements:  requirements(spec.Requirements, spec.Labels),
					NodeClassRef: karpv1.NodeClassReference{
						Group: awsv1.Group,
						Kind:  awsv1.Kind,
						Name:  nodeClassName,
					},
					ExpireAfter: secondsOrNever(spec.TTLSecondsUntilExpired),
				},
			},
			Disruption: disruption(spec),
			Weight:     copyPtr(spec.Weight),
		},
	}
	if spec.Limits != nil && spec.Limits.Resources != nil {
		nodePool.Spec.Limits = karpv1.Limits(spec.Limits.Resources.DeepCopy())
	}
	if spec.ProviderRef != nil {
		return nodePool, nil, nil
	}

	nodeClass, err := p.nodeClass()
	if err != nil {
		return nil, nil, err
	}
	return nodePool, nodeClass, nil
}

// derivedMeta is the metadata of the objects a Provisioner maps onto.
func (p *Provisioner) derivedMeta() metav1.ObjectMeta {
	meta := metav1.ObjectMeta{
		Name:   p.Name,
		Labels: map[string]string{karpv1.ProvisionerNameLabelKey: p.Name},
	}
	if p.UID != "" {
		controller := true
		meta.OwnerReferences = []metav1.OwnerReference{{
			APIVersion: SchemeGroupVersion.String(),
			Kind:       "Provisioner",
			Name:       p.Name,
			UID:        p.UID,
			Controller: &controller,
		}}
	}
	return meta
}

func (p *Provisioner) nodeClass() (*awsv1.EC2NodeClass, error) {
	prov := p.Spec.Provider
	subnets, err := subnetTerms(prov.SubnetSelector)
	if err != nil {
		return nil, err
	}
	groups, err := securityGroupTerms(prov.SecurityGroupSelector)
	if err != nil {
		return nil, err
	}
	family, amis, err := amiTerms(prov.AMIFamily, prov.AMISelector)
	if err != nil {
		return nil, err
	}
	nc := &awsv1.EC2NodeClass{
		TypeMeta:   metav1.TypeMeta{APIVersion: awsv1.SchemeGroupVersion.String(), Kind: awsv1.Kind},
		ObjectMeta: p.derivedMeta(),
		Spec: awsv1.EC2NodeClassSpec{
			SubnetSelectorTerms:        subnets,
			SecurityGroupSelectorTerms: groups,
			AMISelectorTerms:           amis,
			AMIFamily:                  family,
			UserData:                   prov.UserData,
			InstanceProfile:            prov.InstanceProfile,
			Tags:                       maps.Clone(prov.Tags),
			DetailedMonitoring:         copyPtr(prov.DetailedMonitoring),
		},
	}
	if prov.MetadataOptions != nil {
		nc.Spec.MetadataOptions = prov.MetadataOptions.DeepCopy()
	}
	for i := range prov.BlockDeviceMappings {
		nc.Spec.BlockDeviceMappings = append(nc.Spec.BlockDeviceMappings, *prov.BlockDeviceMappings[i].DeepCopy())
	}
	if kc := p.Spec.KubeletConfiguration; kc != nil {
		nc.Spec.Kubelet = kc.KubeletConfiguration.DeepCopy()
	}
	return nc, nil
}

// templateLabels are the Provisioner's labels plus the v1alpha5 label naming
// the Provisioner, so node selectors written for Karpenter v1alpha5 match.
func templateLabels(name string, labels map[string]string) map[string]string {
	out := maps.Clone(labels)
	if out == nil {
		out = map[string]string{}
	}
	out[karpv1.ProvisionerNameLabelKey] = name
	return out
}

// requirements copies the Provisioner's requirements and adds v1alpha5's
// defaults for what they and the labels leave open.
func requirements(in []karpv1.NodeSelectorRequirementWithMinValues, labels map[string]string) []karpv1.NodeSelectorRequirementWithMinValues {
	out := make([]karpv1.NodeSelectorRequirementWithMinValues, 0, len(in)+4)
	for i := range in {
		out = append(out, *in[i].DeepCopy())
	}
	constrained := func(keys ...string) bool {
		for _, k := range keys {
			if _, ok := labels[k]; ok {
				return true
			}
			if slices.ContainsFunc(in, func(r karpv1.NodeSelectorRequirementWithMinValues) bool { return r.Key == k }) {
				return true
			}
		}
		return false
	}
	if !constrained(karpv1.CapacityTypeLabelKey) {
		out = append(out, inRequirement(karpv1.CapacityTypeLabelKey, DefaultCapacityTypes...))
	}
	if !constrained(karpv1.LabelArch, "beta.kubernetes.io/arch") {
		out = append(out, inRequirement(karpv1.LabelArch, DefaultArchitectures...))
	}
	if !constrained(instanceTypeKeys...) {
		out = append(out,
			inRequirement(karpv1.LabelInstanceCategory, DefaultInstanceCategories...),
			karpv1.NodeSelectorRequirementWithMinValues{
				Key:      karpv1.LabelInstanceGeneration,
				Operator: karpv1.OperatorGt,
				Values:   []string{DefaultMinInstanceGeneration},
			},
		)
	}
	return out
}

func inRequirement(key string, values ...string) karpv1.NodeSelectorRequirementWithMinValues {
	return karpv1.NodeSelectorRequirementWithMinValues{
		Key:      key,
		Operator: karpv1.OperatorIn,
		Values:   slices.Clone(values),
	}
}

// DefaultEmptyAfter is how long a node of a Provisioner without
// ttlSecondsAfterEmpty or consolidation stays empty before it is removed.
const DefaultEmptyAfter = 15 * time.Second

// ProvisionerBudgetNodes is the disruption budget of a converted
// Provisioner. v1alpha5 had no budgets: an empty node went when its TTL
// passed, however many went with it, so a Provisioner's NodePool allows all
// of its nodes to be disrupted at once (a NodePool's default is 10 %).
const ProvisionerBudgetNodes = "100%"

// disruption maps the v1alpha5 emptiness TTL and consolidation switch.
func disruption(spec *ProvisionerSpec) karpv1.Disruption {
	d := karpv1.Disruption{Budgets: []karpv1.Budget{{Nodes: ProvisionerBudgetNodes}}}
	switch {
	case spec.TTLSecondsAfterEmpty != nil:
		d.ConsolidationPolicy = karpv1.ConsolidationPolicyWhenEmpty
		d.ConsolidateAfter = karpv1.NillableDuration{Duration: seconds(*spec.TTLSecondsAfterEmpty)}
	case spec.Consolidation != nil && spec.Consolidation.Enabled != nil && *spec.Consolidation.Enabled:
		d.ConsolidationPolicy = karpv1.ConsolidationPolicyWhenEmptyOrUnderutilized
	case spec.Consolidation != nil && spec.Consolidation.Enabled != nil:
		// consolidation.enabled: false, said explicitly: keep empty nodes.
		d.ConsolidationPolicy = karpv1.ConsolidationPolicyWhenEmpty
		d.ConsolidateAfter = karpv1.NillableDuration{Never: true}
	default:
		d.ConsolidationPolicy = karpv1.ConsolidationPolicyWhenEmpty
		d.ConsolidateAfter = karpv1.NillableDuration{Duration: DefaultEmptyAfter}
	}
	return d
}

func secondsOrNever(s *int64) *karpv1.NillableDuration {
	if s == nil {
		return karpv1.NeverDuration()
	}
	return karpv1.NewDuration(seconds(*s))
}

func seconds(s int64) time.Duration {
	return time.Duration(s) * time.Second
}

// subnetTerms maps a v1alpha5 subnet selector.
func subnetTerms(sel map[string]string) ([]awsv1.SubnetSelectorTerm, error) {
	ids, tags, err := splitIDs("subnetSelector", "subnet-", sel)
	if err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		return []awsv1.SubnetSelectorTerm{{Tags: tags}}, nil
	}
	terms := make([]awsv1.SubnetSelectorTerm, 0, len(ids))
	for _, id := range ids {
		terms = append(terms, awsv1.SubnetSelectorTerm{ID: id})
	}
	return terms, nil
}

// securityGroupTerms maps a v1alpha5 security group selector.
func securityGroupTerms(sel map[string]string) ([]awsv1.SecurityGroupSelectorTerm, error) {
	ids, tags, err := splitIDs("securityGroupSelector", "sg-", sel)
	if err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		return []awsv1.SecurityGroupSelectorTerm{{Tags: tags}}, nil
	}
	terms := make([]awsv1.SecurityGroupSelectorTerm, 0, len(ids))
	for _, id := range ids {
		terms = append(terms, awsv1.SecurityGroupSelectorTerm{ID: id})
	}
	return terms, nil
}

// splitIDs separates the "aws::ids" key from the tag keys of a selector; the
// v1 API cannot AND ids with tags, so having both is an error, as is an id
// without the resource's prefix.
func splitIDs(field, prefix string, sel map[string]string) (ids []string, tags map[string]string, err error) {
	tags = map[string]string{}
	for k, v := range sel {
		switch k {
		case SelectorIDs, SelectorIDsLegacy:
			ids = append(ids, splitList(v)...)
		default:
			tags[k] = v
		}
	}
	if len(ids) > 0 && len(tags) > 0 {
		return nil, nil, notConvertible("%s: %q cannot be combined with tags", field, SelectorIDs)
	}
	if err := checkIDs(field, prefix, ids); err != nil {
		return nil, nil, err
	}
	if len(ids) == 0 && len(tags) == 0 {
		return nil, nil, notConvertible("%s is empty", field)
	}
	slices.Sort(ids)
	return slices.Compact(ids), tags, nil
}

// amiTerms maps the AMI family and selector onto v1 AMI terms and the family
// the EC2NodeClass must name ("" when an alias implies it).
func amiTerms(family string, sel map[string]string) (string, []awsv1.AMISelectorTerm, error) {
	if family == "Ubuntu" {
		return "", nil, notConvertible("amiFamily Ubuntu is not supported by karpenter.k8s.aws/v1: use amiFamily Custom with an amiSelector")
	}
	if len(sel) == 0 {
		if family == "" {
			return "", []awsv1.AMISelectorTerm{{Alias: awsv1.DefaultAMIAlias}}, nil
		}
		if family == awsv1.AMIFamilyCustom {
			return "", nil, notConvertible("amiFamily Custom needs an amiSelector")
		}
		return "", []awsv1.AMISelectorTerm{{Alias: strings.ToLower(family) + "@latest"}}, nil
	}
	if family == "" {
		family = awsv1.AMIFamilyAL2023
	}
	var ids, owners []string
	term := awsv1.AMISelectorTerm{}
	for k, v := range sel {
		switch k {
		case SelectorIDs, SelectorIDsLegacy:
			ids = append(ids, splitList(v)...)
		case SelectorName:
			term.Name = v
		case SelectorOwners:
			owners = append(owners, splitList(v)...)
		default:
			if term.Tags == nil {
				term.Tags = map[string]string{}
			}
			term.Tags[k] = v
		}
	}
	if len(ids) > 0 {
		if term.Name != "" || term.Tags != nil || len(owners) > 0 {
			return "", nil, notConvertible("amiSelector: %q cannot be combined with other keys", SelectorIDs)
		}
		if err := checkIDs("amiSelector", "ami-", ids); err != nil {
			return "", nil, err
		}
		slices.Sort(ids)
		terms := make([]awsv1.AMISelectorTerm, 0, len(ids))
		for _, id := range slices.Compact(ids) {
			terms = append(terms, awsv1.AMISelectorTerm{ID: id})
		}
		return family, terms, nil
	}
	if len(owners) == 0 {
		return family, []awsv1.AMISelectorTerm{term}, nil
	}
	if term.Name == "" && term.Tags == nil {
		return "", nil, notConvertible("amiSelector: %q needs a name or tags to select images", SelectorOwners)
	}
	slices.Sort(owners)
	terms := make([]awsv1.AMISelectorTerm, 0, len(owners))
	for _, owner := range slices.Compact(owners) {
		t := *term.DeepCopy()
		t.Owner = owner
		terms = append(terms, t)
	}
	return family, terms, nil
}

// checkIDs reports an id that does not start with prefix.
func checkIDs(field, prefix string, ids []string) error {
	for _, id := range ids {
		if !strings.HasPrefix(id, prefix) {
			return notConvertible("%s: %q is not an id starting with %q", field, id, prefix)
		}
	}
	return nil
}

// splitList splits a comma-separated list, trimming blanks.
func splitList(s string) []string {
	var out []string
	for part := range strings.SplitSeq(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

func notConvertible(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrNotConvertible, fmt.Sprintf(format, args...))
}

func copyPtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}
