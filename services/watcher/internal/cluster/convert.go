package cluster

import (
	"fmt"
	"google.golang.org/protobuf/types/known/timestamppb"
	"strings"

	awsv1 "github.com/flotilla-dev/flotilla/api/aws/v1"
	"github.com/flotilla-dev/flotilla/api/aws/v1alpha5"
	karpv1 "github.com/flotilla-dev/flotilla/api/karpenter/v1"
	"github.com/flotilla-dev/flotilla/api/snapshot"
	clusterv1 "github.com/flotilla-dev/flotilla/gen/flotilla/cluster/v1"
	"google.golang.org/protobuf/proto"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	storagev1 "k8s.io/api/storage/v1"
)

// object returns the model of the object behind k (a *clusterv1.Pod,
// *clusterv1.Node, ...), or nil when it is gone (or cannot be converted:
// such an object is logged and left out, so one bad object never stops the
// rest of the cluster from being planned), and its fingerprint when it is
// known already (0 otherwise).
func (c *Cluster) object(k key) (proto.Message, uint64) {
	var (
		obj proto.Message
		fp  uint64
		err error
	)
	switch k.kind {
	case kindPod:
		p, ok := get(c.inf.pods, k.name).(*cachedPod)
		if !ok || p.finished {
			return nil, 0
		}
		var m *clusterv1.Pod
		if m, err = c.pod(p); err == nil {
			obj = m
			if m == p.model {
				fp = p.fingerprint
			}
		}
	case kindNode:
		n, ok := get(c.inf.nodes, k.name).(*corev1.Node)
		if !ok {
			return nil, 0
		}
		var m *clusterv1.Node
		if m, err = snapshot.Node(n); err == nil {
			if m.NodeClaim == "" {
				m.NodeClaim = c.claimOfNode(n)
			}
			m.PricePerHour = c.price(n.Labels)
			m.LastPodEvent = timestamppb.New(c.events.get(n.Name))
			csiNode, _ := get(c.inf.csiNodes, n.Name).(*storagev1.CSINode)
			m.AttachableVolumes = snapshot.AttachableVolumes(csiNode)
			obj = m
		}
	case kindNodeClaim:
		nc, ok := get(c.inf.nodeClaims, k.name).(*karpv1.NodeClaim)
		if !ok {
			c.notTyped(k, get(c.inf.nodeClaims, k.name))
			return nil, 0
		}
		var m *clusterv1.NodeClaim
		if m, err = snapshot.NodeClaim(nc); err == nil {
			m.PricePerHour = c.price(nc.Labels)
			obj = m
		}
	case kindNodePool:
		var m *clusterv1.NodePool
		if m, err = c.nodePool(k.name); err == nil && m != nil {
			class, _ := c.nodeClass(m.GetNodeClass())
			snapshot.LinkNodeClass(m, class)
			obj = m
		}
	case kindNodeClass:
		var m *clusterv1.NodeClass
		if m, err = c.nodeClass(k.name); err == nil && m != nil {
			obj = m
		}
	case kindDaemonSet:
		ds, ok := get(c.inf.daemonSets, k.name).(*appsv1.DaemonSet)
		if !ok {
			return nil, 0
		}
		if obj, err = snapshot.DaemonSet(ds, snapshot.Lookup{}); err != nil {
			obj = nil
		}
	case kindPDB:
		pdb, ok := get(c.inf.pdbs, k.name).(*policyv1.PodDisruptionBudget)
		if !ok {
			return nil, 0
		}
		if obj, err = snapshot.PodDisruptionBudget(pdb); err != nil {
			obj = nil
		}
	case kindInstanceType:
		c.mu.RLock()
		it := c.catalog[k.name]
		c.mu.RUnlock()
		if it == nil {
			return nil, 0
		}
		obj = it
	}
	if err != nil {
		c.logger.Warn("object_not_converted", "kind", k.kind.String(), "name", k.name, "error", err.Error())
		return nil, 0
	}
	return obj, fp
}

// convert returns the change that carries the object behind k (see
// object), or nil.
func (c *Cluster) convert(k key) (*clusterv1.Change, uint64) {
	obj, fp := c.object(k)
	if obj == nil {
		return nil, 0
	}
	return changeOf(obj), fp
}

