package server

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	clusterv1 "github.com/flotilla-dev/flotilla/gen/flotilla/cluster/v1"
	plannerv1 "github.com/flotilla-dev/flotilla/gen/flotilla/planner/v1"
	"github.com/flotilla-dev/flotilla/services/planner/internal/consolidation"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// underusedSnapshot is two t3.large nodes, each running one pod that would
// fit beside the other: consolidation deletes one.
func underusedSnapshot() *clusterv1.Snapshot {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	long := timestamppb.New(now.Add(-time.Hour))
	s := &clusterv1.Snapshot{
		Region: "us-east-1", Now: timestamppb.New(now),
		NodeClasses: []*clusterv1.NodeClass{{Name: "default", Ready: true}},
		NodePools: []*clusterv1.NodePool{{Name: "default", Ready: true, NodeClass: "default",
			Disruption: &clusterv1.Disruption{ConsolidationPolicy: "WhenEmptyOrUnderutilized", ConsolidateAfter: durationpb.New(30 * time.Second),
				Budgets: []*clusterv1.DisruptionBudget{{Nodes: "100%"}}}}},
		InstanceTypes: []*clusterv1.InstanceType{{Name: "t3.large", Arch: "amd64",
			Capacity:  &clusterv1.Resources{CpuMillis: 2000, MemoryBytes: 8 << 30, Pods: 35},
			Offerings: []*clusterv1.Offering{{Zone: "us-east-1a", CapacityType: "on-demand", PricePerHour: 0.0832, Available: true}}}},
	}
	for _, n := range []string{"a", "b"} {
		s.Nodes = append(s.Nodes, &clusterv1.Node{Name: n, NodeClaim: n, Ready: true, Created: long, LastPodEvent: long, PricePerHour: 0.0832,
			Labels: map[string]string{"karpenter.sh/nodepool": "default", "node.kubernetes.io/instance-type": "t3.large", "topology.kubernetes.io/zone": "us-east-1a",
				"karpenter.sh/capacity-type": "on-demand", "kubernetes.io/arch": "amd64", "kubernetes.io/os": "linux", "kubernetes.io/hostname": n},
			Capacity:    &clusterv1.Resources{CpuMillis: 2000, MemoryBytes: 8 << 30, Pods: 35},
			Allocatable: &clusterv1.Resources{CpuMillis: 1930, MemoryBytes: 6 << 30, Pods: 35}})
		s.NodeClaims = append(s.NodeClaims, &clusterv1.NodeClaim{Name: n, NodePool: "default", NodeClass: "default", NodeName: n, InstanceType: "t3.large",
			Zone: "us-east-1a", CapacityType: "on-demand", Created: long, PricePerHour: 0.0832,
			Conditions: []*clusterv1.Condition{{Type: "Initialized", Status: "True"}}})
		s.Pods = append(s.Pods, &clusterv1.Pod{Namespace: "shop", Name: fmt.Sprintf("web-%s", n), NodeName: n, Phase: "Running",
			OwnerKind: "ReplicaSet", OwnerName: "web", Labels: map[string]string{"app": "web"},
			Containers: []*clusterv1.Container{{Name: "app", Requests: &clusterv1.Resources{CpuMillis: 500, MemoryBytes: 1 << 30}}}})
	}
	return s
}

func TestPlanConsolidatesUnderusedNodes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		opts       []Option
		disruption bool
		want       int
		wantReject string
	}{
		{"disruption asked", nil, true, 1, ""},
		{"disruption not asked", nil, false, 0, ""},
		{"a threshold the savings miss", []Option{WithDisruption(consolidation.Options{MinSavingsPerHour: 1})}, true, 0, "the $1.0000/h minimum"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := New(slog.New(slog.NewTextHandler(io.Discard, nil)), nil, "us-east-1", tt.opts...)
			resp, err := p.Plan(context.Background(), &plannerv1.PlanRequest{Snapshot: underusedSnapshot(), Disruption: tt.disruption})
			if err != nil {
				t.Fatal(err)
			}
			if got := len(resp.GetDisruptions()); got != tt.want {
				t.Fatalf("%d disruptions, want %d: %v", got, tt.want, resp.GetDisruptions())
			}
			for _, d := range resp.GetDisruptions() {
				if d.GetReason() != clusterv1.DisruptionReason_DISRUPTION_REASON_UNDERUTILIZED || len(d.GetNodeClaims()) != 1 ||
					d.GetBudget() == "" || len(d.GetMoves()) != 1 || d.GetSavingsPerHour() <= 0 {
					t.Errorf("disruption %v", d)
				}
			}
			if tt.wantReject != "" {
				found := false
				for _, r := range resp.GetRejections() {
					found = found || strings.Contains(r.GetReason(), tt.wantReject)
				}
				if !found {
					t.Errorf("rejections %v do not mention %q", resp.GetRejections(), tt.wantReject)
				}
			}
		})
	}
}
