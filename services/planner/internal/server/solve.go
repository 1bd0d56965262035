package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	clusterv1 "github.com/flotilla-dev/flotilla/gen/flotilla/cluster/v1"
	"github.com/flotilla-dev/flotilla/services/planner/internal/consolidation"
	"github.com/flotilla-dev/flotilla/services/planner/internal/provisioning"
	"google.golang.org/protobuf/proto"
)

// solve decodes snap, runs the solver and encodes the plan, whose id is a
// hash of its content: the same answer always has the same id. recheck is
// when the answer changes by itself (zero: never). With disruption the
// disruption solver adds its plans (opts tune it) to the provisioning
// answer, which it builds on: nodes that receive pods are not disrupted.
func solve(ctx context.Context, snap *clusterv1.Snapshot, disruption bool, opts consolidation.Options) (_ *clusterv1.Plan, recheck time.Time, _ error) {
	m, err := decodeSnapshot(snap)
	if err != nil {
		return nil, time.Time{}, err
	}
	plan, err := provisioning.Solve(ctx, m)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("provisioning: %w", err)
	}
	if disruption {
		if err := consolidation.Plan(ctx, m, plan, opts); err != nil {
			return nil, time.Time{}, fmt.Errorf("consolidation: %w", err)
		}
	}
	out := encodePlan(plan)
	out.Id = planID(out)
	return out, plan.RecheckAt, nil
}

func planID(p *clusterv1.Plan) string {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(p)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}
