// Package offering is the actuator's knowledge of where instances can be
// bought and at what price: the live instance catalogue (EC2's instance
// types and zone offerings, spot and on-demand prices, the embedded
// catalogue as fallback) and the offerings that recently failed for lack of
// capacity.
package offering

import (
	"maps"
	"slices"
	"strings"
	"sync"
	"time"
)

// DefaultUnavailableTTL is how long a capacity error keeps an offering out
// of launches.
const DefaultUnavailableTTL = 3 * time.Minute

// Key names an offering: an instance type in a zone with a capacity type.
// An empty InstanceType or Zone matches every value (an account-wide spot
// limit makes every spot offering unavailable).
type Key struct {
	InstanceType string
	Zone         string
	CapacityType string
}

// Unavailable remembers offerings that failed for lack of capacity, each
// for a TTL. It is safe for concurrent use.
type Unavailable struct {
	ttl time.Duration
	now func() time.Time

	mu      sync.Mutex
	entries map[Key]unavailableEntry
}

type unavailableEntry struct {
	until  time.Time
	reason string
}

// NewUnavailable returns an empty cache whose entries last ttl
// (DefaultUnavailableTTL when 0) on the clock now (time.Now when nil).
func NewUnavailable(ttl time.Duration, now func() time.Time) *Unavailable {
	if ttl <= 0 {
		ttl = DefaultUnavailableTTL
	}
	if now == nil {
		now = time.Now
	}
	return &Unavailable{ttl: ttl, now: now, entries: map[Key]unavailableEntry{}}
}

// Mark makes an offering unavailable for the TTL, with the reason EC2 gave.
func (u *Unavailable) Mark(k Key, reason string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.entries[k] = unavailableEntry{until: u.now().Add(u.ttl), reason: reason}
}

// Reason reports whether an offering is unavailable now, and why. An entry
// for the instance type in every zone, or for the capacity type everywhere,
// counts too.
func (u *Unavailable) Reason(k Key) (string, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	now := u.now()
	for _, c := range []Key{k, {InstanceType: k.InstanceType, CapacityType: k.CapacityType}, {CapacityType: k.CapacityType}} {
		e, ok := u.entries[c]
		if !ok {
			continue
		}
		if !now.Before(e.until) {
			delete(u.entries, c)
			continue
		}
		return e.reason, true
	}
	return "", false
}

// Contains reports whether an offering is unavailable now.
func (u *Unavailable) Contains(k Key) bool {
	_, ok := u.Reason(k)
	return ok
}

// Keys returns the offerings unavailable now, sorted.
func (u *Unavailable) Keys() []Key {
	u.mu.Lock()
	defer u.mu.Unlock()
	now := u.now()
	var out []Key
	for _, k := range slices.Collect(maps.Keys(u.entries)) {
		if now.Before(u.entries[k].until) {
			out = append(out, k)
		} else {
			delete(u.entries, k)
		}
	}
	slices.SortFunc(out, func(a, b Key) int {
		if a.InstanceType != b.InstanceType {
			return strings.Compare(a.InstanceType, b.InstanceType)
		}
		if a.Zone != b.Zone {
			return strings.Compare(a.Zone, b.Zone)
		}
		return strings.Compare(a.CapacityType, b.CapacityType)
	})
	return out
}