// changeOf wraps a model object in a change.
func changeOf(obj proto.Message) *clusterv1.Change {
	ch := &clusterv1.Change{}
	switch o := obj.(type) {
	case *clusterv1.Pod:
		ch.Object = &clusterv1.Change_Pod{Pod: o}
	case *clusterv1.Node:
		ch.Object = &clusterv1.Change_Node{Node: o}
	case *clusterv1.NodeClaim:
		ch.Object = &clusterv1.Change_NodeClaim{NodeClaim: o}
	case *clusterv1.NodePool:
		ch.Object = &clusterv1.Change_NodePool{NodePool: o}
	case *clusterv1.NodeClass:
		ch.Object = &clusterv1.Change_NodeClass{NodeClass: o}
	case *clusterv1.DaemonSet:
		ch.Object = &clusterv1.Change_DaemonSet{DaemonSet: o}
	case *clusterv1.PodDisruptionBudget:
		ch.Object = &clusterv1.Change_PodDisruptionBudget{PodDisruptionBudget: o}
	case *clusterv1.InstanceType:
		ch.Object = &clusterv1.Change_InstanceType{InstanceType: o}
	}
	return ch
}

// pod completes a cached pod's model with what depends on other objects:
// its volumes' topology and, while pending, its nomination. The cached
// model is shared when there is nothing to add.
func (c *Cluster) pod(p *cachedPod) (*clusterv1.Pod, error) {
	if p.err != nil {
		return nil, p.err
	}
	var vols []*clusterv1.VolumeTopology
	if len(p.claims) > 0 {
		var err error
		if vols, err = snapshot.VolumeTopology(p.model.GetNamespace(), p.claims, volumeSource{c.inf}); err != nil {
			return nil, fmt.Errorf("pod %s: %w", p.key(), err)
		}
	}
	var nominated string
	if p.nodeName() == "" {
		nominated = c.nominatedClaim(p.key())
	}
	if len(vols) == 0 && nominated == "" {
		return p.model, nil
	}
	m := proto.CloneOf(p.model)
	m.Volumes = vols
	m.NominatedNodeClaim = nominated
	return m, nil
}

// notTyped logs a cached custom resource that did not decode into its type.
func (c *Cluster) notTyped(k key, obj any) {
	if obj != nil {
		c.logger.Warn("object_not_converted", "kind", k.kind.String(), "name", k.name, "error", "object does not match its schema")
	}
}

// nodePool converts the NodePool of that name, or the Provisioner of that
// name mapped onto a NodePool; nil when neither exists. A NodePool wins
// over a Provisioner of the same name.
func (c *Cluster) nodePool(name string) (*clusterv1.NodePool, error) {
	if np, ok := get(c.inf.nodePools, name).(*karpv1.NodePool); ok {
		return snapshot.NodePool(np)
	}
	if p, ok := get(c.inf.provisioners, name).(*v1alpha5.Provisioner); ok {
		pool, _, err := snapshot.Provisioner(p)
		return pool, err
	}
	return nil, nil
}

// nodeClass converts the EC2NodeClass of that name, or the node class a
// Provisioner of that name describes; nil when neither exists.
func (c *Cluster) nodeClass(name string) (*clusterv1.NodeClass, error) {
	if nc, ok := get(c.inf.nodeClasses, name).(*awsv1.EC2NodeClass); ok {
		return snapshot.NodeClass(nc)
	}
	if c.inf.provisioners == nil {
		return nil, nil
	}
	for _, o := range c.inf.provisioners.GetStore().List() {
		p, ok := o.(*v1alpha5.Provisioner)
		if !ok || snapshot.ProvisionerNodeClassName(p) != name {
			continue
		}
		_, class, err := snapshot.Provisioner(p)
		return class, err
	}
	return nil, nil
}

// claimOfNode finds the NodeClaim a node registered for, by node name or
// provider id.
func (c *Cluster) claimOfNode(n *corev1.Node) string {
	if keys := byIndex(c.inf.nodeClaims, indexNodeName, n.Name); len(keys) > 0 {
		return keys[0]
	}
	if n.Spec.ProviderID != "" {
		if keys := byIndex(c.inf.nodeClaims, indexProviderID, n.Spec.ProviderID); len(keys) > 0 {
			return keys[0]
		}
	}
	return ""
}

