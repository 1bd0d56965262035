package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	awsv1 "github.com/flotilla-dev/flotilla/api/aws/v1"
	"github.com/flotilla-dev/flotilla/api/aws/v1alpha5"
	karpv1 "github.com/flotilla-dev/flotilla/api/karpenter/v1"
	"github.com/flotilla-dev/flotilla/api/snapshot"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	kubeinformers "k8s.io/client-go/informers"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// Custom resources the watcher reads.
var (
	gvrNodePools    = karpv1.SchemeGroupVersion.WithResource("nodepools")
	gvrNodeClaims   = karpv1.SchemeGroupVersion.WithResource("nodeclaims")
	gvrNodeClasses  = awsv1.SchemeGroupVersion.WithResource("ec2nodeclasses")
	gvrProvisioners = v1alpha5.SchemeGroupVersion.WithResource("provisioners")
)

// PodFieldSelector selects the pods the watcher caches: finished pods take
// up no room, the API server leaves them out.
const PodFieldSelector = "status.phase!=Succeeded,status.phase!=Failed"

// Index names.
const (
	indexClaim      = "claim"      // pods by "namespace/claim" of their volumes
	indexUnbound    = "unbound"    // pods not bound to a node (the one value unboundValue)
	indexNominated  = "nominated"  // NodeClaims by the pods nominated to them
	indexNodeName   = "nodeName"   // NodeClaims by status.nodeName
	indexProviderID = "providerID" // NodeClaims and Nodes by provider id
	indexNodeClass  = "nodeClass"  // NodePools by node class name
)

// informers holds the shared informers; the custom resource ones are nil
// when their CRD is not installed.
type informers struct {
	factory kubeinformers.SharedInformerFactory
	dyn     dynamicinformer.DynamicSharedInformerFactory

	pods, nodes, daemonSets, pdbs, pvcs, pvs, storageClasses, csiNodes cache.SharedIndexInformer
	nodeClaims, nodePools, nodeClasses, provisioners                   cache.SharedIndexInformer
}

func newInformers(client kubernetes.Interface, dyn dynamic.Interface, pods cache.ListerWatcher, logger *slog.Logger) (*informers, error) {
	f := kubeinformers.NewSharedInformerFactory(client, 0)
	inf := &informers{factory: f, dyn: dynamicinformer.NewDynamicSharedInformerFactory(dyn, 0)}

	inf.pods = f.InformerFor(&corev1.Pod{}, func(c kubernetes.Interface, resync time.Duration) cache.SharedIndexInformer {
		if pods != nil {
			return cache.NewSharedIndexInformer(pods, &corev1.Pod{}, resync, podIndexers())
		}
		return coreinformers.NewFilteredPodInformer(c, metav1.NamespaceAll, resync, podIndexers(),
			func(o *metav1.ListOptions) { o.FieldSelector = PodFieldSelector })
	})
	inf.nodes = f.Core().V1().Nodes().Informer()
	inf.daemonSets = f.Apps().V1().DaemonSets().Informer()
	inf.pdbs = f.Policy().V1().PodDisruptionBudgets().Informer()
	inf.pvcs = f.Core().V1().PersistentVolumeClaims().Informer()
	inf.pvs = f.Core().V1().PersistentVolumes().Informer()
	inf.storageClasses = f.Storage().V1().StorageClasses().Informer()
	inf.csiNodes = f.Storage().V1().CSINodes().Informer()
	for _, i := range []struct {
		inf cache.SharedIndexInformer
		fn  cache.TransformFunc
	}{
		{inf.pods, podTransform(func(k string) *cachedPod { p, _ := get(inf.pods, k).(*cachedPod); return p })}, {inf.nodes, transformNode}, {inf.daemonSets, transformDaemonSet},
		{inf.pdbs, transformMeta}, {inf.pvcs, transformPVC}, {inf.pvs, transformPV}, {inf.storageClasses, transformStorageClass},
		{inf.csiNodes, transformCSINode},
	} {
		if err := i.inf.SetTransform(i.fn); err != nil {
			return nil, fmt.Errorf("set transform: %w", err)
		}
	}
	if err := inf.nodes.AddIndexers(cache.Indexers{indexProviderID: nodeProviderID}); err != nil {
		return nil, fmt.Errorf("add node indexers: %w", err)
	}

	crds := []struct {
		gvr      schema.GroupVersionResource
		target   *cache.SharedIndexInformer
		typed    func() runtime.Object
		indexers cache.Indexers
	}{
		{gvrNodeClaims, &inf.nodeClaims, func() runtime.Object { return &karpv1.NodeClaim{} }, cache.Indexers{
			indexNominated: claimNominated, indexNodeName: claimNodeName, indexProviderID: claimProviderID,
		}},
		{gvrNodePools, &inf.nodePools, func() runtime.Object { return &karpv1.NodePool{} }, cache.Indexers{indexNodeClass: poolNodeClass}},
		{gvrNodeClasses, &inf.nodeClasses, func() runtime.Object { return &awsv1.EC2NodeClass{} }, nil},
		{gvrProvisioners, &inf.provisioners, func() runtime.Object { return &v1alpha5.Provisioner{} }, nil},
	}
	for _, crd := range crds {
		ok, err := served(client, crd.gvr)
		if err != nil {
			return nil, err
		}
		if !ok {
			logger.Warn("crd_not_installed", "resource", crd.gvr.String())
			continue
		}
		i := inf.dyn.ForResource(crd.gvr).Informer()
		if err := i.SetTransform(typedTransform(crd.typed, logger)); err != nil {
			return nil, fmt.Errorf("set transform %s: %w", crd.gvr.Resource, err)
		}
		if crd.indexers != nil {
			if err := i.AddIndexers(crd.indexers); err != nil {
				return nil, fmt.Errorf("add indexers %s: %w", crd.gvr.Resource, err)
			}
		}
		*crd.target = i
	}
	return inf, nil
}

