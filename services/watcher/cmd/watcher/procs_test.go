package main

import (
	"runtime"
	"testing"
)

func TestSetProcs(t *testing.T) {
	prev := runtime.GOMAXPROCS(0)
	t.Cleanup(func() { runtime.GOMAXPROCS(prev) })
	for _, tc := range []struct {
		name, env string
		procs     int
		want      int
		wantErr   bool
	}{
		{name: "default", procs: defaultProcs, want: 1},
		{name: "three", procs: 3, want: 3},
		{name: "runtime's choice", procs: 0, want: 7},
		{name: "GOMAXPROCS wins", procs: 1, env: "5", want: 7},
		{name: "negative", procs: -1, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("GOMAXPROCS", tc.env)
			runtime.GOMAXPROCS(7) // what the runtime chose at start
			got, err := setProcs(tc.procs)
			if (err != nil) != tc.wantErr {
				t.Fatalf("setProcs(%d) error %v, want error %v", tc.procs, err, tc.wantErr)
			}
			if tc.wantErr {
				return
			}
			if got != tc.want || runtime.GOMAXPROCS(0) != tc.want {
				t.Errorf("setProcs(%d) = %d, in force %d; want %d", tc.procs, got, runtime.GOMAXPROCS(0), tc.want)
			}
		})
	}
}
