package snapshot

import (
	"errors"
	"strings"

	"github.com/flotilla-dev/flotilla/api/aws/v1alpha5"
	clusterv1 "github.com/flotilla-dev/flotilla/gen/flotilla/cluster/v1"
)

// ProvisionerNodeClassName is the name of the node class a Provisioner
// launches with: the one its providerRef names, else its own (the node
// class its inline provider block describes).
func ProvisionerNodeClassName(p *v1alpha5.Provisioner) string {
	if p.Spec.ProviderRef != nil {
		return p.Spec.ProviderRef.Name
	}
	return p.Name
}

// Provisioner maps a Provisioner onto the NodePool and node class it
// describes (see v1alpha5.Provisioner.Convert) and converts both; the
// NodePool's source kind is Provisioner. The node class is nil when the
// Provisioner refers to an EC2NodeClass with providerRef. A Provisioner whose
// Ready condition is False gives a NodePool that is not ready.
func Provisioner(p *v1alpha5.Provisioner) (*clusterv1.NodePool, *clusterv1.NodeClass, error) {
	np, nc, err := p.Convert()
	if err != nil {
		return nil, nil, objectError("Provisioner", "", p.Name, err)
	}
	np.SetDefaults()
	pool, err := nodePool(np)
	if err != nil {
		return nil, nil, objectError("Provisioner", "", p.Name, provisionerField(err))
	}
	pool.SourceKind = SourceProvisioner
	if c := conditionFalse(p.Status.Conditions, "Ready"); c != nil {
		pool.Ready = false
		pool.NotReadyReason = notReadyReason("Provisioner", p.Name, c)
	}
	if nc == nil {
		return pool, nil, nil
	}
	class, err := nodeClass(nc)
	if err != nil {
		return nil, nil, objectError("Provisioner", "", p.Name, err)
	}
	return pool, class, nil
}

// provisionerFields maps NodePool field paths back to the Provisioner fields
// they came from.
var provisionerFields = []struct{ nodePool, provisioner string }{
	{"spec.template.spec.requirements", "spec.requirements"},
	{"spec.template.spec.taints", "spec.taints"},
	{"spec.template.spec.startupTaints", "spec.startupTaints"},
	{"spec.limits", "spec.limits.resources"},
}

func provisionerField(err error) error {
	var fe *FieldError
	if !errors.As(err, &fe) {
		return err
	}
	for _, m := range provisionerFields {
		if rest, ok := strings.CutPrefix(fe.Field, m.nodePool); ok {
			return &FieldError{Field: m.provisioner + rest, Err: fe.Err}
		}
	}
	return err
}
