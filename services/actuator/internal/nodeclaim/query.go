package nodeclaim

import (
	"context"
	"fmt"

	karpv1 "github.com/flotilla-dev/flotilla/api/karpenter/v1"
	clusterv1 "github.com/flotilla-dev/flotilla/gen/flotilla/cluster/v1"
)

// Ready reports whether a NodeClaim exists and its Node is initialized; the
// message says how far it got otherwise.
func (c *Controller) Ready(ctx context.Context, name string) (bool, string, error) {
	nc, err := c.crd.GetNodeClaim(ctx, name)
	if isNotFound(err) {
		return false, "nodeclaim " + name + " not found", nil
	}
	if err != nil {
		return false, "", err
	}
	if nc.DeletionTimestamp != nil {
		return false, "nodeclaim " + name + " is being deleted", nil
	}
	if nc.IsTrue(karpv1.ConditionTypeInitialized) {
		return true, "", nil
	}
	return false, "nodeclaim " + name + " is " + phase(nc), nil
}

// InstanceTypes is the catalogue for a node class: offerings in the zones
// of its subnets (every zone when nodeClass is empty).
func (c *Controller) InstanceTypes(ctx context.Context, nodeClass string) ([]*clusterv1.InstanceType, error) {
	var zones []string
	if nodeClass != "" {
		class, err := c.nodeClass(ctx, nodeClass)
		if err != nil {
			return nil, err
		}
		resolved, err := c.resolver.Resolve(ctx, class)
		if err != nil {
			return nil, fmt.Errorf("ec2nodeclass %s: %w", nodeClass, err)
		}
		zones = resolved.Zones()
	}
	return c.catalog.InstanceTypes(ctx, zones)
}
