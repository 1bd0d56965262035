package consolidation

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/flotilla-dev/flotilla/services/planner/internal/model"
)

// drifted replaces nodes that no longer match their NodePool or node class
// (see driftOf), one budget at a time.
func (st *state) drifted(ctx context.Context) error {
	return st.replace(ctx, model.DisruptionDrifted, func(n *model.Node, c *model.NodeClaim, pool *model.NodePool) (string, time.Time) {
		if why := st.driftOf(n, c, pool); why != "" {
			return "drifted (" + why + ")", time.Time{}
		}
		return "", time.Time{}
	})
}

// expired replaces nodes older than their NodePool's expireAfter, one
// budget at a time.
func (st *state) expired(ctx context.Context) error {
	return st.replace(ctx, model.DisruptionExpired, func(n *model.Node, c *model.NodeClaim, pool *model.NodePool) (string, time.Time) {
		if pool.ExpireAfter <= 0 {
			return "", time.Time{}
		}
		born := c.Created
		if born.IsZero() {
			born = n.Created
		}
		at := born.Add(pool.ExpireAfter)
		if at.After(st.s.Now) {
			return "", at
		}
		return fmt.Sprintf("expired (older than the NodePool's expireAfter %s)", formatDuration(pool.ExpireAfter)), time.Time{}
	})
}

// detector says why a node must be replaced ("" when it need not) and, if
// not yet, when it will have to be.
type detector func(n *model.Node, c *model.NodeClaim, pool *model.NodePool) (string, time.Time)

// replace plans, per NodePool, the replacement of the nodes detect picks:
// the oldest first, as many as the budget for the reason allows, skipping
// nodes whose pods may not leave; the provisioning solver places their pods
// (existing room first, then new NodeClaims the actuator launches before it
// drains). Nodes with pods nothing else can host stay, with the reason.
func (st *state) replace(ctx context.Context, reason model.DisruptionReason, detect detector) error {
	budgetReason := reasonName(reason)
	for _, name := range st.poolNames {
		if err := ctx.Err(); err != nil {
			return err
		}
		pool := st.pools[name]
		type cand struct {
			n   *model.Node
			c   *model.NodeClaim
			why string
		}
		var due []cand
		for _, n := range st.nodes {
			c, p, ok := st.managed(n)
			if !ok || p != pool || !n.Ready || !initialized(c) || st.taken[n.Name] || st.protected[n.Name] {
				continue
			}
			why, at := detect(n, c, pool)
			st.recheck(at)
			if why == "" {
				continue
			}
			if st.busy[n.Name] {
				st.reject(n, why+", but pending pods are placed on it now; it is replaced later")
				continue
			}
			due = append(due, cand{n, c, why})
		}
		if len(due) == 0 {
			continue
		}
		slices.SortFunc(due, func(a, b cand) int {
			return cmp.Or(a.c.Created.Compare(b.c.Created), cmp.Compare(a.n.Name, b.n.Name))
		})
		allow := st.budgets.allowed(pool, budgetReason)
		st.recheck(st.budgets.change(pool.Name, budgetReason))
		var chosen []cand
		need := map[int]int{}
		for _, d := range due {
			blocked, nd := st.blocker(d.n, d.c)
			switch {
			case blocked != "":
				st.reject(d.n, d.why+", but "+blocked)
			case !st.fitsPDBs(nd, need):
				st.reject(d.n, d.why+", but its pods' PDBs allow no more disruptions with the nodes replaced now")
			case len(chosen) >= allow.remaining:
				st.reject(d.n, d.why+", but the "+allow.blockedText())
			default:
				chosen = append(chosen, d)
				for i, k := range nd {
					need[i] += k
				}
			}
		}
		// The pods move to nodes that stay, not to nodes replaced next.
		var avoid []*model.Node
		for _, d := range due {
			avoid = append(avoid, d.n)
		}
		for tries := 0; len(chosen) > 0; tries++ {
			nodes := make([]*model.Node, len(chosen))
			for i, d := range chosen {
				nodes[i] = d.n
			}
			t, err := st.try(ctx, nodes, avoid)
			if err != nil {
				return err
			}
			if len(t.unplaced) == 0 {
				st.commitPlan(reason, pool.Name, allow.budget, t, need)
				break
			}
			kept := chosen[:0]
			for _, d := range chosen {
				if us := t.unplaced[d.n.Name]; len(us) > 0 {
					st.reject(d.n, d.why+", but "+unplacedText(us))
					continue
				}
				kept = append(kept, d)
			}
			if tries+1 >= st.opts.MaxSolves {
				for _, d := range kept {
					st.reject(d.n, d.why+", but the nodes replaced with it have pods nothing else can host; it is tried again next time")
				}
				break
			}
			chosen = kept
			need = map[int]int{}
			for _, d := range chosen {
				_, nd := st.blocker(d.n, d.c)
				for i, k := range nd {
					need[i] += k
				}
			}
		}
	}
	return nil
}

