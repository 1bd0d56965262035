package cluster

import (
	"slices"
	"sync"
	"time"

	karpv1 "github.com/flotilla-dev/flotilla/api/karpenter/v1"
	"github.com/flotilla-dev/flotilla/api/snapshot"
)

// A pending pod is nominated to a NodeClaim in flight so the planner counts
// it against that capacity and launches nothing more for it. Nominations
// come from two places:
//
//   - durable: the NodeClaim's snapshot.AnnotationNominatedPods, written by
//     the actuator when it creates the NodeClaim; it survives restarts;
//   - in memory: recorded here the moment a plan is handed to the actuator,
//     before the NodeClaim exists, so a batch that arrives while Execute
//     runs does not plan the same pods again. It lasts while the NodeClaim
//     is in flight, or, until the NodeClaim shows up, for the nomination
//     TTL.
//
// Either way a nomination ends when the NodeClaim stops being in flight
// (its node initialized, its launch failed, it is deleted), which releases
// the pods to the planner.

// claimState is what the cache says about a NodeClaim.
type claimState int

const (
	claimAbsent claimState = iota
	claimInFlight
	claimDone
)

type nomination struct {
	claim string
	until time.Time
	// seen: the NodeClaim has been in the cache; from then on the cache
	// alone says whether it is in flight.
	seen bool
}

type nominations struct {
	mu    sync.Mutex
	byPod map[string]nomination
}

func newNominations() *nominations {
	return &nominations{byPod: map[string]nomination{}}
}

func (n *nominations) add(claim string, pods []string, until time.Time) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, p := range pods {
		n.byPod[p] = nomination{claim: claim, until: until}
	}
}

// markSeen records that claim is in the cache.
func (n *nominations) markSeen(claim string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for p, nom := range n.byPod {
		if nom.claim == claim && !nom.seen {
			nom.seen = true
			n.byPod[p] = nom
		}
	}
}

// release drops every nomination to claim and returns the pods.
func (n *nominations) release(claim string) []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []string
	for p, nom := range n.byPod {
		if nom.claim == claim {
			delete(n.byPod, p)
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

func (n *nominations) get(pod string) (nomination, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	nom, ok := n.byPod[pod]
	return nom, ok
}

func (n *nominations) forget(pod string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.byPod, pod)
}

// podsOf returns the pods nominated to claim in memory.
func (n *nominations) podsOf(claim string) []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []string
	for p, nom := range n.byPod {
		if nom.claim == claim {
			out = append(out, p)
		}
	}
	return out
}

// expire drops nominations that no longer hold and returns their pods.
func (n *nominations) expire(now time.Time, state func(string) claimState) []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []string
	for p, nom := range n.byPod {
		if !nom.valid(now, state(nom.claim)) {
			delete(n.byPod, p)
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

func (nom nomination) valid(now time.Time, st claimState) bool {
	switch st {
	case claimInFlight:
		return true
	case claimAbsent:
		return !nom.seen && now.Before(nom.until)
	default:
		return false
	}
}

// claimState looks the NodeClaim up in the cache.
func (c *Cluster) claimState(name string) claimState {
	nc, ok := get(c.inf.nodeClaims, name).(*karpv1.NodeClaim)
	switch {
	case !ok:
		return claimAbsent
	case snapshot.InFlight(nc):
		return claimInFlight
	default:
		return claimDone
	}
}

// nominatedClaim returns the in-flight NodeClaim a pending pod
// ("namespace/name") is nominated to, or "".
func (c *Cluster) nominatedClaim(pod string) string {
	if nom, ok := c.noms.get(pod); ok && nom.valid(c.now(), c.claimState(nom.claim)) {
		return nom.claim
	}
	claims := byIndex(c.inf.nodeClaims, indexNominated, pod)
	slices.Sort(claims)
	for _, name := range claims {
		if c.claimState(name) == claimInFlight {
			return name
		}
	}
	return ""
}

// Nominate records that pods ("namespace/name") wait for the NodeClaim
// claim, which the actuator is creating; the planner sees them as
// nominated from the next delta on.
func (c *Cluster) Nominate(claim string, pods []string) {
	c.noms.add(claim, pods, c.now().Add(c.opts.NominationTTL))
	keys := make([]key, len(pods))
	for i, p := range pods {
		keys[i] = key{kindPod, p}
	}
	c.tracker.mark(keys...)
}

// Release drops the in-memory nominations to claim (its launch failed) so
// the planner places those pods again.
func (c *Cluster) Release(claim string) {
	pods := c.noms.release(claim)
	keys := make([]key, len(pods))
	for i, p := range pods {
		keys[i] = key{kindPod, p}
	}
	c.tracker.mark(keys...)
}

// NominatedClaim returns the in-flight NodeClaim a pending pod
// ("namespace/name") is nominated to, or "".
func (c *Cluster) NominatedClaim(pod string) string {
	if c.inf == nil {
		return ""
	}
	return c.nominatedClaim(pod)
}