// price is what the catalogue says an instance with these labels costs, 0
// when it does not know.
func (c *Cluster) price(labels map[string]string) float64 {
	c.mu.RLock()
	it := c.catalog[labels[karpv1.LabelInstanceType]]
	c.mu.RUnlock()
	zone, ct := labels[karpv1.LabelTopologyZone], labels[karpv1.CapacityTypeLabelKey]
	if ct == "" {
		ct = karpv1.CapacityTypeOnDemand
	}
	for _, o := range it.GetOfferings() {
		if o.GetZone() == zone && o.GetCapacityType() == ct {
			return o.GetPricePerHour()
		}
	}
	return 0
}

// volumeSource reads claims, volumes and classes from the caches.
type volumeSource struct{ inf *informers }

func (v volumeSource) PersistentVolumeClaim(namespace, name string) *corev1.PersistentVolumeClaim {
	pvc, _ := get(v.inf.pvcs, namespace+"/"+name).(*corev1.PersistentVolumeClaim)
	return pvc
}

func (v volumeSource) PersistentVolume(name string) *corev1.PersistentVolume {
	pv, _ := get(v.inf.pvs, name).(*corev1.PersistentVolume)
	return pv
}

func (v volumeSource) StorageClass(name string) *storagev1.StorageClass {
	sc, _ := get(v.inf.storageClasses, name).(*storagev1.StorageClass)
	return sc
}

// deletedChange is the change that removes the object behind k; only the
// key fields are set.
func deletedChange(k key) *clusterv1.Change {
	ns, name := splitKey(k.name)
	ch := &clusterv1.Change{Deleted: true}
	switch k.kind {
	case kindPod:
		ch.Object = &clusterv1.Change_Pod{Pod: &clusterv1.Pod{Namespace: ns, Name: name}}
	case kindNode:
		ch.Object = &clusterv1.Change_Node{Node: &clusterv1.Node{Name: name}}
	case kindNodeClaim:
		ch.Object = &clusterv1.Change_NodeClaim{NodeClaim: &clusterv1.NodeClaim{Name: name}}
	case kindNodePool:
		ch.Object = &clusterv1.Change_NodePool{NodePool: &clusterv1.NodePool{Name: name}}
	case kindNodeClass:
		ch.Object = &clusterv1.Change_NodeClass{NodeClass: &clusterv1.NodeClass{Name: name}}
	case kindDaemonSet:
		ch.Object = &clusterv1.Change_DaemonSet{DaemonSet: &clusterv1.DaemonSet{Namespace: ns, Name: name}}
	case kindPDB:
		ch.Object = &clusterv1.Change_PodDisruptionBudget{PodDisruptionBudget: &clusterv1.PodDisruptionBudget{Namespace: ns, Name: name}}
	case kindInstanceType:
		ch.Object = &clusterv1.Change_InstanceType{InstanceType: &clusterv1.InstanceType{Name: name}}
	}
	return ch
}

func splitKey(k string) (namespace, name string) {
	if ns, n, ok := strings.Cut(k, "/"); ok {
		return ns, n
	}
	return "", k
}

// addTo appends a model object to a snapshot.
func addTo(s *clusterv1.Snapshot, obj proto.Message) {
	switch o := obj.(type) {
	case *clusterv1.Pod:
		s.Pods = append(s.Pods, o)
	case *clusterv1.Node:
		s.Nodes = append(s.Nodes, o)
	case *clusterv1.NodeClaim:
		s.NodeClaims = append(s.NodeClaims, o)
	case *clusterv1.NodePool:
		s.NodePools = append(s.NodePools, o)
	case *clusterv1.NodeClass:
		s.NodeClasses = append(s.NodeClasses, o)
	case *clusterv1.DaemonSet:
		s.DaemonSets = append(s.DaemonSets, o)
	case *clusterv1.PodDisruptionBudget:
		s.PodDisruptionBudgets = append(s.PodDisruptionBudgets, o)
	case *clusterv1.InstanceType:
		s.InstanceTypes = append(s.InstanceTypes, o)
	}
}
