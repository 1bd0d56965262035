// Package karpenter is a small typed client for the karpenter.sh/v1
// (NodePool, NodeClaim), karpenter.k8s.aws/v1 (EC2NodeClass) and
// karpenter.k8s.aws/v1alpha5 (Provisioner) objects, with informers, built on
// client-go's REST client and the api module's scheme.
package karpenter

import (
	"context"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	awsv1 "github.com/flotilla-dev/flotilla/api/aws/v1"
	"github.com/flotilla-dev/flotilla/api/aws/v1alpha5"
	karpv1 "github.com/flotilla-dev/flotilla/api/karpenter/v1"
)

// Scheme holds the Kubernetes built-in types and the Karpenter ones.
var Scheme = newScheme()

func newScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{scheme.AddToScheme, karpv1.AddToScheme, awsv1.AddToScheme, v1alpha5.AddToScheme} {
		if err := add(s); err != nil {
			panic(fmt.Sprintf("build scheme: %v", err))
		}
	}
	return s
}

// Resource names.
const (
	NodeClaims     = "nodeclaims"
	NodePools      = "nodepools"
	EC2NodeClasses = "ec2nodeclasses"
	Provisioners   = "provisioners"
)

// Client reads and writes NodeClaims, NodePools and EC2NodeClasses.
type Client struct {
	karpenter   rest.Interface
	aws         rest.Interface
	provisioner rest.Interface
}

// NewClient returns a client for the apiserver of cfg.
func NewClient(cfg *rest.Config) (*Client, error) {
	k, err := restClient(cfg, karpv1.SchemeGroupVersion)
	if err != nil {
		return nil, err
	}
	a, err := restClient(cfg, awsv1.SchemeGroupVersion)
	if err != nil {
		return nil, err
	}
	p, err := restClient(cfg, v1alpha5.SchemeGroupVersion)
	if err != nil {
		return nil, err
	}
	return &Client{karpenter: k, aws: a, provisioner: p}, nil
}

func restClient(cfg *rest.Config, gv schema.GroupVersion) (*rest.RESTClient, error) {
	c := rest.CopyConfig(cfg)
	c.GroupVersion = &gv
	c.APIPath = "/apis"
	c.ContentType = runtime.ContentTypeJSON
	c.NegotiatedSerializer = Codecs()
	if c.UserAgent == "" {
		c.UserAgent = rest.DefaultKubernetesUserAgent()
	}
	rc, err := rest.RESTClientFor(c)
	if err != nil {
		return nil, fmt.Errorf("rest client for %s: %w", gv, err)
	}
	return rc, nil
}

func (c *Client) rest(resource string) rest.Interface {
	switch resource {
	case EC2NodeClasses:
		return c.aws
	case Provisioners:
		return c.provisioner
	}
	return c.karpenter
}

// object is a pointer to one of the Karpenter types.
type object interface {
	runtime.Object
	metav1.Object
}

func get[T any, P interface {
	*T
	object
}](ctx context.Context, c *Client, resource, name string) (P, error) {
	out := P(new(T))
	if err := c.rest(resource).Get().Resource(resource).Name(name).Do(ctx).Into(out); err != nil {
		return nil, fmt.Errorf("get %s %s: %w", resource, name, err)
	}
	return out, nil
}

// GetNodeClaim returns a NodeClaim from the apiserver.
func (c *Client) GetNodeClaim(ctx context.Context, name string) (*karpv1.NodeClaim, error) {
	return get[karpv1.NodeClaim](ctx, c, NodeClaims, name)
}

// GetNodePool returns a NodePool from the apiserver.
func (c *Client) GetNodePool(ctx context.Context, name string) (*karpv1.NodePool, error) {
	return get[karpv1.NodePool](ctx, c, NodePools, name)
}

// GetEC2NodeClass returns an EC2NodeClass from the apiserver.
func (c *Client) GetEC2NodeClass(ctx context.Context, name string) (*awsv1.EC2NodeClass, error) {
	return get[awsv1.EC2NodeClass](ctx, c, EC2NodeClasses, name)
}

// GetProvisioner returns a v1alpha5 Provisioner from the apiserver.
func (c *Client) GetProvisioner(ctx context.Context, name string) (*v1alpha5.Provisioner, error) {
	return get[v1alpha5.Provisioner](ctx, c, Provisioners, name)
}

// ListProvisioners returns every v1alpha5 Provisioner.
func (c *Client) ListProvisioners(ctx context.Context) ([]v1alpha5.Provisioner, error) {
	var out v1alpha5.ProvisionerList
	if err := c.provisioner.Get().Resource(Provisioners).Do(ctx).Into(&out); err != nil {
		return nil, fmt.Errorf("list provisioners: %w", err)
	}
	return out.Items, nil
}

// ListNodeClaims returns every NodeClaim, read from the apiserver.
func (c *Client) ListNodeClaims(ctx context.Context) ([]karpv1.NodeClaim, error) {
	var out karpv1.NodeClaimList
	if err := c.karpenter.Get().Resource(NodeClaims).Do(ctx).Into(&out); err != nil {
		return nil, fmt.Errorf("list nodeclaims: %w", err)
	}
	return out.Items, nil
}

