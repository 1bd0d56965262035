package consolidation

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// schedule is a parsed cron schedule: standard five fields (minute, hour,
// day of month, month, day of week) or one of the descriptors @yearly,
// @annually, @monthly, @weekly, @daily, @midnight and @hourly, evaluated in
// UTC as NodePool disruption budgets are.
type schedule struct {
	minute, hour, dom, month, dow uint64
	// domStar and dowStar record an unrestricted day field: when both day
	// fields are restricted a day matching either fires (cron's rule).
	domStar, dowStar bool
}

// errSchedule is returned for a schedule that does not parse.
var errSchedule = errors.New("invalid cron schedule")

var descriptors = map[string]string{
	"@yearly":   "0 0 1 1 *",
	"@annually": "0 0 1 1 *",
	"@monthly":  "0 0 1 * *",
	"@weekly":   "0 0 * * 0",
	"@daily":    "0 0 * * *",
	"@midnight": "0 0 * * *",
	"@hourly":   "0 * * * *",
}

var monthNames = map[string]int{"jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6,
	"jul": 7, "aug": 8, "sep": 9, "oct": 10, "nov": 11, "dec": 12}

var dayNames = map[string]int{"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}

// parseSchedule parses a cron schedule.
func parseSchedule(spec string) (*schedule, error) {
	s := strings.TrimSpace(spec)
	if d, ok := descriptors[strings.ToLower(s)]; ok {
		s = d
	}
	fields := strings.Fields(s)
	if len(fields) != 5 {
		return nil, fmt.Errorf("%q: want 5 fields or a descriptor such as @daily: %w", spec, errSchedule)
	}
	var out schedule
	var err error
	parts := []struct {
		dst      *uint64
		lo, hi   int
		names    map[string]int
		star     *bool
		fieldFor string
	}{
		{&out.minute, 0, 59, nil, nil, "minute"},
		{&out.hour, 0, 23, nil, nil, "hour"},
		{&out.dom, 1, 31, nil, &out.domStar, "day of month"},
		{&out.month, 1, 12, monthNames, nil, "month"},
		{&out.dow, 0, 7, dayNames, &out.dowStar, "day of week"},
	}
	for i, p := range parts {
		var star bool
		if *p.dst, star, err = parseField(fields[i], p.lo, p.hi, p.names); err != nil {
			return nil, fmt.Errorf("%q: %s field: %w", spec, p.fieldFor, err)
		}
		if p.star != nil {
			*p.star = star
		}
	}
	// Sunday is 0 or 7.
	if out.dow&(1<<7) != 0 {
		out.dow = out.dow&^(1<<7) | 1
	}
	return &out, nil
}

// parseField parses one comma-separated cron field into a bit set of the
// values it allows, and reports whether it is unrestricted ("*" or "?").
func parseField(f string, lo, hi int, names map[string]int) (uint64, bool, error) {
	var bits uint64
	star := false
	for _, item := range strings.Split(f, ",") {
		rng, stepText, hasStep := strings.Cut(item, "/")
		step := 1
		if hasStep {
			n, err := strconv.Atoi(stepText)
			if err != nil || n <= 0 {
				return 0, false, fmt.Errorf("step %q: %w", stepText, errSchedule)
			}
			step = n
		}
		var from, to int
		switch {
		case rng == "*" || rng == "?":
			from, to = lo, hi
			if !hasStep {
				star = true
			}
		default:
			a, b, isRange := strings.Cut(rng, "-")
			var err error
			if from, err = fieldValue(a, lo, hi, names); err != nil {
				return 0, false, err
			}
			to = from
			if isRange {
				if to, err = fieldValue(b, lo, hi, names); err != nil {
					return 0, false, err
				}
				if to < from {
					return 0, false, fmt.Errorf("range %q runs backwards: %w", rng, errSchedule)
				}
			} else if hasStep {
				to = hi
			}
		}
		for v := from; v <= to; v += step {
			bits |= 1 << uint(v)
		}
	}
	return bits, star, nil
}

func fieldValue(s string, lo, hi int, names map[string]int) (int, error) {
	if v, ok := names[strings.ToLower(s)]; ok {
		return v, nil
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < lo || v > hi {
		return 0, fmt.Errorf("value %q not in %d-%d: %w", s, lo, hi, errSchedule)
	}
	return v, nil
}

func (s *schedule) dayMatches(t time.Time) bool {
	dom := s.dom&(1<<uint(t.Day())) != 0
	dow := s.dow&(1<<uint(t.Weekday())) != 0
	if s.domStar || s.dowStar {
		return dom && dow
	}
	return dom || dow
}

// searchYears bounds the search for the next firing: a schedule that does
// not fire within this many years (such as 30 February) never fires.
const searchYears = 5

// next returns the first time after t (strictly) the schedule fires, in
// UTC, and false when it never does.
func (s *schedule) next(t time.Time) (time.Time, bool) {
	t = t.UTC().Truncate(time.Minute).Add(time.Minute)
	limit := t.AddDate(searchYears, 0, 0)
	for t.Before(limit) {
		if s.month&(1<<uint(t.Month())) == 0 {
			t = time.Date(t.Year(), t.Month()+1, 1, 0, 0, 0, 0, time.UTC)
			continue
		}
		if !s.dayMatches(t) {
			t = time.Date(t.Year(), t.Month(), t.Day()+1, 0, 0, 0, 0, time.UTC)
			continue
		}
		if s.hour&(1<<uint(t.Hour())) == 0 {
			t = time.Date(t.Year(), t.Month(), t.Day(), t.Hour()+1, 0, 0, 0, time.UTC)
			continue
		}
		if s.minute&(1<<uint(t.Minute())) == 0 {
			t = t.Add(time.Minute)
			continue
		}
		return t, true
	}
	return time.Time{}, false
}

// window says whether a schedule's window of length d holds now: it does
// when the schedule fired at some f with f <= now < f+d. It returns when the
// answer changes next: the end of the current window (the window may be
// extended by a later firing; the caller asks again then), or the next
// firing. A zero change means never.
func (s *schedule) window(now time.Time, d time.Duration) (active bool, change time.Time) {
	if d <= 0 {
		next, _ := s.next(now)
		return false, next
	}
	// The first firing after now-d is the one whose window may hold now.
	f, ok := s.next(now.Add(-d))
	if !ok {
		return false, time.Time{}
	}
	if !f.After(now) {
		return true, f.Add(d)
	}
	return false, f
}
