package cluster

import (
	"github.com/flotilla-dev/flotilla/api/snapshot"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The transforms below run on every object before it enters an informer
// cache and strip what the planner never reads (managed fields, images,
// environment, probes, most annotations, container statuses, node images,
// volume sources but for their CSI driver),
// which is most of an object's size. They modify the freshly decoded object
// in place, as client-go allows. Pods, the bulk of the cache, are converted
// to their model right away (see cachedPod).

// annStorageClassBeta is the legacy storage class annotation of a claim.
const annStorageClassBeta = "volume.beta.kubernetes.io/storage-class"

func keepAnnotations(in map[string]string) map[string]string {
	var out map[string]string
	for k, v := range in {
		if snapshot.PlannerAnnotation(k) || k == annStorageClassBeta {
			if out == nil {
				out = map[string]string{}
			}
			out[k] = v
		}
	}
	return out
}

func stripMeta(m *metav1.ObjectMeta) {
	m.ManagedFields = nil
	m.Annotations = keepAnnotations(m.Annotations)
}

func transformMeta(obj any) (any, error) {
	if m, ok := obj.(metav1.ObjectMetaAccessor); ok {
		if om, ok := m.GetObjectMeta().(*metav1.ObjectMeta); ok {
			stripMeta(om)
		}
	}
	return obj, nil
}

func stripPodSpec(s *corev1.PodSpec) {
	for i := range s.Containers {
		stripContainer(&s.Containers[i])
	}
	for i := range s.InitContainers {
		stripContainer(&s.InitContainers[i])
	}
	// Ephemeral (debug) containers take no resources.
	s.EphemeralContainers = nil
	var vols []corev1.Volume
	for _, v := range s.Volumes {
		switch {
		case v.PersistentVolumeClaim != nil:
			vols = append(vols, corev1.Volume{Name: v.Name, VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: v.PersistentVolumeClaim}})
		case v.Ephemeral != nil:
			e := &corev1.EphemeralVolumeSource{}
			if t := v.Ephemeral.VolumeClaimTemplate; t != nil {
				e.VolumeClaimTemplate = &corev1.PersistentVolumeClaimTemplate{Spec: corev1.PersistentVolumeClaimSpec{StorageClassName: t.Spec.StorageClassName}}
			}
			vols = append(vols, corev1.Volume{Name: v.Name, VolumeSource: corev1.VolumeSource{Ephemeral: e}})
		case v.EmptyDir != nil:
			vols = append(vols, corev1.Volume{Name: v.Name, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
		case v.HostPath != nil:
			vols = append(vols, corev1.Volume{Name: v.Name, VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{}}})
		}
	}
	s.Volumes = vols
	s.ImagePullSecrets = nil
	s.SecurityContext = nil
	s.DNSConfig = nil
	s.HostAliases = nil
	s.ReadinessGates = nil
}

func stripContainer(c *corev1.Container) {
	*c = corev1.Container{
		Name:          c.Name,
		Resources:     corev1.ResourceRequirements{Requests: c.Resources.Requests, Limits: c.Resources.Limits},
		RestartPolicy: c.RestartPolicy,
		Ports:         hostPorts(c.Ports),
	}
}

// hostPorts keeps the ports that can be host ports (with host networking
// every container port is one).
func hostPorts(ports []corev1.ContainerPort) []corev1.ContainerPort {
	var out []corev1.ContainerPort
	for _, p := range ports {
		out = append(out, corev1.ContainerPort{ContainerPort: p.ContainerPort, HostPort: p.HostPort, Protocol: p.Protocol, HostIP: p.HostIP})
	}
	return out
}

func transformNode(obj any) (any, error) {
	n, ok := obj.(*corev1.Node)
	if !ok {
		return obj, nil
	}
	stripMeta(&n.ObjectMeta)
	var ready []corev1.NodeCondition
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			ready = append(ready, corev1.NodeCondition{Type: c.Type, Status: c.Status})
		}
	}
	n.Status = corev1.NodeStatus{Capacity: n.Status.Capacity, Allocatable: n.Status.Allocatable, Conditions: ready}
	return n, nil
}

func transformDaemonSet(obj any) (any, error) {
	ds, ok := obj.(*appsv1.DaemonSet)
	if !ok {
		return obj, nil
	}
	stripMeta(&ds.ObjectMeta)
	ds.Spec.Template.Annotations = keepAnnotations(ds.Spec.Template.Annotations)
	stripPodSpec(&ds.Spec.Template.Spec)
	ds.Status = appsv1.DaemonSetStatus{}
	return ds, nil
}

func transformPVC(obj any) (any, error) {
	c, ok := obj.(*corev1.PersistentVolumeClaim)
	if !ok {
		return obj, nil
	}
	stripMeta(&c.ObjectMeta)
	c.Spec = corev1.PersistentVolumeClaimSpec{VolumeName: c.Spec.VolumeName, StorageClassName: c.Spec.StorageClassName}
	c.Status = corev1.PersistentVolumeClaimStatus{Phase: c.Status.Phase}
	return c, nil
}

func transformPV(obj any) (any, error) {
	pv, ok := obj.(*corev1.PersistentVolume)
	if !ok {
		return obj, nil
	}
	stripMeta(&pv.ObjectMeta)
	var src corev1.PersistentVolumeSource
	switch {
	case pv.Spec.CSI != nil:
		src.CSI = &corev1.CSIPersistentVolumeSource{Driver: pv.Spec.CSI.Driver}
	case pv.Spec.AWSElasticBlockStore != nil:
		src.AWSElasticBlockStore = &corev1.AWSElasticBlockStoreVolumeSource{}
	}
	pv.Spec = corev1.PersistentVolumeSpec{NodeAffinity: pv.Spec.NodeAffinity, ClaimRef: pv.Spec.ClaimRef, StorageClassName: pv.Spec.StorageClassName,
		PersistentVolumeSource: src}
	pv.Status = corev1.PersistentVolumeStatus{}
	return pv, nil
}

// transformCSINode keeps each driver's name and attach limit.
func transformCSINode(obj any) (any, error) {
	n, ok := obj.(*storagev1.CSINode)
	if !ok {
		return obj, nil
	}
	stripMeta(&n.ObjectMeta)
	n.OwnerReferences = nil
	for i, d := range n.Spec.Drivers {
		n.Spec.Drivers[i] = storagev1.CSINodeDriver{Name: d.Name, Allocatable: d.Allocatable}
	}
	return n, nil
}

func transformStorageClass(obj any) (any, error) {
	sc, ok := obj.(*storagev1.StorageClass)
	if !ok {
		return obj, nil
	}
	stripMeta(&sc.ObjectMeta)
	sc.Parameters = nil
	sc.MountOptions = nil
	return sc, nil
}
