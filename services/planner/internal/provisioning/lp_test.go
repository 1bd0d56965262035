package provisioning_test

// Test oracles for cost: a linear-programming lower bound on the price of
// any plan (column generation over node patterns, made valid with Farley's
// bound), and Karpenter's greedy first-fit as the baseline to beat.

import (
	"cmp"
	"math"
	"slices"
	"testing"

	"github.com/flotilla-dev/flotilla/services/planner/internal/model"
)

// simplexMax solves max c·x subject to A x ≤ b, x ≥ 0, with b ≥ 0, by the
// tableau simplex method with Bland's rule. It returns x, the optimum and
// the duals of the rows.
func simplexMax(c []float64, A [][]float64, b []float64) (x []float64, opt float64, duals []float64) {
	m, n := len(A), len(c)
	const eps = 1e-12
	// Tableau: m rows of [A | I | b], objective row [-c | 0 | 0].
	w := n + m + 1
	t := make([][]float64, m+1)
	for i := range m {
		t[i] = make([]float64, w)
		copy(t[i], A[i])
		t[i][n+i] = 1
		t[i][w-1] = b[i]
	}
	t[m] = make([]float64, w)
	for j := range n {
		t[m][j] = -c[j]
	}
	basis := make([]int, m)
	for i := range m {
		basis[i] = n + i
	}
	for iter := 0; iter < 50*(m+n)+1000; iter++ {
		enter := -1
		for j := 0; j < w-1; j++ {
			if t[m][j] < -eps {
				enter = j
				break
			}
		}
		if enter < 0 {
			break
		}
		leave, best := -1, math.Inf(1)
		for i := range m {
			if t[i][enter] > eps {
				if r := t[i][w-1] / t[i][enter]; r < best-eps || r < best+eps && leave >= 0 && basis[i] < basis[leave] {
					leave, best = i, r
				}
			}
		}
		if leave < 0 {
			return nil, math.Inf(1), nil // unbounded
		}
		pv := t[leave][enter]
		for j := range w {
			t[leave][j] /= pv
		}
		for i := 0; i <= m; i++ {
			if i != leave && t[i][enter] != 0 {
				f := t[i][enter]
				for j := range w {
					t[i][j] -= f * t[leave][j]
				}
			}
		}
		basis[leave] = enter
	}
	x = make([]float64, n)
	for i, bv := range basis {
		if bv < n {
			x[bv] = t[i][w-1]
		}
	}
	duals = make([]float64, m)
	for i := range m {
		duals[i] = t[m][n+i]
	}
	return x, t[m][w-1], duals
}

func TestSimplex(t *testing.T) {
	t.Parallel()
	// max 3x + 5y; x ≤ 4; 2y ≤ 12; 3x + 2y ≤ 18  →  x=2, y=6, 36.
	x, opt, duals := simplexMax([]float64{3, 5}, [][]float64{{1, 0}, {0, 2}, {3, 2}}, []float64{4, 12, 18})
	if math.Abs(opt-36) > 1e-9 || math.Abs(x[0]-2) > 1e-9 || math.Abs(x[1]-6) > 1e-9 {
		t.Errorf("got x=%v opt=%v, want (2,6) 36", x, opt)
	}
	if math.Abs(duals[1]-1.5) > 1e-9 || math.Abs(duals[2]-1) > 1e-9 {
		t.Errorf("duals %v, want (0, 1.5, 1)", duals)
	}
}

// nodeKind is an instance type as the oracle sees it: allocatable (less
// DaemonSets) and its cheapest allowed offering.
type nodeKindLP struct {
	name  string
	alloc [3]float64 // cpu, memory, pods
	price float64
}

// podShape is a request shape and how many pods have it.
type podShape struct {
	req [3]float64
	n   float64
}

