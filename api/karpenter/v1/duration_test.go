package v1_test

import (
	"encoding/json"
	"testing"
	"time"

	karpv1 "github.com/flotilla-dev/flotilla/api/karpenter/v1"
)

func TestNillableDurationJSON(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    karpv1.NillableDuration
		wantOut string
		finite  bool
	}{
		{in: `"720h"`, want: karpv1.NillableDuration{Duration: 720 * time.Hour}, wantOut: `"720h"`, finite: true},
		{in: `"Never"`, want: karpv1.NillableDuration{Never: true}, wantOut: `"Never"`},
		{in: `"0s"`, want: karpv1.NillableDuration{}, wantOut: `"0s"`, finite: true},
		{in: `"1h30m"`, want: karpv1.NillableDuration{Duration: 90 * time.Minute}, wantOut: `"1h30m"`, finite: true},
		{in: `"90m"`, want: karpv1.NillableDuration{Duration: 90 * time.Minute}, wantOut: `"1h30m"`, finite: true},
		{in: `"1h0m45s"`, want: karpv1.NillableDuration{Duration: time.Hour + 45*time.Second}, wantOut: `"1h45s"`, finite: true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			var got karpv1.NillableDuration
			if err := json.Unmarshal([]byte(tc.in), &got); err != nil {
				t.Fatalf("Unmarshal(%s): %v", tc.in, err)
			}
			if !got.Equal(tc.want) {
				t.Errorf("Unmarshal(%s) = %+v, want %+v", tc.in, got, tc.want)
			}
			d, ok := got.Get()
			if ok != tc.finite || d != tc.want.Duration {
				t.Errorf("Get() = %v, %v; want %v, %v", d, ok, tc.want.Duration, tc.finite)
			}
			out, err := json.Marshal(got)
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			if string(out) != tc.wantOut {
				t.Errorf("Marshal = %s, want %s", out, tc.wantOut)
			}
		})
	}
}

func TestNillableDurationRejectsWhatTheSchemaRejects(t *testing.T) {
	t.Parallel()
	for _, in := range []string{`""`, `"never"`, `"1.5h"`, `"500ms"`, `"-1h"`, `"1d"`, `"forever"`, `3600`, `null`} {
		t.Run(in, func(t *testing.T) {
			t.Parallel()
			var got karpv1.NillableDuration
			if err := json.Unmarshal([]byte(in), &got); err == nil {
				t.Errorf("Unmarshal(%s) = %+v, want an error", in, got)
			}
		})
	}
}

func TestNillableDurationField(t *testing.T) {
	t.Parallel()
	type holder struct {
		D *karpv1.NillableDuration `json:"d,omitempty"`
	}
	tests := []struct {
		name string
		in   holder
		want string
	}{
		{name: "unset is omitted", in: holder{}, want: `{}`},
		{name: "never", in: holder{D: karpv1.NeverDuration()}, want: `{"d":"Never"}`},
		{name: "zero is kept", in: holder{D: karpv1.NewDuration(0)}, want: `{"d":"0s"}`},
		{name: "sub-second parts are dropped", in: holder{D: karpv1.NewDuration(1500 * time.Millisecond)}, want: `{"d":"1s"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out, err := json.Marshal(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if string(out) != tc.want {
				t.Errorf("Marshal = %s, want %s", out, tc.want)
			}
		})
	}
}

func TestNillableDurationEqual(t *testing.T) {
	t.Parallel()
	never := karpv1.NillableDuration{Never: true}
	if !never.Equal(karpv1.NillableDuration{Never: true, Duration: time.Hour}) {
		t.Error("two Never values with different leftover durations should be equal")
	}
	if never.Equal(karpv1.NillableDuration{}) {
		t.Error("Never should not equal 0s")
	}
	if (karpv1.NillableDuration{Duration: time.Minute}).Equal(karpv1.NillableDuration{Duration: time.Second}) {
		t.Error("1m should not equal 1s")
	}
}
