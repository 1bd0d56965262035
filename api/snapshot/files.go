package snapshot

import (
	"errors"
	"fmt"
	"os"
	"time"

	awsv1 "github.com/flotilla-dev/flotilla/api/aws/v1"
	"github.com/flotilla-dev/flotilla/api/aws/v1alpha5"
	karpv1 "github.com/flotilla-dev/flotilla/api/karpenter/v1"
	clusterv1 "github.com/flotilla-dev/flotilla/gen/flotilla/cluster/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// Files names the inputs of a what-if question; empty names are skipped.
type Files struct {
	// Pods is the output of `kubectl get pods -A -o json`: pods with
	// spec.nodeName run on a node from Nodes, the others are pending.
	Pods string
	// Nodes is the output of `kubectl get nodes -o json`.
	Nodes string
	// DaemonSets is the output of `kubectl get ds -A -o json`.
	DaemonSets string
	// NodePools is a multi-document YAML of NodePool, EC2NodeClass and
	// Provisioner objects.
	NodePools string
	// Now is the time the snapshot describes; zero means the current time.
	Now time.Time
}

// FromFiles reads the files and builds a snapshot from them. Errors are
// *ObjectError values naming the file, the object (kind and name, or its
// position) and the field, and for YAML the line.
func FromFiles(f Files) (*clusterv1.Snapshot, error) {
	var snap clusterv1.Snapshot
	now := f.Now
	if now.IsZero() {
		now = time.Now()
	}
	snap.Now = timestamppb.New(now)
	if f.Pods != "" {
		data, err := os.ReadFile(f.Pods)
		if err != nil {
			return nil, fmt.Errorf("read pods: %w", err)
		}
		if snap.Pods, err = PodsFromJSON(f.Pods, data); err != nil {
			return nil, err
		}
	}
	if f.Nodes != "" {
		data, err := os.ReadFile(f.Nodes)
		if err != nil {
			return nil, fmt.Errorf("read nodes: %w", err)
		}
		if snap.Nodes, err = NodesFromJSON(f.Nodes, data); err != nil {
			return nil, err
		}
	}
	if f.DaemonSets != "" {
		data, err := os.ReadFile(f.DaemonSets)
		if err != nil {
			return nil, fmt.Errorf("read daemonsets: %w", err)
		}
		if snap.DaemonSets, err = DaemonSetsFromJSON(f.DaemonSets, data); err != nil {
			return nil, err
		}
	}
	if f.NodePools != "" {
		data, err := os.ReadFile(f.NodePools)
		if err != nil {
			return nil, fmt.Errorf("read nodepools: %w", err)
		}
		if snap.NodePools, snap.NodeClasses, err = NodePoolsFromYAML(f.NodePools, data); err != nil {
			return nil, err
		}
	}
	return &snap, nil
}

// PodsFromJSON decodes `kubectl get pods -A -o json` output (a List or
// PodList, or a single Pod) and converts the pods that still take up room:
// finished pods (Succeeded, Failed) are left out.
func PodsFromJSON(file string, data []byte) ([]*clusterv1.Pod, error) {
	docs, err := jsonList(file, data, "Pod")
	if err != nil {
		return nil, err
	}
	var out []*clusterv1.Pod
	for _, d := range docs {
		var p corev1.Pod
		if err := decodeTyped(d, "v1", "Pod", &p); err != nil {
			return nil, err
		}
		if Finished(&p) {
			continue
		}
		m, err := podSpec(&p, Lookup{})
		if err != nil {
			return nil, d.errorf(header{Kind: "Pod", Metadata: meta(p.Namespace, p.Name)}, err)
		}
		out = append(out, m)
	}
	return out, nil
}

// NodesFromJSON decodes `kubectl get nodes -o json` output.
func NodesFromJSON(file string, data []byte) ([]*clusterv1.Node, error) {
	docs, err := jsonList(file, data, "Node")
	if err != nil {
		return nil, err
	}
	var out []*clusterv1.Node
	for _, d := range docs {
		var n corev1.Node
		if err := decodeTyped(d, "v1", "Node", &n); err != nil {
			return nil, err
		}
		m, err := node(&n)
		if err != nil {
			return nil, d.errorf(header{Kind: "Node", Metadata: meta("", n.Name)}, err)
		}
		out = append(out, m)
	}
	return out, nil
}

// DaemonSetsFromJSON decodes `kubectl get ds -A -o json` output.
func DaemonSetsFromJSON(file string, data []byte) ([]*clusterv1.DaemonSet, error) {
	docs, err := jsonList(file, data, "DaemonSet")
	if err != nil {
		return nil, err
	}
	var out []*clusterv1.DaemonSet
	for _, d := range docs {
		var ds appsv1.DaemonSet
		if err := decodeTyped(d, "apps/v1", "DaemonSet", &ds); err != nil {
			return nil, err
		}
		m, err := DaemonSet(&ds, Lookup{})
		if err != nil {
			var oe *ObjectError
			if errors.As(err, &oe) {
				err = oe.Err
			}
			return nil, d.errorf(header{Kind: "DaemonSet", Metadata: meta(ds.Namespace, ds.Name)}, err)
		}
		out = append(out, m)
	}
	return out, nil
}

// NodePoolObjects are the objects of a NodePool YAML file.
type NodePoolObjects struct {
	NodePools    []*karpv1.NodePool
	NodeClasses  []*awsv1.EC2NodeClass
	Provisioners []*v1alpha5.Provisioner
	// docs remembers where each object came from, for errors.
	docs map[any]*document
}

// wrap puts the file, position and line of obj's document on a conversion
// error.
func (o *NodePoolObjects) wrap(obj any, err error) error {
	d, ok := o.docs[obj]
	var oe *ObjectError
	if !ok || !errors.As(err, &oe) {
		return err
	}
	h := header{Kind: oe.Kind}
	h.Metadata.Name = oe.Name
	return d.errorf(h, oe.Err)
}

// DecodeNodePools decodes a multi-document YAML of NodePool (karpenter.sh/v1),
// EC2NodeClass (karpenter.k8s.aws/v1) and Provisioner
// (karpenter.k8s.aws/v1alpha5) objects; a List document contributes its
// items. Defaults the API server would apply are applied.
func DecodeNodePools(file string, data []byte) (*NodePoolObjects, error) {
	docs, err := yamlDocuments(file, data)
	if err != nil {
		return nil, err
	}
	out := &NodePoolObjects{docs: map[any]*document{}}
	for _, d := range docs {
		h, err := d.readHeader()
		if err != nil {
			return nil, err
		}
		switch h.Kind {
		case "NodePool":
			var np karpv1.NodePool
			if err := decodeTyped(d, karpv1.SchemeGroupVersion.String(), "NodePool", &np); err != nil {
				return nil, err
			}
			np.SetDefaults()
			out.NodePools = append(out.NodePools, &np)
			out.docs[&np] = d
		case "EC2NodeClass":
			var nc awsv1.EC2NodeClass
			if err := decodeTyped(d, awsv1.SchemeGroupVersion.String(), "EC2NodeClass", &nc); err != nil {
				return nil, err
			}
			out.NodeClasses = append(out.NodeClasses, &nc)
			out.docs[&nc] = d
		case "Provisioner":
			var p v1alpha5.Provisioner
			if err := decodeTyped(d, v1alpha5.SchemeGroupVersion.String(), "Provisioner", &p); err != nil {
				return nil, err
			}
			out.Provisioners = append(out.Provisioners, &p)
			out.docs[&p] = d
		default:
			return nil, d.errorf(h, &FieldError{Field: "kind", Err: fmt.Errorf("want NodePool, EC2NodeClass or Provisioner, got %q", h.Kind)})
		}
	}
	return out, nil
}

// NodePoolsFromYAML decodes a NodePool YAML file (see DecodeNodePools) and
// converts it: Provisioners become a NodePool and a node class each, and
// NodePools whose node class is missing or not ready are marked not ready.
func NodePoolsFromYAML(file string, data []byte) ([]*clusterv1.NodePool, []*clusterv1.NodeClass, error) {
	objs, err := DecodeNodePools(file, data)
	if err != nil {
		return nil, nil, err
	}
	return objs.Convert()
}

// Convert converts the objects into the model, mapping each Provisioner to
// a NodePool and a node class, and links NodePools to their node classes.
func (o *NodePoolObjects) Convert() ([]*clusterv1.NodePool, []*clusterv1.NodeClass, error) {
	var pools []*clusterv1.NodePool
	var classes []*clusterv1.NodeClass
	for _, np := range o.NodePools {
		m, err := NodePool(np)
		if err != nil {
			return nil, nil, o.wrap(np, err)
		}
		pools = append(pools, m)
	}
	for _, nc := range o.NodeClasses {
		m, err := NodeClass(nc)
		if err != nil {
			return nil, nil, o.wrap(nc, err)
		}
		classes = append(classes, m)
	}
	for _, p := range o.Provisioners {
		pool, class, err := Provisioner(p)
		if err != nil {
			return nil, nil, o.wrap(p, err)
		}
		pools = append(pools, pool)
		if class != nil {
			classes = append(classes, class)
		}
	}
	LinkNodeClasses(pools, classes)
	return pools, classes, nil
}

// decodeTyped decodes a document strictly into out after checking its
// apiVersion and kind.
func decodeTyped(d *document, apiVersion, kind string, out any) error {
	h, err := d.readHeader()
	if err != nil {
		return err
	}
	if h.Kind != kind && h.Kind != "" {
		return d.errorf(h, &FieldError{Field: "kind", Err: fmt.Errorf("want %s, got %q", kind, h.Kind)})
	}
	if h.Kind == "" {
		h.Kind = kind
	}
	if h.APIVersion != apiVersion && h.APIVersion != "" {
		return d.errorf(h, &FieldError{Field: "apiVersion", Err: fmt.Errorf("want %s, got %q", apiVersion, h.APIVersion)})
	}
	return d.decodeInto(h, out)
}

func meta(namespace, name string) (m struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
}) {
	m.Name, m.Namespace = name, namespace
	return m
}

// Finished reports whether a pod has run to completion (Succeeded or
// Failed) and so takes up no room.
func Finished(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
}
