package snapshot

import (
	"fmt"
	"maps"

	awsv1 "github.com/flotilla-dev/flotilla/api/aws/v1"
	karpv1 "github.com/flotilla-dev/flotilla/api/karpenter/v1"
	clusterv1 "github.com/flotilla-dev/flotilla/gen/flotilla/cluster/v1"
)

// NodeClass converts an EC2NodeClass into the model: what its selectors
// resolved to (subnets with zones, security groups, images), its kubelet
// settings and its hash. It is ready unless its Ready condition is False
// (the reason then says why), so a node class whose status nobody has
// written yet does not block launches; the actuator resolves the selectors
// itself when it launches.
func NodeClass(nc *awsv1.EC2NodeClass) (*clusterv1.NodeClass, error) {
	out, err := nodeClass(nc)
	if err != nil {
		return nil, objectError("EC2NodeClass", "", nc.Name, err)
	}
	return out, nil
}

func nodeClass(nc *awsv1.EC2NodeClass) (*clusterv1.NodeClass, error) {
	out := &clusterv1.NodeClass{
		Name:              nc.Name,
		Hash:              NodeClassHash(nc),
		Ready:             true,
		InterruptionQueue: nc.Spec.InterruptionQueue,
	}
	for _, s := range nc.Status.Subnets {
		out.Subnets = append(out.Subnets, &clusterv1.Subnet{Id: s.ID, Zone: s.Zone, ZoneId: s.ZoneID})
	}
	for _, sg := range nc.Status.SecurityGroups {
		out.SecurityGroups = append(out.SecurityGroups, sg.ID)
	}
	for i, ami := range nc.Status.AMIs {
		img := &clusterv1.Image{Id: ami.ID, Name: ami.Name}
		for j, r := range ami.Requirements {
			req, err := Requirement(fmt.Sprintf("status.amis[%d].requirements[%d]", i, j), r)
			if err != nil {
				return nil, err
			}
			img.Requirements = append(img.Requirements, req)
		}
		out.Images = append(out.Images, img)
	}
	if k := nc.Spec.Kubelet; k != nil {
		out.Kubelet = kubelet(k)
	}
	if c := conditionFalse(nc.Status.Conditions, awsv1.ConditionTypeReady); c != nil {
		out.Ready = false
		out.NotReadyReason = notReadyReason("EC2NodeClass", nc.Name, c)
	}
	return out, nil
}

func kubelet(k *awsv1.KubeletConfiguration) *clusterv1.Kubelet {
	out := &clusterv1.Kubelet{
		KubeReserved:   maps.Clone(k.KubeReserved),
		SystemReserved: maps.Clone(k.SystemReserved),
		EvictionHard:   maps.Clone(k.EvictionHard),
	}
	if k.MaxPods != nil {
		out.MaxPods = *k.MaxPods
	}
	if k.PodsPerCore != nil {
		out.PodsPerCore = *k.PodsPerCore
	}
	return out
}

// NodeClassHash is the hash of an EC2NodeClass's launch settings; a
// NodeClaim records it (karpenter.k8s.aws/ec2nodeclass-hash) and has
// drifted when it no longer matches. When the node class carries that
// annotation itself (set by whoever maintains its status), that value is
// used, so every service agrees on it. The selector terms are left out:
// what they resolve to is checked on its own.
func NodeClassHash(nc *awsv1.EC2NodeClass) string {
	if h := nc.Annotations[karpv1.NodeClassHashAnnotationKey]; h != "" {
		return h
	}
	spec := nc.Spec
	spec.SubnetSelectorTerms = nil
	spec.SecurityGroupSelectorTerms = nil
	spec.AMISelectorTerms = nil
	return hashOf(spec)
}
