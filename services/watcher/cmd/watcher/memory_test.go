package main

import (
	"math"
	"runtime/debug"
	"testing"
)

func TestSetMemoryLimit(t *testing.T) {
	prev := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(prev) })
	for _, tc := range []struct {
		name, limit, env string
		want             int64
		wantErr          bool
	}{
		{name: "default", limit: defaultMemoryLimit, want: 250 << 20},
		{name: "gigabytes", limit: "1Gi", want: 1 << 30},
		{name: "none", limit: "0", want: math.MaxInt64},
		{name: "GOMEMLIMIT wins", limit: "250Mi", env: "100MiB", want: math.MaxInt64},
		{name: "not a quantity", limit: "lots", wantErr: true},
		{name: "negative", limit: "-1Mi", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("GOMEMLIMIT", tc.env)
			debug.SetMemoryLimit(math.MaxInt64)
			got, err := setMemoryLimit(tc.limit)
			if (err != nil) != tc.wantErr {
				t.Fatalf("setMemoryLimit(%q) error %v, want error %v", tc.limit, err, tc.wantErr)
			}
			if tc.wantErr {
				return
			}
			if got != tc.want || debug.SetMemoryLimit(-1) != tc.want {
				t.Errorf("setMemoryLimit(%q) = %d, in force %d; want %d", tc.limit, got, debug.SetMemoryLimit(-1), tc.want)
			}
		})
	}
}