func oracleTypes(s *model.Snapshot) []nodeKindLP {
	np := s.NodePools[0]
	k := vKubelet(np, s)
	var out []nodeKindLP
	for _, it := range s.InstanceTypes {
		labels := typeLabels(it)
		price := math.Inf(1)
		for _, o := range it.Offerings {
			l := v0Labels(labels, np, o)
			if o.Available && vAll(np.Requirements, l) {
				price = math.Min(price, o.PricePerHour)
			}
		}
		if math.IsInf(price, 1) {
			continue
		}
		a := vAllocatable(it, k)
		out = append(out, nodeKindLP{name: it.Name, alloc: [3]float64{float64(a.CPU), float64(a.Memory), float64(a.Pods)}, price: price})
	}
	// Drop types another beats on price and every resource.
	slices.SortStableFunc(out, func(a, b nodeKindLP) int { return cmp.Compare(a.price, b.price) })
	var kept []nodeKindLP
	for _, t := range out {
		dominated := false
		for _, u := range kept {
			if u.price <= t.price && u.alloc[0] >= t.alloc[0] && u.alloc[1] >= t.alloc[1] && u.alloc[2] >= t.alloc[2] {
				dominated = true
				break
			}
		}
		if !dominated {
			kept = append(kept, t)
		}
	}
	return kept
}

func v0Labels(l map[string]string, np *model.NodePool, o model.Offering) map[string]string {
	out := map[string]string{"topology.kubernetes.io/zone": o.Zone, "karpenter.sh/capacity-type": o.CapacityType, "karpenter.sh/nodepool": np.Name}
	for k, v := range l {
		out[k] = v
	}
	return out
}

func oracleShapes(s *model.Snapshot) []podShape {
	idx := map[[3]float64]int{}
	var out []podShape
	for _, p := range s.Pods {
		if !isPending(p) {
			continue
		}
		r := podRequests(p)
		key := [3]float64{float64(r.CPU), float64(r.Memory), 1}
		i, ok := idx[key]
		if !ok {
			i = len(out)
			idx[key] = i
			out = append(out, podShape{req: key})
		}
		out[i].n++
	}
	return out
}

// lowerBound returns a lower bound on the $/h of any set of new nodes that
// holds the snapshot's pending pods (ignoring every constraint but
// resources): the LP relaxation of the pattern formulation, solved by
// column generation; its duals, scaled by the worst fractional pricing
// ratio, stay feasible for every pattern, which makes the bound valid even
// though the pricing step is a heuristic.
func lowerBound(s *model.Snapshot) float64 {
	types := oracleTypes(s)
	shapes := oracleShapes(s)
	K := len(shapes)
	if K == 0 {
		return 0
	}
	type pattern struct {
		a     []float64
		price float64
	}
	var pats []pattern
	// Start with, per shape, the type that serves it most cheaply alone.
	for i, sh := range shapes {
		best, bestP := math.Inf(1), pattern{}
		for _, t := range types {
			cnt := math.Inf(1)
			for d := range 3 {
				if sh.req[d] > 0 {
					cnt = math.Min(cnt, math.Floor(t.alloc[d]/sh.req[d]))
				}
			}
			if cnt >= 1 && t.price/cnt < best {
				best = t.price / cnt
				a := make([]float64, K)
				a[i] = cnt
				bestP = pattern{a: a, price: t.price}
			}
		}
		if bestP.a == nil {
			return math.NaN() // a pod no type holds
		}
		pats = append(pats, bestP)
	}
	b := make([]float64, K)
	for i, sh := range shapes {
		b[i] = sh.n
	}
	var y []float64
	for iter := 0; iter < 200; iter++ {
		// Dual of the master: max n·y s.t. a_p·y ≤ price_p.
		A := make([][]float64, len(pats))
		rhs := make([]float64, len(pats))
		for p, pt := range pats {
			A[p], rhs[p] = pt.a, pt.price
		}
		y, _, _ = simplexMax(b, A, rhs)
		added := 0
		for _, t := range types {
			a, _, _ := exactPattern(t, shapes, y)
			v := 0.0
			for i := range K {
				v += a[i] * y[i]
			}
			if v > t.price*(1+1e-9) {
				pats = append(pats, pattern{a: a, price: t.price})
				added++
			}
		}
		if added == 0 {
			break
		}
	}
	// Farley: y/θ is dual feasible for every pattern when θ bounds the
	// best pattern's value over its price for every type; exact pricing
	// gives that value, otherwise its upper bound stands in.
	theta := 1.0
	for _, t := range types {
		_, v, ub := exactPattern(t, shapes, y)
		theta = math.Max(theta, math.Max(v, ub)/t.price)
	}
	bound := 0.0
	for i := range K {
		bound += b[i] * y[i]
	}
	debugLB(bound, theta, len(pats))
	return bound / theta
}

