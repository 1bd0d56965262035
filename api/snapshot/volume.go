package snapshot

import (
	"fmt"
	"slices"
	"strings"

	clusterv1 "github.com/flotilla-dev/flotilla/gen/flotilla/cluster/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
)

// Zone label keys that name the same zones as topology.kubernetes.io/zone;
// volume topology on them is expressed on the standard key, which every
// node (and every new node the planner considers) carries.
const (
	LabelZone           = "topology.kubernetes.io/zone"
	labelZoneBeta       = "failure-domain.beta.kubernetes.io/zone"
	labelEBSCSIZone     = "topology.ebs.csi.aws.com/zone"
	annStorageClassBeta = "volume.beta.kubernetes.io/storage-class"
)

// VolumeSource looks up the objects behind a pod's volumes. A method returns
// nil when the object does not exist (yet).
type VolumeSource interface {
	PersistentVolumeClaim(namespace, name string) *corev1.PersistentVolumeClaim
	PersistentVolume(name string) *corev1.PersistentVolume
	StorageClass(name string) *storagev1.StorageClass
}

// VolumeClaim is a PersistentVolumeClaim one of a pod's volumes uses.
type VolumeClaim struct {
	// Claim is the claim's name (for a generic ephemeral volume,
	// pod-volume).
	Claim string
	// Class is the storage class of a generic ephemeral volume's claim
	// template, used until the claim exists.
	Class string
	// Field is the volume's path in the pod, for errors.
	Field string
}

// VolumeClaims returns the claims a pod's volumes use, including those of
// its generic ephemeral volumes.
func VolumeClaims(p *corev1.Pod) []VolumeClaim {
	var out []VolumeClaim
	for i, v := range p.Spec.Volumes {
		field := fmt.Sprintf("spec.volumes[%d]", i)
		switch {
		case v.PersistentVolumeClaim != nil:
			out = append(out, VolumeClaim{Claim: v.PersistentVolumeClaim.ClaimName, Field: field})
		case v.Ephemeral != nil:
			vc := VolumeClaim{Claim: p.Name + "-" + v.Name, Field: field}
			if t := v.Ephemeral.VolumeClaimTemplate; t != nil && t.Spec.StorageClassName != nil {
				vc.Class = *t.Spec.StorageClassName
			}
			out = append(out, vc)
		}
	}
	return out
}

// ClaimNames returns the names of the PersistentVolumeClaims a pod uses,
// including those of its generic ephemeral volumes (named pod-volume).
func ClaimNames(p *corev1.Pod) []string {
	var out []string
	for _, vc := range VolumeClaims(p) {
		out = append(out, vc.Claim)
	}
	return out
}

// volumeTopology returns where the pod's volumes let it run.
func volumeTopology(p *corev1.Pod, vs VolumeSource) ([]*clusterv1.VolumeTopology, error) {
	if vs == nil {
		return nil, nil
	}
	return VolumeTopology(p.Namespace, VolumeClaims(p), vs)
}

// VolumeTopology returns what claims (of a pod in namespace) mean for
// where the pod runs: for a bound claim the PersistentVolume's node
// affinity (or its legacy zone labels) and its CSI driver, for an unbound
// claim of a WaitForFirstConsumer StorageClass the class's allowed
// topologies, and its provisioner as the driver. A claim is listed when it
// constrains the node or names a driver; missing claims add nothing.
func VolumeTopology(namespace string, claims []VolumeClaim, vs VolumeSource) ([]*clusterv1.VolumeTopology, error) {
	var out []*clusterv1.VolumeTopology
	for _, vc := range claims {
		var (
			terms  []*clusterv1.NodeSelectorTerm
			driver string
			err    error
		)
		if pvc := vs.PersistentVolumeClaim(namespace, vc.Claim); pvc != nil {
			terms, driver, err = claimTopology(pvc, vs)
		} else if vc.Class != "" {
			sc := vs.StorageClass(vc.Class)
			terms, err = classTopology(sc)
			driver = classDriver(sc)
		}
		if err != nil {
			return nil, prefixField(vc.Field, fmt.Errorf("claim %s: %w", vc.Claim, err))
		}
		if len(terms) > 0 || driver != "" {
			out = append(out, &clusterv1.VolumeTopology{Claim: vc.Claim, Terms: terms, Driver: driver})
		}
	}
	return out, nil
}

func claimTopology(pvc *corev1.PersistentVolumeClaim, vs VolumeSource) ([]*clusterv1.NodeSelectorTerm, string, error) {
	if pvc.Spec.VolumeName != "" {
		pv := vs.PersistentVolume(pvc.Spec.VolumeName)
		terms, err := volumeTerms(pv)
		return terms, VolumeDriver(pv), err
	}
	class := pvc.Annotations[annStorageClassBeta]
	if pvc.Spec.StorageClassName != nil {
		class = *pvc.Spec.StorageClassName
	}
	if class == "" {
		return nil, "", nil
	}
	sc := vs.StorageClass(class)
	terms, err := classTopology(sc)
	return terms, classDriver(sc), err
}

