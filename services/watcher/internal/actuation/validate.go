package actuation

import (
	"slices"
	"strings"
	"time"

	clusterv1 "github.com/flotilla-dev/flotilla/gen/flotilla/cluster/v1"
)

// validationGap: a disruption missing from the plans for longer than the
// validation plus this starts its validation over (the planner sends no
// plan when it has nothing to say, so absence shows only as a gap).
const validationGap = 5 * time.Second

// validated returns the disruptions of a plan that may go to the actuator
// now: every drift, expiry and interruption, and the consolidations
// (Empty, Underutilized) that plans computed at least DisruptionValidation
// apart have both contained. The planner is stateless, so the watcher,
// which sees every plan, does the remembering; when a validation will end
// it asks the planner to plan again then, so the second look happens even
// in a quiet cluster.
func (f *Forwarder) validated(ds []*clusterv1.DisruptionPlan) []*clusterv1.DisruptionPlan {
	delay := f.opts.DisruptionValidation
	if delay <= 0 {
		return ds
	}
	now := f.opts.Now()
	var out []*clusterv1.DisruptionPlan
	var recheck time.Time
	present := map[string]bool{}
	for _, d := range ds {
		if !needsValidation(d.GetReason()) {
			out = append(out, d)
			continue
		}
		k := validationKey(d)
		present[k] = true
		s, ok := f.validating[k]
		if !ok || now.Sub(s.last) > delay+validationGap {
			s = sighting{first: now}
		}
		s.last = now
		f.validating[k] = s
		if held := now.Sub(s.first); held >= delay {
			out = append(out, d)
			continue
		}
		due := s.first.Add(delay)
		if recheck.IsZero() || due.Before(recheck) {
			recheck = due
		}
		if !ok {
			f.opts.Logger.Info("disruption_validating", "id", d.GetId(), "reason", reasonName(d.GetReason()),
				"node_claims", d.GetNodeClaims(), "until", due.Format(time.RFC3339Nano))
		}
	}
	// A decision the latest plan no longer makes is forgotten: it has to
	// hold for the whole delay again.
	for k := range f.validating {
		if !present[k] {
			delete(f.validating, k)
		}
	}
	if !recheck.IsZero() && f.opts.Recheck != nil {
		f.opts.Recheck(recheck)
	}
	return out
}

// needsValidation reports whether a disruption is a consolidation, which
// waits for a second look; the others replace nodes that must go anyway.
func needsValidation(r clusterv1.DisruptionReason) bool {
	return r == clusterv1.DisruptionReason_DISRUPTION_REASON_EMPTY || r == clusterv1.DisruptionReason_DISRUPTION_REASON_UNDERUTILIZED
}

// validationKey names a decision by its reason and nodes (not its id or
// replacements: moving the same nodes for the same reason is the same
// decision even if the replacement's offering changed).
func validationKey(d *clusterv1.DisruptionPlan) string {
	claims := slices.Clone(d.GetNodeClaims())
	slices.Sort(claims)
	nodes := slices.Clone(d.GetNodes())
	slices.Sort(nodes)
	return d.GetReason().String() + "\x00" + strings.Join(claims, ",") + "\x00" + strings.Join(nodes, ",")
}
