// Package provisioning decides where pending pods go: onto existing nodes
// and in-flight NodeClaims first, then onto new NodeClaims chosen for the
// lowest total price that satisfies every scheduling constraint. It is a
// pure function of a model.Snapshot: no clock, no randomness, no I/O.
package provisioning

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/flotilla-dev/flotilla/services/planner/internal/model"
)

// Solve places the snapshot's pending pods and returns the plan: new
// NodeClaims (cheapest offering, acceptable instance types, deterministic
// names), pods placed on existing nodes and in-flight NodeClaims, and the
// pods nothing can host with the reason why. It returns ctx's error when ctx
// ends first.
func Solve(ctx context.Context, s *model.Snapshot) (*model.Plan, error) {
	if s == nil {
		return &model.Plan{ID: planID(&model.Plan{})}, nil
	}
	p, err := newProblem(ctx, s)
	if err != nil {
		return nil, fmt.Errorf("prepare snapshot: %w", err)
	}
	order := p.order()
	// Two strategies, one per core: the greedy alone, and the pattern LP's
	// nodes first with the greedy after. The better plan wins: fewer pods
	// left out, then the lower price, then the greedy. When the LP has
	// nothing to do, its run would be the greedy's step for step, so it is
	// left out.
	base := newRun(p)
	strategies := []strategy{{lp: false, widen: 1}}
	if !base.lpIdle() {
		strategies = append(strategies, strategy{lp: true, widen: 1})
	}
	if pendingPods(p) <= wideBelow {
		strategies = append(strategies, strategy{lp: true, widen: 4})
	}
	best, run, err := base.solveAll(ctx, strategies, order)
	if err != nil {
		return nil, err
	}
	// Pods a topology constraint kept out may only have been crowded out
	// by pods placed before them (another group's spread filled the only
	// domain their own spread allows); placing them first may fit
	// everything.
	if first := run.blocked(order); len(first) > 0 {
		moved := make([]bool, len(p.classes))
		for _, c := range first {
			moved[c.idx] = true
		}
		again := append(first, slices.DeleteFunc(slices.Clone(order), func(c *podClass) bool { return moved[c.idx] })...)
		pl, _, err := base.solveAll(ctx, strategies, again)
		if err != nil {
			return nil, err
		}
		if better(pl, best) {
			best = pl
		}
	}
	return best, nil
}

// solveAll runs the strategies, one goroutine each, from copies of base
// (a run that has placed nothing) with the classes in the given order, and
// returns the best plan and the run that made it.
func (base *run) solveAll(ctx context.Context, strategies []strategy, order []*podClass) (*model.Plan, *run, error) {
	plans := make([]*model.Plan, len(strategies))
	runs := make([]*run, len(strategies))
	errs := make([]error, len(strategies))
	var wg sync.WaitGroup
	for i, st := range strategies {
		wg.Go(func() {
			r := base.clone()
			r.lp, r.widen = st.lp, st.widen
			if errs[i] = r.solve(ctx, order); errs[i] == nil {
				plans[i], runs[i] = r.plan(), r
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, nil, fmt.Errorf("place pods: %w", err)
	}
	best := 0
	for i := range plans[1:] {
		if better(plans[i+1], plans[best]) {
			best = i + 1
		}
	}
	return plans[best], runs[best], nil
}

// lpIdle reports whether a run with the pattern LP would do just what the
// greedy does: there is no node or in-flight NodeClaim its first pass could
// fill, and no class free to pack into whole nodes.
func (r *run) lpIdle() bool {
	if len(r.nodes) > 0 {
		return false
	}
	for _, c := range r.p.classes {
		if pi := r.firstPool(c); pi != nil && r.p.isFree(c, pi) {
			return false
		}
	}
	return true
}

// better reports whether plan a beats plan b: fewer pods left out, then a
// lower price.
func better(a, b *model.Plan) bool {
	return len(a.Unschedulable) < len(b.Unschedulable) ||
		len(a.Unschedulable) == len(b.Unschedulable) && a.TotalPricePerHour < b.TotalPricePerHour-1e-9
}

// blocked returns, in placement order, the classes with pods left that a
// topology constraint kept off a node and that other pods' spread or
// anti-affinity counts (so pods placed before them may have crowded them
// out). Classes held back only by their own constraints are not retried:
// placing them first changes nothing.
func (r *run) blocked(order []*podClass) []*podClass {
	var out []*podClass
	for _, c := range order {
		if r.remaining[c.idx] > 0 && r.why[c.idx].g != nil && r.countedByOthers(c) {
			out = append(out, c)
		}
	}
	return out
}

// countedByOthers reports whether a spread or anti-affinity group the class
// does not carry selects its pods.
func (r *run) countedByOthers(c *podClass) bool {
	v := r.view(c)
	for _, gi := range c.matched {
		g := r.p.groups[gi]
		if g.kind != groupAffinity && !slices.Contains(v.spread, gi) && !slices.Contains(v.anti, gi) {
			return true
		}
	}
	return false
}

// strategy is one way to run the solver; Solve runs several and keeps the
// best plan.
type strategy struct {
	lp    bool
	widen int
}

// wideBelow is the number of pending pods up to which Solve also tries a
// run that weighs four times as many instance types per new node.
const wideBelow = 2000

func pendingPods(p *problem) int {
	n := 0
	for _, c := range p.classes {
		n += len(c.pods)
	}
	return n
}

// estimateValues sets each class's value: what one of its pods costs on
// the instance type that serves it most cheaply, counting only the share of
// the node it uses in its scarcest resource.
func (p *problem) estimateValues() {
	for _, c := range p.classes {
		c.fit = make([]bitset, len(p.pools))
		for _, pi := range p.pools {
			c.fit[pi.idx] = p.fits(pi, c.req)
		}
		vk := valueKey{req: shapeOf(c.req)}
		for _, a := range c.views[0].alts {
			vk.alts += a.sig + "|"
		}
		if v, ok := p.valueCache[vk]; ok && len(c.req.Extended) == 0 {
			c.value = v
			continue
		}
		best := 0.0
		for _, a := range c.views[0].alts {
			for _, pi := range p.pools {
				ap := a.pool[pi.idx]
				if !ap.ok {
					continue
				}
				ap.types.and(c.fit[pi.idx]).each(func(i int) {
					t := pi.types[i]
					o, ok := t.cheapestIn(ap.zones, ap.cts)
					if !ok {
						return
					}
					v := o.price * share(c.req, t.alloc)
					if best == 0 || v < best {
						best = v
					}
				})
			}
		}
		if best <= 0 {
			best = 1e-6
		}
		c.value = best
		p.valueCache[vk] = best
	}
}

type valueKey struct {
	alts string
	req  shape
}

// share is the largest fraction of avail that req takes in any resource.
func share(req, avail model.Resources) float64 {
	s := 0.0
	if req.CPU > 0 && avail.CPU > 0 {
		s = max(s, float64(req.CPU)/float64(avail.CPU))
	}
	if req.Memory > 0 && avail.Memory > 0 {
		s = max(s, float64(req.Memory)/float64(avail.Memory))
	}
	if req.Pods > 0 && avail.Pods > 0 {
		s = max(s, float64(req.Pods)/float64(avail.Pods))
	}
	if req.EphemeralStorage > 0 && avail.EphemeralStorage > 0 {
		s = max(s, float64(req.EphemeralStorage)/float64(avail.EphemeralStorage))
	}
	for k, v := range req.Extended {
		if a := avail.Extended[k]; v > 0 && a > 0 {
			s = max(s, float64(v)/float64(a))
		}
	}
	return s
}