// served reports whether the API server serves the resource.
func served(client kubernetes.Interface, gvr schema.GroupVersionResource) (bool, error) {
	list, err := client.Discovery().ServerResourcesForGroupVersion(gvr.GroupVersion().String())
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("discover %s: %w", gvr.GroupVersion(), err)
	}
	return slices.ContainsFunc(list.APIResources, func(r metav1.APIResource) bool { return r.Name == gvr.Resource }), nil
}

func (i *informers) all() []cache.SharedIndexInformer {
	var out []cache.SharedIndexInformer
	for _, inf := range []cache.SharedIndexInformer{
		i.pods, i.nodes, i.daemonSets, i.pdbs, i.pvcs, i.pvs, i.storageClasses, i.csiNodes,
		i.nodeClaims, i.nodePools, i.nodeClasses, i.provisioners,
	} {
		if inf != nil {
			out = append(out, inf)
		}
	}
	return out
}

func (i *informers) start(ctx context.Context) {
	i.factory.Start(ctx.Done())
	i.dyn.Start(ctx.Done())
}

func (i *informers) waitForSync(ctx context.Context) bool {
	var synced []cache.InformerSynced
	for _, inf := range i.all() {
		synced = append(synced, inf.HasSynced)
	}
	return cache.WaitForCacheSync(ctx.Done(), synced...)
}

// allKeys lists the keys of every object of a model kind.
func (i *informers) allKeys(kd kind) []key {
	var keys []key
	add := func(inf cache.SharedIndexInformer) {
		if inf == nil {
			return
		}
		list := inf.GetStore().ListKeys()
		keys = slices.Grow(keys, len(list))
		for _, k := range list {
			keys = append(keys, key{kd, k})
		}
	}
	switch kd {
	case kindPod:
		add(i.pods)
	case kindNode:
		add(i.nodes)
	case kindNodeClaim:
		add(i.nodeClaims)
	case kindNodePool:
		add(i.nodePools)
		add(i.provisioners)
		keys = dedupe(keys)
	case kindNodeClass:
		add(i.nodeClasses)
		if i.provisioners != nil {
			for _, o := range i.provisioners.GetStore().List() {
				if p, ok := o.(*v1alpha5.Provisioner); ok {
					keys = append(keys, key{kindNodeClass, snapshot.ProvisionerNodeClassName(p)})
				}
			}
		}
		keys = dedupe(keys)
	case kindDaemonSet:
		add(i.daemonSets)
	case kindPDB:
		add(i.pdbs)
	}
	return keys
}

