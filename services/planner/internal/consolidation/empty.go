package consolidation

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/flotilla-dev/flotilla/services/planner/internal/model"
)

// Empty plans the removal of empty nodes: nodes Flotilla launched (they
// have a NodeClaim) that run no pods but DaemonSet and mirror pods, receive
// none in plan (the provisioning answer for the same snapshot), and have
// been so for their NodePool's consolidateAfter. It appends one disruption
// per NodePool to plan, within the pool's budget for the Empty reason, and a
// rejection for each empty node the budget holds back.
func Empty(ctx context.Context, s *model.Snapshot, plan *model.Plan) error {
	pools := map[string]*model.NodePool{}
	for _, p := range s.NodePools {
		pools[p.Name] = p
	}
	claims := map[string]*model.NodeClaim{}
	for _, c := range s.NodeClaims {
		claims[c.Name] = c
	}
	busy := map[string]bool{}
	for _, p := range s.Pods {
		if p.IsBound() && !p.IsDaemonSetPod() && p.OwnerKind != "Node" {
			busy[p.NodeName] = true
		}
	}
	for _, pl := range plan.Placements {
		if len(pl.Pods) > 0 {
			busy[pl.Node] = true
		}
	}

	byPool := map[string][]*model.Node{}
	total := map[string]int{}
	disrupting := map[string]int{}
	for _, n := range s.Nodes {
		pool := n.NodePool()
		if pool == "" || n.NodeClaim == "" {
			continue
		}
		total[pool]++
		if n.Deleting || claimDeleting(claims[n.NodeClaim]) {
			disrupting[pool]++
			continue
		}
		if busy[n.Name] || !n.Ready || !initialized(claims[n.NodeClaim]) {
			continue
		}
		byPool[pool] = append(byPool[pool], n)
	}
	// NodeClaims being deleted before their node registered also count.
	for _, c := range s.NodeClaims {
		if c.Deleting && c.NodeName == "" && c.NodePool != "" {
			disrupting[c.NodePool]++
			total[c.NodePool]++
		}
	}

	names := make([]string, 0, len(byPool))
	for name := range byPool {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return err
		}
		pool := pools[name]
		if pool == nil || pool.Disruption.ConsolidateNever {
			continue
		}
		var due []*model.Node
		for _, n := range byPool[name] {
			if wait := pool.Disruption.ConsolidateAfter - emptyFor(n, s.Now); wait > 0 {
				plan.RecheckAt = earliest(plan.RecheckAt, s.Now.Add(wait))
			} else {
				due = append(due, n)
			}
		}
		if len(due) == 0 {
			continue
		}
		// The priciest, then the longest-empty, go first.
		slices.SortFunc(due, func(a, b *model.Node) int {
			if c := cmp.Compare(b.PricePerHour, a.PricePerHour); c != 0 {
				return c
			}
			if c := a.LastPodEvent.Compare(b.LastPodEvent); c != 0 {
				return c
			}
			return cmp.Compare(a.Name, b.Name)
		})
		allow, err := allowed(pool, ReasonEmpty, total[name], disrupting[name])
		if err != nil {
			return err
		}
		take := min(allow.remaining, len(due))
		if take > 0 {
			d := &model.DisruptionPlan{Reason: model.DisruptionEmpty, Budget: allow.budget}
			for _, n := range due[:take] {
				d.Nodes = append(d.Nodes, n.Name)
				d.NodeClaims = append(d.NodeClaims, n.NodeClaim)
				d.SavingsPerHour += n.PricePerHour
			}
			d.ID = fmt.Sprintf("empty-%s-%s", name, d.NodeClaims[0])
			plan.Disruptions = append(plan.Disruptions, d)
		}
		for _, n := range due[take:] {
			plan.Rejections = append(plan.Rejections, &model.Rejection{
				Node: n.Name, NodeClaim: n.NodeClaim,
				Reason: fmt.Sprintf("empty, but the disruption budget (%s) allows no more nodes to be disrupted now", allow.budget),
			})
		}
	}
	return nil
}

func emptyFor(n *model.Node, now time.Time) time.Duration {
	since := n.LastPodEvent
	if since.Before(n.Created) {
		since = n.Created
	}
	return now.Sub(since)
}

// earliest returns the earlier of two times, a zero time meaning none.
func earliest(a, b time.Time) time.Time {
	if a.IsZero() || b.Before(a) {
		return b
	}
	return a
}

func claimDeleting(c *model.NodeClaim) bool { return c != nil && c.Deleting }

// initialized reports whether the node's NodeClaim finished starting; a node
// still starting up is never taken for empty.
func initialized(c *model.NodeClaim) bool {
	if c == nil {
		return false
	}
	cond, ok := c.Condition("Initialized")
	return ok && cond.Status == "True"
}