// driftOf says how a node no longer matches what its NodePool and node
// class would launch now; "" when it matches. It compares the hashes the
// NodeClaim was launched with, the image and zone it runs in with what the
// node class resolves to, and the node's labels with the pool's
// requirements (a requirement on a label nobody reports is not judged).
func (st *state) driftOf(n *model.Node, c *model.NodeClaim, pool *model.NodePool) string {
	if c.NodePoolHash != "" && pool.Hash != "" && c.NodePoolHash != pool.Hash {
		return fmt.Sprintf("NodePool %s changed since the node was launched", pool.Name)
	}
	if pool.NodeClass != "" && c.NodeClass != "" && c.NodeClass != pool.NodeClass {
		return fmt.Sprintf("NodePool %s now uses node class %s, not %s", pool.Name, pool.NodeClass, c.NodeClass)
	}
	if class := st.classes[pool.NodeClass]; class != nil {
		if c.NodeClassHash != "" && class.Hash != "" && c.NodeClassHash != class.Hash {
			return fmt.Sprintf("EC2NodeClass %s changed since the node was launched", class.Name)
		}
		if c.ImageID != "" && len(class.Images) > 0 && !slices.ContainsFunc(class.Images, func(im model.Image) bool { return im.ID == c.ImageID }) {
			return fmt.Sprintf("its image %s is no longer one EC2NodeClass %s selects", c.ImageID, class.Name)
		}
		zone := n.Labels[model.LabelZone]
		if zone == "" {
			zone = c.Zone
		}
		if zone != "" && len(class.Subnets) > 0 && !slices.ContainsFunc(class.Subnets, func(s model.Subnet) bool { return s.Zone == zone }) {
			return fmt.Sprintf("zone %s has none of EC2NodeClass %s's subnets any more", zone, class.Name)
		}
	}
	labels := st.nodeLabels(n, c)
	for _, r := range pool.Requirements {
		v, ok := labels[r.Key]
		if ok && !r.MatchesValue(v, true) {
			return fmt.Sprintf("its label %s=%s no longer satisfies the NodePool's requirement %s", r.Key, v, r)
		}
	}
	if pool.Hash == "" || c.NodePoolHash == "" {
		for _, k := range slices.Sorted(maps.Keys(pool.Labels)) {
			if v, ok := n.Labels[k]; !ok || v != pool.Labels[k] {
				return fmt.Sprintf("it lacks the NodePool's label %s=%s", k, pool.Labels[k])
			}
		}
		for _, t := range pool.Taints {
			if !slices.Contains(n.Taints, t) {
				return fmt.Sprintf("it lacks the NodePool's taint %s", t)
			}
		}
	}
	return ""
}

// nodeLabels are the labels a node is known to have: its instance type's,
// its NodeClaim's and its own, the latter winning.
func (st *state) nodeLabels(n *model.Node, c *model.NodeClaim) map[string]string {
	out := map[string]string{}
	it := st.types[n.Labels[model.LabelInstanceType]]
	if it == nil {
		it = st.types[c.InstanceType]
	}
	if it != nil {
		maps.Copy(out, st.labelsOf(it))
	}
	if c.Zone != "" {
		out[model.LabelZone] = c.Zone
	}
	if c.CapacityType != "" {
		out[model.LabelCapacityType] = c.CapacityType
	}
	maps.Copy(out, c.Labels)
	maps.Copy(out, n.Labels)
	return out
}