// exactPattern finds the most valuable whole-pod fill of a node at duals y
// by branch and bound (pods of a shape at most as many as there are). It
// returns the fill, its value, and an upper bound on the optimum that is
// the value itself when the search finished within its budget.
//
// The bound at each search node is the fractional knapsack of a surrogate
// constraint: the resources weighted by the duals of the node's LP
// relaxation, which makes the root bound the LP optimum itself; the
// per-resource bound (free amount times the best value per unit) caps it.
func exactPattern(t nodeKindLP, shapes []podShape, y []float64) ([]float64, float64, float64) {
	K := len(shapes)
	A := make([][]float64, 3+K)
	b := make([]float64, 3+K)
	for d := range 3 {
		A[d] = make([]float64, K)
		for i := range K {
			A[d][i] = shapes[i].req[d]
		}
		b[d] = t.alloc[d]
	}
	for i := range K {
		A[3+i] = make([]float64, K)
		A[3+i][i] = 1
		b[3+i] = shapes[i].n
	}
	frac, lpUB, duals := simplexMax(y, A, b)
	var lambda [3]float64
	copy(lambda[:], duals[:3])
	weight := func(i int) float64 {
		return lambda[0]*shapes[i].req[0] + lambda[1]*shapes[i].req[1] + lambda[2]*shapes[i].req[2]
	}
	var items []int
	for i := range K {
		if y[i] > 1e-12 && fitWhole3(shapes[i].req, t.alloc) >= 1 {
			items = append(items, i)
		}
	}
	eff := func(i int) float64 {
		if w := weight(i); w > 0 {
			return y[i] / w
		}
		return math.Inf(1)
	}
	slices.SortStableFunc(items, func(a, b int) int { return cmp.Compare(eff(b), eff(a)) })
	ratio := func(i, d int) float64 {
		if shapes[i].req[d] == 0 {
			return math.Inf(1)
		}
		return y[i] / shapes[i].req[d]
	}
	suffix := make([][3]float64, len(items)+1)
	for k := len(items) - 1; k >= 0; k-- {
		for d := range 3 {
			suffix[k][d] = math.Max(suffix[k+1][d], ratio(items[k], d))
		}
	}
	// Start from the better of the greedy fill and the LP relaxation
	// rounded down and topped up.
	best := greedyPattern(t, shapes, y)
	bestV := dot(best, y)
	if a := roundedPattern(t, shapes, y, frac, items); dot(a, y) > bestV {
		best, bestV = a, dot(a, y)
	}
	bound := func(k int, free [3]float64) float64 {
		ub := math.Inf(1)
		for d := range 3 {
			ub = math.Min(ub, free[d]*suffix[k][d])
		}
		capW := lambda[0]*free[0] + lambda[1]*free[1] + lambda[2]*free[2]
		s := 0.0
		for _, i := range items[k:] {
			most := math.Min(shapes[i].n, fitWhole3(shapes[i].req, free))
			if most <= 0 {
				continue
			}
			w := weight(i)
			if w <= 0 {
				s += most * y[i]
				continue
			}
			if most*w <= capW {
				s += most * y[i]
				capW -= most * w
				continue
			}
			s += capW / w * y[i]
			break
		}
		return math.Min(ub, s)
	}
	const budget = 40_000
	cur := make([]float64, K)
	nodes, exhausted := 0, false
	var dfs func(k int, free [3]float64, v float64)
	dfs = func(k int, free [3]float64, v float64) {
		if nodes++; nodes > budget {
			exhausted = true
			return
		}
		if v > bestV*(1+1e-12) {
			bestV, best = v, slices.Clone(cur)
		}
		if k == len(items) || v+bound(k, free) <= bestV*(1+1e-12) {
			return
		}
		i := items[k]
		most := math.Min(shapes[i].n, fitWhole3(shapes[i].req, free))
		for c := most; c >= 0 && !exhausted; c-- {
			cur[i] = c
			var f [3]float64
			for d := range 3 {
				f[d] = free[d] - c*shapes[i].req[d]
			}
			dfs(k+1, f, v+c*y[i])
		}
		cur[i] = 0
	}
	dfs(0, t.alloc, 0)
	if exhausted {
		return best, bestV, math.Max(bestV, lpUB)
	}
	return best, bestV, bestV
}

