package consolidation

import (
	"fmt"
	"time"

	"github.com/flotilla-dev/flotilla/services/planner/internal/model"
)

// blocker says why a node's pods cannot leave it voluntarily, in words; ""
// when nothing blocks. Checked in order: a disruption of the node the
// actuator called off less than CoolDown ago, the node's or NodeClaim's
// do-not-disrupt annotation, then per pod (sorted by key) do-not-disrupt, a
// missing controller (nothing would recreate the pod), local storage (unless
// allowed), and PodDisruptionBudgets: a pod covered by more than one PDB,
// or by one that allows fewer disruptions than this answer would need.
// need returns, per PDB index, the evictions the node's pods would use.
func (st *state) blocker(n *model.Node, c *model.NodeClaim) (reason string, need map[int]int) {
	if c != nil {
		if at, err := time.Parse(time.RFC3339, c.Annotations[AnnotationCalledOffAt]); err == nil && st.s.Now.Before(at.Add(CoolDown)) {
			st.recheck(at.Add(CoolDown))
			return fmt.Sprintf("a disruption of it was called off at %s; it is left alone until %s", at.UTC().Format(time.RFC3339), at.Add(CoolDown).UTC().Format(time.RFC3339)), nil
		}
	}
	if n.Annotations[AnnotationDoNotDisrupt] == "true" {
		return fmt.Sprintf("node %s has %s", n.Name, AnnotationDoNotDisrupt), nil
	}
	if c != nil && c.Annotations[AnnotationDoNotDisrupt] == "true" {
		return fmt.Sprintf("NodeClaim %s has %s", c.Name, AnnotationDoNotDisrupt), nil
	}
	need = map[int]int{}
	for _, p := range st.movable(n.Name) {
		switch {
		case p.DoNotDisrupt:
			return fmt.Sprintf("pod %s has %s", p.Key(), AnnotationDoNotDisrupt), nil
		case p.OwnerKind == "":
			return fmt.Sprintf("pod %s has no controller, so nothing would recreate it", p.Key()), nil
		case p.LocalStorage && !st.opts.AllowLocalStorage:
			return fmt.Sprintf("pod %s uses local storage (emptyDir or hostPath), which would be lost", p.Key()), nil
		}
		covering := st.pdbsOf(p)
		if len(covering) > 1 {
			a, b := st.s.PodDisruptionBudgets[covering[0]], st.s.PodDisruptionBudgets[covering[1]]
			return fmt.Sprintf("pod %s is covered by more than one PDB (%s/%s and %s/%s), so it cannot be evicted", p.Key(), a.Namespace, a.Name, b.Namespace, b.Name), nil
		}
		for _, i := range covering {
			need[i]++
		}
	}
	for i := range st.s.PodDisruptionBudgets {
		if need[i] == 0 {
			continue
		}
		b := st.s.PodDisruptionBudgets[i]
		if left := st.pdbLeft[i]; need[i] > left {
			if int(b.DisruptionsAllowed) == left {
				return fmt.Sprintf("PDB %s/%s allows %s, and %s here", b.Namespace, b.Name, plural(left, "disruption"), podsRun(need[i])), nil
			}
			return fmt.Sprintf("PDB %s/%s allows %s more after the nodes disrupted now, and %s here", b.Namespace, b.Name, plural(left, "disruption"), podsRun(need[i])), nil
		}
	}
	return "", need
}

// pdbsOf returns the indexes of the PDBs that cover a pod.
func (st *state) pdbsOf(p *model.Pod) []int {
	if st.pdbsByNS == nil {
		st.pdbsByNS = map[string][]int{}
		for i, b := range st.s.PodDisruptionBudgets {
			st.pdbsByNS[b.Namespace] = append(st.pdbsByNS[b.Namespace], i)
		}
	}
	var out []int
	for _, i := range st.pdbsByNS[p.Namespace] {
		if st.s.PodDisruptionBudgets[i].Selector.Matches(p.Labels) {
			out = append(out, i)
		}
	}
	return out
}

// usePDBs records the evictions a planned disruption uses.
func (st *state) usePDBs(need map[int]int) {
	for i, k := range need {
		st.pdbLeft[i] -= k
	}
}

// fitsPDBs reports whether need fits in what the PDBs still allow together
// with more, the evictions already set aside for other nodes of the same
// decision.
func (st *state) fitsPDBs(need, more map[int]int) bool {
	for i, k := range need {
		if k+more[i] > st.pdbLeft[i] {
			return false
		}
	}
	return true
}

// plural spells a count with its noun: "1 disruption", "0 disruptions".
func plural(n int, noun string) string {
	if n == 1 {
		return fmt.Sprintf("1 %s", noun)
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

func podsRun(n int) string {
	if n == 1 {
		return "1 of its pods runs"
	}
	return fmt.Sprintf("%d of its pods run", n)
}
