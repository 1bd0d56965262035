package v1

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"time"
)

// Never is the literal that switches a NillableDuration off.
const Never = "Never"

// nillableDurationPattern is the schema pattern of a NillableDuration: whole
// seconds, minutes and hours in Go duration syntax, or "Never".
var nillableDurationPattern = regexp.MustCompile(`^(([0-9]+(s|m|h))+|Never)$`)

// NillableDuration is a duration that may also be "Never", as used by
// expireAfter and consolidateAfter. The zero value is a duration of 0s.
//
// In JSON it is a string: "Never", or whole hours, minutes and seconds such as
// "720h", "1h30m" or "30s" (sub-second parts are not representable and are
// dropped when encoding).
type NillableDuration struct {
	// Duration is the length of time; ignored when Never is true.
	Duration time.Duration
	// Never is true for the literal "Never".
	Never bool
}

// NewDuration returns a NillableDuration of d.
func NewDuration(d time.Duration) *NillableDuration {
	return &NillableDuration{Duration: d}
}

// NeverDuration returns a NillableDuration that is "Never".
func NeverDuration() *NillableDuration {
	return &NillableDuration{Never: true}
}

// Get returns the duration and true, or 0 and false when the value is
// "Never".
func (d NillableDuration) Get() (time.Duration, bool) {
	if d.Never {
		return 0, false
	}
	return d.Duration, true
}

// String returns the JSON form without quotes: "Never" or e.g. "1h30m".
func (d NillableDuration) String() string {
	if d.Never {
		return Never
	}
	return formatDuration(d.Duration)
}

// Equal reports whether d and o mean the same thing (go-cmp uses it).
func (d NillableDuration) Equal(o NillableDuration) bool {
	if d.Never || o.Never {
		return d.Never == o.Never
	}
	return d.Duration == o.Duration
}

// MarshalJSON encodes the duration as a string.
func (d NillableDuration) MarshalJSON() ([]byte, error) {
	return json.Marshal(d.String())
}

// UnmarshalJSON decodes "Never" or a duration such as "720h"; it rejects what
// the CRD schema rejects (negative or sub-second durations, other words).
func (d *NillableDuration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string: %w", err)
	}
	parsed, err := ParseNillableDuration(s)
	if err != nil {
		return err
	}
	*d = parsed
	return nil
}

// ParseNillableDuration parses "Never" or a duration in whole hours, minutes
// and seconds, such as "720h" or "1h30m".
func ParseNillableDuration(s string) (NillableDuration, error) {
	if !nillableDurationPattern.MatchString(s) {
		return NillableDuration{}, fmt.Errorf("invalid duration %q: want %q or a duration such as \"720h\" or \"30s\"", s, Never)
	}
	if s == Never {
		return NillableDuration{Never: true}, nil
	}
	dur, err := time.ParseDuration(s)
	if err != nil {
		return NillableDuration{}, fmt.Errorf("invalid duration %q: %w", s, err)
	}
	return NillableDuration{Duration: dur}, nil
}

// formatDuration writes d in whole hours, minutes and seconds with zero parts
// left out ("720h", "1h30m", "0s"); negative durations are written as "0s".
func formatDuration(d time.Duration) string {
	if d < time.Second {
		return "0s"
	}
	secs := int64(d / time.Second)
	h, m, s := secs/3600, secs/60%60, secs%60
	var b []byte
	if h > 0 {
		b = strconv.AppendInt(b, h, 10)
		b = append(b, 'h')
	}
	if m > 0 {
		b = strconv.AppendInt(b, m, 10)
		b = append(b, 'm')
	}
	if s > 0 {
		b = strconv.AppendInt(b, s, 10)
		b = append(b, 's')
	}
	return string(b)
}