// DriverEBS is the AWS EBS CSI driver, which also attaches the in-tree
// awsElasticBlockStore volumes (CSI migration).
const DriverEBS = "ebs.csi.aws.com"

// provisionerEBS is the in-tree EBS provisioner, migrated to DriverEBS.
const provisionerEBS = "kubernetes.io/aws-ebs"

// VolumeDriver returns the CSI driver that attaches a PersistentVolume, ""
// when none does (or pv is nil).
func VolumeDriver(pv *corev1.PersistentVolume) string {
	switch {
	case pv == nil:
		return ""
	case pv.Spec.CSI != nil:
		return pv.Spec.CSI.Driver
	case pv.Spec.AWSElasticBlockStore != nil:
		return DriverEBS
	}
	return ""
}

// classDriver returns the CSI driver a StorageClass provisions volumes for:
// its provisioner, which for CSI is the driver's name.
func classDriver(sc *storagev1.StorageClass) string {
	switch {
	case sc == nil:
		return ""
	case sc.Provisioner == provisionerEBS:
		return DriverEBS
	case strings.HasPrefix(sc.Provisioner, "kubernetes.io/"):
		// Other in-tree plugins attach nothing the planner counts.
		return ""
	}
	return sc.Provisioner
}

// AttachableVolumes returns how many volumes each CSI driver can attach to
// a node, from its CSINode (drivers that report no count set no limit).
func AttachableVolumes(n *storagev1.CSINode) map[string]int64 {
	if n == nil {
		return nil
	}
	var out map[string]int64
	for _, d := range n.Spec.Drivers {
		if d.Allocatable == nil || d.Allocatable.Count == nil {
			continue
		}
		if out == nil {
			out = map[string]int64{}
		}
		out[d.Name] = int64(*d.Allocatable.Count)
	}
	return out
}

// volumeTerms returns a PersistentVolume's node affinity, or a term built
// from its legacy zone labels when it has none.
func volumeTerms(pv *corev1.PersistentVolume) ([]*clusterv1.NodeSelectorTerm, error) {
	if pv == nil {
		return nil, nil
	}
	if na := pv.Spec.NodeAffinity; na != nil && na.Required != nil {
		terms, err := NodeSelectorTerms("nodeAffinity.required.nodeSelectorTerms", na.Required.NodeSelectorTerms)
		if err != nil {
			return nil, fmt.Errorf("persistentvolume %s: %w", pv.Name, err)
		}
		for _, t := range terms {
			for _, r := range t.Requirements {
				r.Key = zoneKey(r.Key)
			}
		}
		return terms, nil
	}
	for _, k := range []string{LabelZone, labelZoneBeta} {
		if z, ok := pv.Labels[k]; ok && z != "" {
			// Multi-zone volumes join zones with "__".
			zones := strings.Split(z, "__")
			slices.Sort(zones)
			return []*clusterv1.NodeSelectorTerm{{Requirements: []*clusterv1.Requirement{
				{Key: LabelZone, Operator: clusterv1.Operator_OPERATOR_IN, Values: zones},
			}}}, nil
		}
	}
	return nil, nil
}

// classTopology returns the allowed topologies of a WaitForFirstConsumer
// StorageClass (an Immediate class binds before scheduling, so it constrains
// nothing here).
func classTopology(sc *storagev1.StorageClass) ([]*clusterv1.NodeSelectorTerm, error) {
	if sc == nil || sc.VolumeBindingMode == nil || *sc.VolumeBindingMode != storagev1.VolumeBindingWaitForFirstConsumer {
		return nil, nil
	}
	var out []*clusterv1.NodeSelectorTerm
	for i, t := range sc.AllowedTopologies {
		term := &clusterv1.NodeSelectorTerm{}
		for j, e := range t.MatchLabelExpressions {
			if e.Key == "" || len(e.Values) == 0 {
				return nil, fieldErrorf(fmt.Sprintf("storageclass %s allowedTopologies[%d].matchLabelExpressions[%d]", sc.Name, i, j), "needs a key and values")
			}
			term.Requirements = append(term.Requirements, &clusterv1.Requirement{
				Key: zoneKey(e.Key), Operator: clusterv1.Operator_OPERATOR_IN, Values: slices.Clone(e.Values),
			})
		}
		if len(term.Requirements) > 0 {
			out = append(out, term)
		}
	}
	return out, nil
}

func zoneKey(k string) string {
	switch k {
	case labelZoneBeta, labelEBSCSIZone:
		return LabelZone
	}
	return k
}