// CreateNodeClaim creates a NodeClaim.
func (c *Client) CreateNodeClaim(ctx context.Context, nc *karpv1.NodeClaim) (*karpv1.NodeClaim, error) {
	out := &karpv1.NodeClaim{}
	if err := c.karpenter.Post().Resource(NodeClaims).Body(nc).Do(ctx).Into(out); err != nil {
		return nil, fmt.Errorf("create nodeclaim %s: %w", nc.Name, err)
	}
	return out, nil
}

// UpdateNodeClaim writes a NodeClaim's metadata and spec.
func (c *Client) UpdateNodeClaim(ctx context.Context, nc *karpv1.NodeClaim) (*karpv1.NodeClaim, error) {
	out := &karpv1.NodeClaim{}
	if err := c.karpenter.Put().Resource(NodeClaims).Name(nc.Name).Body(nc).Do(ctx).Into(out); err != nil {
		return nil, fmt.Errorf("update nodeclaim %s: %w", nc.Name, err)
	}
	return out, nil
}

// UpdateNodeClaimStatus writes a NodeClaim's status.
func (c *Client) UpdateNodeClaimStatus(ctx context.Context, nc *karpv1.NodeClaim) (*karpv1.NodeClaim, error) {
	out := &karpv1.NodeClaim{}
	if err := c.karpenter.Put().Resource(NodeClaims).Name(nc.Name).SubResource("status").Body(nc).Do(ctx).Into(out); err != nil {
		return nil, fmt.Errorf("update nodeclaim %s status: %w", nc.Name, err)
	}
	return out, nil
}

// PatchNodeClaim applies a merge patch to a NodeClaim.
func (c *Client) PatchNodeClaim(ctx context.Context, name string, patch []byte) (*karpv1.NodeClaim, error) {
	out := &karpv1.NodeClaim{}
	if err := c.karpenter.Patch(types.MergePatchType).Resource(NodeClaims).Name(name).Body(patch).Do(ctx).Into(out); err != nil {
		return nil, fmt.Errorf("patch nodeclaim %s: %w", name, err)
	}
	return out, nil
}

// DeleteNodeClaim deletes a NodeClaim (its finalizer then drains and
// terminates it).
func (c *Client) DeleteNodeClaim(ctx context.Context, name string) error {
	if err := c.karpenter.Delete().Resource(NodeClaims).Name(name).Do(ctx).Error(); err != nil {
		return fmt.Errorf("delete nodeclaim %s: %w", name, err)
	}
	return nil
}

// UpdateNodePoolStatus writes a NodePool's status.
func (c *Client) UpdateNodePoolStatus(ctx context.Context, np *karpv1.NodePool) (*karpv1.NodePool, error) {
	out := &karpv1.NodePool{}
	if err := c.karpenter.Put().Resource(NodePools).Name(np.Name).SubResource("status").Body(np).Do(ctx).Into(out); err != nil {
		return nil, fmt.Errorf("update nodepool %s status: %w", np.Name, err)
	}
	return out, nil
}

// UpdateEC2NodeClassStatus writes an EC2NodeClass's status.
func (c *Client) UpdateEC2NodeClassStatus(ctx context.Context, nc *awsv1.EC2NodeClass) (*awsv1.EC2NodeClass, error) {
	out := &awsv1.EC2NodeClass{}
	if err := c.aws.Put().Resource(EC2NodeClasses).Name(nc.Name).SubResource("status").Body(nc).Do(ctx).Into(out); err != nil {
		return nil, fmt.Errorf("update ec2nodeclass %s status: %w", nc.Name, err)
	}
	return out, nil
}

// Informer returns an informer on one of the resources; obj is an empty
// object of its type (&karpv1.NodeClaim{}, ...).
func (c *Client) Informer(resource string, obj runtime.Object, resync time.Duration) cache.SharedIndexInformer {
	rc := c.rest(resource)
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			list := listFor(resource)
			err := rc.Get().Resource(resource).VersionedParams(&opts, metav1.ParameterCodec).Do(ctx).Into(list)
			return list, err
		},
		WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			opts.Watch = true
			return rc.Get().Resource(resource).VersionedParams(&opts, metav1.ParameterCodec).Watch(ctx)
		},
	}
	return cache.NewSharedIndexInformer(lw, obj, resync, cache.Indexers{})
}

func listFor(resource string) runtime.Object {
	switch resource {
	case NodePools:
		return &karpv1.NodePoolList{}
	case EC2NodeClasses:
		return &awsv1.EC2NodeClassList{}
	case Provisioners:
		return &v1alpha5.ProvisionerList{}
	default:
		return &karpv1.NodeClaimList{}
	}
}

// Codecs serialises the Karpenter types (and Kubernetes' own) as JSON.
func Codecs() runtime.NegotiatedSerializer {
	return serializer.NewCodecFactory(Scheme).WithoutConversion()
}
