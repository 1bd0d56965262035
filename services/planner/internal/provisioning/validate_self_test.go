package provisioning_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/flotilla-dev/flotilla/services/planner/internal/model"
	"github.com/flotilla-dev/flotilla/services/planner/internal/provisioning"
)

// TestValidatorCatches breaks good plans on purpose: the validator must
// notice every break, or the other tests prove nothing.
func TestValidatorCatches(t *testing.T) {
	t.Parallel()
	base := func() *model.Snapshot {
		ps := append(pods("web", 4, 500, 512, labels("app", "web"), antiAffinity(model.LabelHostname, sel("app", "web"))),
			pods("zs", 6, 300, 300, labels("app", "zs"), spread(model.LabelZone, 1, true, sel("app", "zs")))...)
		ps = append(ps, pod("big", 3000, 4096))
		s := snapshot(ps)
		s.NodePools[0].Limits = map[string]int64{"cpu": 64_000}
		return s
	}
	tests := []struct {
		name   string
		break_ func(s *model.Snapshot, p *model.Plan)
		want   string
	}{
		{"pod dropped", func(s *model.Snapshot, p *model.Plan) { p.NodeClaims[0].Pods = p.NodeClaims[0].Pods[1:] }, "missing from the plan"},
		{"pod twice", func(s *model.Snapshot, p *model.Plan) {
			p.NodeClaims[1].Pods = append(p.NodeClaims[1].Pods, p.NodeClaims[0].Pods[0])
		}, "is in"},
		{"too small", func(s *model.Snapshot, p *model.Plan) {
			for _, nc := range p.NodeClaims {
				if slices.Contains(nc.Pods, "default/big") {
					nc.InstanceType, nc.InstanceTypeOptions = "t3.medium", []string{"t3.medium"}
					nc.Requirements = nil
				}
			}
		}, "do not fit allocatable"},
		{"wrong price", func(s *model.Snapshot, p *model.Plan) { p.NodeClaims[0].PricePerHour *= 2 }, "cheapest allowed offering"},
		{"total", func(s *model.Snapshot, p *model.Plan) { p.TotalPricePerHour += 1 }, "add up to"},
		{"limit", func(s *model.Snapshot, p *model.Plan) { s.NodePools[0].Limits["cpu"] = 4000 }, "exceeds limit"},
		{"anti-affinity", func(s *model.Snapshot, p *model.Plan) {
			var from, to *model.NodeClaimPlan
			for _, nc := range p.NodeClaims {
				for _, k := range nc.Pods {
					if strings.HasPrefix(k, "default/web") {
						if from == nil {
							from = nc
						} else if to == nil && nc != from {
							to = nc
						}
					}
				}
			}
			for i, k := range from.Pods {
				if strings.HasPrefix(k, "default/web") {
					to.Pods = append(to.Pods, k)
					from.Pods = append(from.Pods[:i], from.Pods[i+1:]...)
					break
				}
			}
		}, "anti-affinity"},
		{"spread", func(s *model.Snapshot, p *model.Plan) {
			var moved []string
			for _, nc := range p.NodeClaims {
				if nc.Zone == "us-east-1a" {
					continue
				}
				keep := nc.Pods[:0]
				for _, k := range nc.Pods {
					if strings.HasPrefix(k, "default/zs") {
						moved = append(moved, k)
					} else {
						keep = append(keep, k)
					}
				}
				nc.Pods = keep
			}
			for _, nc := range p.NodeClaims {
				if nc.Zone == "us-east-1a" {
					nc.Pods = append(nc.Pods, moved...)
					break
				}
			}
		}, "maxSkew"},
		{"bad name", func(s *model.Snapshot, p *model.Plan) { p.NodeClaims[0].Name = "Default_1" }, "is not <nodepool>"},
		{"taint", func(s *model.Snapshot, p *model.Plan) {
			s.NodePools[0].Taints = []model.Taint{{Key: "k", Effect: model.TaintNoSchedule}}
		}, "tolerate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := base()
			p, err := provisioning.Solve(context.Background(), s)
			if err != nil {
				t.Fatal(err)
			}
			if errs := planErrors(s, p); len(errs) > 0 {
				t.Fatalf("good plan rejected: %v", errs)
			}
			tt.break_(s, p)
			errs := planErrors(s, p)
			if !slices.ContainsFunc(errs, func(e string) bool { return strings.Contains(e, tt.want) }) {
				t.Errorf("broken plan: errors %q, want one containing %q", errs, tt.want)
			}
		})
	}
}
