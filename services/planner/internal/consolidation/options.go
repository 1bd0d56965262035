package consolidation

// Options tune the disruption solver. Zero fields take the defaults below;
// the planner's flags set them (see cmd/planner).
type Options struct {
	// SpotToSpot lets an under-utilised spot node be replaced by cheaper
	// spot capacity (Karpenter's SpotToSpotConsolidation). Without it a spot
	// node is only consolidated when its pods fit on existing capacity or
	// on-demand replacements. Drift, expiry and interruption replace spot
	// with spot regardless.
	SpotToSpot bool
	// SpotToSpotMinTypes is the diversity floor for spot-to-spot: a spot
	// replacement must have at least this many instance types whose spot
	// price is below the nodes it replaces, so the cluster does not race to
	// the single cheapest, most interrupted pool. Default 15.
	SpotToSpotMinTypes int
	// MinSavingsFraction is the least share of the disrupted nodes' price
	// a consolidation must save. Default 0.05; negative means 0.
	MinSavingsFraction float64
	// MinSavingsPerHour is the least a consolidation must save for every
	// node it disrupts, in $/h: a reshuffle of many nodes for a small gain
	// is churn. Default 0.01; negative means 0.
	MinSavingsPerHour float64
	// AllowLocalStorage lets nodes running pods with emptyDir or hostPath
	// volumes be disrupted voluntarily (the data is lost).
	AllowLocalStorage bool
	// MaxSolves bounds the provisioning runs one NodePool's
	// under-utilisation search may make. Default 4.
	MaxSolves int
}

// Defaults.
const (
	DefaultSpotToSpotMinTypes = 15
	DefaultMinSavingsFraction = 0.05
	DefaultMinSavingsPerHour  = 0.01
	DefaultMaxSolves          = 4
)

func (o Options) withDefaults() Options {
	if o.SpotToSpotMinTypes <= 0 {
		o.SpotToSpotMinTypes = DefaultSpotToSpotMinTypes
	}
	switch {
	case o.MinSavingsFraction == 0:
		o.MinSavingsFraction = DefaultMinSavingsFraction
	case o.MinSavingsFraction < 0:
		o.MinSavingsFraction = 0
	}
	switch {
	case o.MinSavingsPerHour == 0:
		o.MinSavingsPerHour = DefaultMinSavingsPerHour
	case o.MinSavingsPerHour < 0:
		o.MinSavingsPerHour = 0
	}
	if o.MaxSolves <= 0 {
		o.MaxSolves = DefaultMaxSolves
	}
	return o
}

// threshold is the least a consolidation of n nodes costing price must
// save.
func (o Options) threshold(price float64, n int) float64 {
	return max(o.MinSavingsFraction*price, o.MinSavingsPerHour*float64(n))
}