func dedupe(keys []key) []key {
	sortKeys(keys)
	return slices.Compact(keys)
}

func sortKeys(keys []key) {
	slices.SortFunc(keys, func(a, b key) int {
		if a.kind != b.kind {
			return int(a.kind) - int(b.kind)
		}
		// One comparison of the names, not two: at 100,000 pods sorting
		// is a good part of a snapshot.
		return strings.Compare(a.name, b.name)
	})
}

// get returns the cached object with the given store key, or nil.
func get(inf cache.SharedIndexInformer, k string) any {
	if inf == nil {
		return nil
	}
	o, ok, err := inf.GetIndexer().GetByKey(k)
	if err != nil || !ok {
		return nil
	}
	return o
}

// byIndex returns the store keys of objects with the index value.
func byIndex(inf cache.SharedIndexInformer, index, value string) []string {
	if inf == nil {
		return nil
	}
	keys, err := inf.GetIndexer().IndexKeys(index, value)
	if err != nil {
		return nil
	}
	return keys
}

// typedTransform strips an unstructured custom resource and converts it
// into its Go type, so the cache holds typed objects. An object that does
// not convert is kept as it is and reported when it is read.
func typedTransform(typed func() runtime.Object, logger *slog.Logger) cache.TransformFunc {
	return func(obj any) (any, error) {
		u, ok := obj.(*unstructured.Unstructured)
		if !ok {
			return obj, nil
		}
		u.SetManagedFields(nil)
		out := typed()
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, out); err != nil {
			logger.Warn("object_not_decoded", "kind", u.GetKind(), "name", u.GetName(), "error", err.Error())
			return obj, nil
		}
		if m, ok := out.(metav1.Object); ok {
			m.SetAnnotations(keepAnnotations(m.GetAnnotations()))
		}
		return out, nil
	}
}

// unboundValue is the value of indexUnbound.
const unboundValue = "true"

// podIndexers index pods by claim and the unbound ones, so that pending
// pods are found without going through every bound one.
func podIndexers() cache.Indexers {
	return cache.Indexers{indexClaim: podClaims, indexUnbound: podUnbound}
}

func podUnbound(obj any) ([]string, error) {
	if p, ok := obj.(*cachedPod); ok && p.nodeName() == "" && !p.finished {
		return []string{unboundValue}, nil
	}
	return nil, nil
}

func podClaims(obj any) ([]string, error) {
	p, ok := obj.(*cachedPod)
	if !ok {
		return nil, nil
	}
	out := make([]string, len(p.claims))
	for i, vc := range p.claims {
		out[i] = p.model.GetNamespace() + "/" + vc.Claim
	}
	return out, nil
}

func nodeProviderID(obj any) ([]string, error) {
	if n, ok := obj.(*corev1.Node); ok && n.Spec.ProviderID != "" {
		return []string{n.Spec.ProviderID}, nil
	}
	return nil, nil
}

func claimNominated(obj any) ([]string, error) {
	if nc, ok := obj.(*karpv1.NodeClaim); ok {
		return snapshot.NominatedPods(nc), nil
	}
	return nil, nil
}

func claimNodeName(obj any) ([]string, error) {
	if nc, ok := obj.(*karpv1.NodeClaim); ok && nc.Status.NodeName != "" {
		return []string{nc.Status.NodeName}, nil
	}
	return nil, nil
}

func claimProviderID(obj any) ([]string, error) {
	if nc, ok := obj.(*karpv1.NodeClaim); ok && nc.Status.ProviderID != "" {
		return []string{nc.Status.ProviderID}, nil
	}
	return nil, nil
}

func poolNodeClass(obj any) ([]string, error) {
	if np, ok := obj.(*karpv1.NodePool); ok {
		return []string{np.Spec.Template.Spec.NodeClassRef.Name}, nil
	}
	return nil, nil
}
