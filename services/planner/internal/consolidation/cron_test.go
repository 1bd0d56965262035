package consolidation

import (
	"errors"
	"testing"
	"time"
)

func at(s string) time.Time {
	t, err := time.Parse("2006-01-02 15:04", s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestScheduleNext(t *testing.T) {
	t.Parallel()
	tests := []struct {
		spec, after, want string
	}{
		{"@hourly", "2026-11-27 12:00", "2026-11-27 13:00"},
		{"@hourly", "2026-11-27 12:59", "2026-11-27 13:00"},
		{"@daily", "2026-11-27 12:00", "2026-11-28 00:00"},
		{"@midnight", "2026-12-31 23:59", "2027-01-01 00:00"},
		{"@weekly", "2026-11-27 12:00", "2026-11-29 00:00"}, // a Friday; Sunday next
		{"@monthly", "2026-11-27 12:00", "2026-12-01 00:00"},
		{"@yearly", "2026-11-27 12:00", "2027-01-01 00:00"},
		{"@annually", "2026-11-27 12:00", "2027-01-01 00:00"},
		{"*/15 * * * *", "2026-11-27 12:07", "2026-11-27 12:15"},
		{"0 9 * * 1-5", "2026-11-27 12:00", "2026-11-30 09:00"}, // Friday noon → Monday
		{"0 9 * * mon-fri", "2026-11-27 08:00", "2026-11-27 09:00"},
		{"30 2 1,15 * *", "2026-11-02 00:00", "2026-11-15 02:30"},
		{"0 0 * feb *", "2026-11-27 12:00", "2027-02-01 00:00"},
		{"0 0 29 2 *", "2026-11-27 12:00", "2028-02-29 00:00"},
		{"0 22 * * 7", "2026-11-27 12:00", "2026-11-29 22:00"}, // 7 is Sunday too
		{"5-10/5 3 * * *", "2026-11-27 12:00", "2026-11-28 03:05"},
		// Both day fields restricted: either matches.
		{"0 0 1 * fri", "2026-11-27 12:00", "2026-12-01 00:00"},
		{"0 0 13 * fri", "2026-11-20 12:00", "2026-11-27 00:00"},
		{"0 12 * * ?", "2026-11-27 12:00", "2026-11-28 12:00"},
	}
	for _, tt := range tests {
		t.Run(tt.spec+" after "+tt.after, func(t *testing.T) {
			t.Parallel()
			s, err := parseSchedule(tt.spec)
			if err != nil {
				t.Fatal(err)
			}
			got, ok := s.next(at(tt.after))
			if !ok || !got.Equal(at(tt.want)) {
				t.Errorf("next = %v, %t; want %s", got, ok, tt.want)
			}
		})
	}
}

func TestScheduleNeverFires(t *testing.T) {
	t.Parallel()
	s, err := parseSchedule("0 0 30 2 *")
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := s.next(at("2026-11-27 12:00")); ok {
		t.Errorf("30 February fired at %v", got)
	}
}

func TestParseScheduleRejects(t *testing.T) {
	t.Parallel()
	for _, spec := range []string{"", "* * * *", "60 * * * *", "* 24 * * *", "* * 0 * *", "* * * 13 *", "* * * * 8",
		"*/0 * * * *", "5-1 * * * *", "@fortnightly", "a * * * *", "1,,2 * * * *", "TZ=UTC 0 0 * * *"} {
		if _, err := parseSchedule(spec); !errors.Is(err, errSchedule) {
			t.Errorf("parseSchedule(%q) err = %v, want errSchedule", spec, err)
		}
	}
}

func TestScheduleWindow(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		spec       string
		d          time.Duration
		now        string
		wantActive bool
		wantChange string
	}{
		{"inside a daily 8h window", "@daily", 8 * time.Hour, "2026-11-27 05:00", true, "2026-11-27 08:00"},
		{"at the window's start", "@daily", 8 * time.Hour, "2026-11-27 00:00", true, "2026-11-27 08:00"},
		{"at the window's end", "@daily", 8 * time.Hour, "2026-11-27 08:00", false, "2026-11-28 00:00"},
		{"after the window", "@daily", 8 * time.Hour, "2026-11-27 12:00", false, "2026-11-28 00:00"},
		{"weekday business hours, Friday afternoon", "0 9 * * 1-5", 8 * time.Hour, "2026-11-27 15:30", true, "2026-11-27 17:00"},
		{"weekday business hours, Saturday", "0 9 * * 1-5", 8 * time.Hour, "2026-11-28 10:00", false, "2026-11-30 09:00"},
		{"a window longer than the period is always on", "@hourly", 2 * time.Hour, "2026-11-27 12:30", true, "2026-11-27 13:00"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, err := parseSchedule(tt.spec)
			if err != nil {
				t.Fatal(err)
			}
			active, change := s.window(at(tt.now), tt.d)
			if active != tt.wantActive || !change.Equal(at(tt.wantChange)) {
				t.Errorf("window(%s) = %t, %v; want %t, %s", tt.now, active, change, tt.wantActive, tt.wantChange)
			}
		})
	}
}
