package cluster

import (
	"testing"
	"time"

	clusterv1 "github.com/flotilla-dev/flotilla/gen/flotilla/cluster/v1"
)

func TestPodNodeEvent(t *testing.T) {
	pod := func(node string, finished bool) *cachedPod {
		return &cachedPod{model: &clusterv1.Pod{NodeName: node}, finished: finished}
	}
	tests := []struct {
		name     string
		old, cur *cachedPod
		want     string
	}{
		{name: "pending pod appears", cur: pod("", false)},
		{name: "bound pod appears", cur: pod("n1", false), want: "n1"},
		{name: "pod is bound", old: pod("", false), cur: pod("n1", false), want: "n1"},
		{name: "status update on the same node", old: pod("n1", false), cur: pod("n1", false)},
		{name: "pod finishes", old: pod("n1", false), cur: pod("n1", true), want: "n1"},
		{name: "bound pod deleted", old: pod("n1", false), want: "n1"},
		{name: "pending pod deleted", old: pod("", false)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := podNodeEvent(tt.old, tt.cur)
			if got != tt.want || ok != (tt.want != "") {
				t.Errorf("podNodeEvent = %q, %v; want %q", got, ok, tt.want)
			}
		})
	}
}

func TestPodEventsNeverBeforeStart(t *testing.T) {
	start := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	e := newPodEvents(start)
	if got := e.get("n1"); !got.Equal(start) {
		t.Errorf("unknown node = %v, want the watcher's start %v", got, start)
	}
	e.record("n1", start.Add(-time.Hour))
	if got := e.get("n1"); !got.Equal(start) {
		t.Errorf("event before start = %v, want %v", got, start)
	}
	later := start.Add(time.Minute)
	e.record("n1", later)
	e.record("n1", start.Add(30*time.Second)) // out of order: ignored
	if got := e.get("n1"); !got.Equal(later) {
		t.Errorf("get = %v, want %v", got, later)
	}
	e.forget("n1")
	if got := e.get("n1"); !got.Equal(start) {
		t.Errorf("forgotten node = %v, want %v", got, start)
	}
}
