package provisioning

import "math"

// maximize solves max c·x subject to A x ≤ b and x ≥ 0, where b ≥ 0 (so
// the origin is feasible), with the dense tableau simplex method and
// Bland's rule. It returns x and the row duals (the shadow prices of the
// constraints). It gives up after a bounded number of pivots and returns
// the current, feasible point.
func maximize(c []float64, A [][]float64, b []float64) (x, duals []float64) {
	m, n := len(A), len(c)
	const eps = 1e-9
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
	for range 20*(m+n) + 200 {
		// Dantzig's rule (most negative reduced cost) converges in fewer
		// pivots; Bland's index order breaks ties so that it cannot cycle.
		enter, most := -1, -eps
		for j := 0; j < w-1; j++ {
			if t[m][j] < most {
				enter, most = j, t[m][j]
			}
		}
		if enter < 0 {
			break
		}
		leave, best := -1, math.Inf(1)
		for i := range m {
			if t[i][enter] > eps {
				r := t[i][w-1] / t[i][enter]
				if r < best-eps || r < best+eps && leave >= 0 && basis[i] < basis[leave] {
					leave, best = i, r
				}
			}
		}
		if leave < 0 {
			break // unbounded; cannot happen for the problems built here
		}
		pivot(t, leave, enter)
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
	return x, duals
}

func pivot(t [][]float64, row, col int) {
	pr := t[row]
	pv := pr[col]
	for j := range pr {
		pr[j] /= pv
	}
	for i, r := range t {
		if i == row {
			continue
		}
		f := r[col]
		if f == 0 {
			continue
		}
		for j, v := range pr {
			if v != 0 {
				r[j] -= f * v
			}
		}
	}
}

// master is the pattern LP min cost·x subject to A x ≥ n, x ≥ 0, solved by
// the revised simplex method with an explicit basis inverse, so that new
// columns join a warm basis. K (the rows) is small; columns grow.
type master struct {
	n     []float64
	cols  [][]float64
	cost  []float64
	binv  [][]float64
	basis []int // a column index, or -1-i for row i's surplus
	xb    []float64
}

// newMaster starts from K columns where column i covers only row i
// (a[i] > 0): that basis is feasible.
func newMaster(n []float64, cols [][]float64, cost []float64) *master {
	K := len(n)
	m := &master{n: n, cols: cols, cost: cost, binv: make([][]float64, K), basis: make([]int, K), xb: make([]float64, K)}
	for i := range K {
		m.binv[i] = make([]float64, K)
		m.binv[i][i] = 1 / cols[i][i]
		m.basis[i] = i
		m.xb[i] = n[i] / cols[i][i]
	}
	return m
}

func (m *master) add(col []float64, cost float64) {
	m.cols = append(m.cols, col)
	m.cost = append(m.cost, cost)
}

// duals returns y = c_B B⁻¹.
func (m *master) duals() []float64 {
	K := len(m.n)
	y := make([]float64, K)
	for r, bv := range m.basis {
		c := 0.0
		if bv >= 0 {
			c = m.cost[bv]
		}
		if c == 0 {
			continue
		}
		for j := range K {
			y[j] += c * m.binv[r][j]
		}
	}
	return y
}

// optimize pivots until no column (or surplus) has a negative reduced
// cost, or a pivot budget runs out.
func (m *master) optimize() {
	K := len(m.n)
	const eps = 1e-9
	inBasis := map[int]bool{}
	for _, bv := range m.basis {
		inBasis[bv] = true
	}
	d := make([]float64, K)
	for range 50 * (K + len(m.cols)) {
		y := m.duals()
		enter, best := 0, -eps
		found := false
		for j, col := range m.cols {
			if inBasis[j] {
				continue
			}
			if rc := m.cost[j] - dot(y, col); rc < best {
				enter, best, found = j, rc, true
			}
		}
		for i := range K {
			if s := -1 - i; !inBasis[s] && y[i] < best {
				enter, best, found = s, y[i], true
			}
		}
		if !found {
			return
		}
		for r := range K {
			if enter >= 0 {
				d[r] = dot(m.binv[r], m.cols[enter])
			} else {
				d[r] = -m.binv[r][-1-enter]
			}
		}
		leave, ratio := -1, math.Inf(1)
		for r := range K {
			if d[r] > eps {
				if q := m.xb[r] / d[r]; q < ratio-eps || q < ratio+eps && leave >= 0 && m.basis[r] < m.basis[leave] {
					leave, ratio = r, q
				}
			}
		}
		if leave < 0 {
			return
		}
		for r := range K {
			m.xb[r] -= ratio * d[r]
		}
		m.xb[leave] = ratio
		pr := m.binv[leave]
		pv := d[leave]
		for j := range pr {
			pr[j] /= pv
		}
		for r := range K {
			if r != leave && d[r] != 0 {
				f := d[r]
				row := m.binv[r]
				for j := range row {
					row[j] -= f * pr[j]
				}
			}
		}
		delete(inBasis, m.basis[leave])
		m.basis[leave] = enter
		inBasis[enter] = true
	}
}

// x returns the column values.
func (m *master) x() []float64 {
	x := make([]float64, len(m.cols))
	for r, bv := range m.basis {
		if bv >= 0 {
			x[bv] = max(m.xb[r], 0)
		}
	}
	return x
}
