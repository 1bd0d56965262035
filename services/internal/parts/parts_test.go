package parts

import (
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	clusterv1 "github.com/flotilla-dev/flotilla/gen/flotilla/cluster/v1"
)

// TestSplit: every repeated field is split in order, the scalars go with
// the first part, and an empty snapshot is one part.
func TestSplit(t *testing.T) {
	t.Parallel()
	s := &clusterv1.Snapshot{Region: "eu-west-1", Now: timestamppb.New(time.Unix(1_700_000_000, 0))}
	for i := range 3 {
		s.Pods = append(s.Pods, &clusterv1.Pod{Name: fmt.Sprint("p", i)})
		s.Nodes = append(s.Nodes, &clusterv1.Node{Name: fmt.Sprint("n", i)})
	}
	s.NodePools = []*clusterv1.NodePool{{Name: "default"}}
	got := Split(s, 2)
	if len(got) != 4 {
		t.Fatalf("%d parts of 7 objects by 2, want 4", len(got))
	}
	whole := &clusterv1.Snapshot{}
	for i, p := range got {
		if i > 0 && (p.GetRegion() != "" || p.GetNow() != nil) {
			t.Errorf("part %d carries scalars", i)
		}
		proto.Merge(whole, p)
	}
	if !proto.Equal(whole, s) {
		t.Errorf("merged = %v, want %v", whole, s)
	}
	if got := Split(&clusterv1.Snapshot{Region: "r"}, 2); len(got) != 1 || got[0].GetRegion() != "r" {
		t.Errorf("Split(empty) = %v, want one part with the region", got)
	}
}

// TestCount counts the objects of every repeated field.
func TestCount(t *testing.T) {
	t.Parallel()
	s := &clusterv1.Snapshot{Region: "r", Pods: make([]*clusterv1.Pod, 3), NodeClaims: make([]*clusterv1.NodeClaim, 2)}
	for i := range s.Pods {
		s.Pods[i] = &clusterv1.Pod{}
	}
	for i := range s.NodeClaims {
		s.NodeClaims[i] = &clusterv1.NodeClaim{}
	}
	if got := Count(s); got != 5 {
		t.Errorf("Count = %d, want 5", got)
	}
}
