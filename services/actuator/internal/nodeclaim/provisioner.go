package nodeclaim

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"

	awsv1 "github.com/flotilla-dev/flotilla/api/aws/v1"
	karpv1 "github.com/flotilla-dev/flotilla/api/karpenter/v1"
)

// nodePool returns the NodePool of that name, or the one the v1alpha5
// Provisioner of that name describes (the brief's Provisioner is accepted
// verbatim and behaves as its NodePool). Not found when neither exists.
func (c *Controller) nodePool(ctx context.Context, name string) (*karpv1.NodePool, error) {
	pool, err := c.crd.GetNodePool(ctx, name)
	if !isNotFound(err) {
		return pool, err
	}
	p, perr := c.crd.GetProvisioner(ctx, name)
	if perr != nil {
		if isNotFound(perr) || meta.IsNoMatchError(perr) || isNoResource(perr) {
			return nil, err
		}
		return nil, perr
	}
	converted, _, cerr := p.Convert()
	if cerr != nil {
		return nil, fmt.Errorf("provisioner %s: %w", name, cerr)
	}
	converted.SetDefaults()
	converted.DeletionTimestamp = p.DeletionTimestamp
	return converted, nil
}

// nodeClass returns the EC2NodeClass of that name, or the node class a
// Provisioner describes inline under that name.
func (c *Controller) nodeClass(ctx context.Context, name string) (*awsv1.EC2NodeClass, error) {
	class, err := c.crd.GetEC2NodeClass(ctx, name)
	if !isNotFound(err) {
		return class, err
	}
	provisioners, perr := c.crd.ListProvisioners(ctx)
	if perr != nil {
		if meta.IsNoMatchError(perr) || isNoResource(perr) {
			return nil, err
		}
		return nil, perr
	}
	for i := range provisioners {
		p := &provisioners[i]
		if p.Spec.ProviderRef != nil || p.Name != name {
			continue
		}
		_, converted, cerr := p.Convert()
		if cerr != nil {
			return nil, fmt.Errorf("provisioner %s: %w", p.Name, cerr)
		}
		if converted != nil {
			converted.UID = p.UID // keeps the resolution cache per object
			converted.Generation = p.Generation
			return converted, nil
		}
	}
	return nil, err
}

// isNoResource reports an API server that does not serve the resource (the
// Provisioner CRD is not installed).
func isNoResource(err error) bool {
	return apierrors.IsNotFound(err) || apierrors.IsMethodNotSupported(err)
}