func fitWhole3(req, free [3]float64) float64 {
	n := math.Inf(1)
	for d := range 3 {
		if req[d] > 0 {
			n = math.Min(n, math.Floor(free[d]/req[d]))
		}
	}
	return math.Max(n, 0)
}

// roundedPattern rounds an LP fill down and tops it up greedily in the
// given order.
func roundedPattern(t nodeKindLP, shapes []podShape, y, frac []float64, order []int) []float64 {
	a := make([]float64, len(shapes))
	free := t.alloc
	for i := range shapes {
		a[i] = math.Floor(frac[i] + 1e-9)
		for d := range 3 {
			free[d] -= a[i] * shapes[i].req[d]
		}
	}
	for _, i := range order {
		if cnt := math.Min(shapes[i].n-a[i], fitWhole3(shapes[i].req, free)); cnt > 0 {
			a[i] += cnt
			for d := range 3 {
				free[d] -= cnt * shapes[i].req[d]
			}
		}
	}
	return a
}

func dot(a, b []float64) float64 {
	s := 0.0
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

// greedyPattern fills a node of type t with whole pods, trying each shape
// first and then the best value per resource share; it returns the best
// fill for duals y.
func greedyPattern(t nodeKindLP, shapes []podShape, y []float64) []float64 {
	K := len(shapes)
	order := make([]int, K)
	for i := range order {
		order[i] = i
	}
	density := func(i int) float64 {
		s := 0.0
		for d := range 3 {
			s = math.Max(s, shapes[i].req[d]/t.alloc[d])
		}
		return y[i] / s
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(density(b), density(a)) })
	var best []float64
	bestV := -1.0
	for first := -1; first < K; first++ {
		a := make([]float64, K)
		free := t.alloc
		take := func(i int) {
			cnt := math.Inf(1)
			for d := range 3 {
				if shapes[i].req[d] > 0 {
					cnt = math.Min(cnt, math.Floor(free[d]/shapes[i].req[d]))
				}
			}
			if cnt <= 0 || y[i] <= 0 {
				return
			}
			a[i] += cnt
			for d := range 3 {
				free[d] -= cnt * shapes[i].req[d]
			}
		}
		if first >= 0 {
			take(first)
		}
		for _, i := range order {
			take(i)
		}
		v := 0.0
		for i := range K {
			v += a[i] * y[i]
		}
		if v > bestV {
			best, bestV = a, v
		}
	}
	return best
}

// greedyCost is what Karpenter's first-fit would pay: pods by CPU then
// memory, largest first, each into the first open NodeClaim that some
// instance type can still hold it in, else a new NodeClaim with every type
// that fits; each NodeClaim launches its cheapest remaining type.
func greedyCost(s *model.Snapshot) float64 {
	types := oracleTypes(s)
	var reqs [][3]float64
	for _, p := range s.Pods {
		if isPending(p) {
			r := podRequests(p)
			reqs = append(reqs, [3]float64{float64(r.CPU), float64(r.Memory), 1})
		}
	}
	slices.SortStableFunc(reqs, func(a, b [3]float64) int { return cmp.Or(cmp.Compare(b[0], a[0]), cmp.Compare(b[1], a[1])) })
	type claim struct {
		used [3]float64
		opts []int
	}
	var claims []*claim
	fits := func(used [3]float64, t nodeKindLP) bool {
		return used[0] <= t.alloc[0] && used[1] <= t.alloc[1] && used[2] <= t.alloc[2]
	}
	for _, r := range reqs {
		placed := false
		for _, c := range claims {
			u := [3]float64{c.used[0] + r[0], c.used[1] + r[1], c.used[2] + r[2]}
			var left []int
			for _, i := range c.opts {
				if fits(u, types[i]) {
					left = append(left, i)
				}
			}
			if len(left) > 0 {
				c.used, c.opts, placed = u, left, true
				break
			}
		}
		if placed {
			continue
		}
		c := &claim{used: r}
		for i, t := range types {
			if fits(r, t) {
				c.opts = append(c.opts, i)
			}
		}
		if len(c.opts) > 0 {
			claims = append(claims, c)
		}
	}
	total := 0.0
	for _, c := range claims {
		cheapest := math.Inf(1)
		for _, i := range c.opts {
			cheapest = math.Min(cheapest, types[i].price)
		}
		total += cheapest
	}
	return total
}

var debugLB = func(b, th float64, n int) {}
