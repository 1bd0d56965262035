// Package consolidation decides which nodes to take away and which to
// replace: empty nodes, under-utilised nodes whose pods fit elsewhere or on
// fewer or cheaper nodes, drifted and expired nodes, and nodes the cloud is
// about to interrupt. Every decision stays within the NodePool's disruption
// budgets (interruptions excepted), never evicts against a PDB or
// karpenter.sh/do-not-disrupt, and every candidate turned down gets a reason
// in words. Displaced pods are packed by the provisioning solver, run on a
// derived snapshot in which the candidate nodes are gone and their pods
// pending. It is part of the planner's pure solver: model in, disruption
// plans out, deterministic, no clock (the snapshot's Now is the time).
//
// # Contract with the actuator (issue 6)
//
// Executing a DisruptionPlan. For each plan the actuator creates the
// replacements (NodeClaimPlans, idempotent by name), waits until every
// replacement is Initialized, then taints the plan's nodes
// karpenter.sh/disrupted:NoSchedule, drains them through the Eviction API
// and terminates them. A plan without replacements is drained at once. When
// a replacement fails to launch, nothing is drained and the old nodes stay
// (untainted). The planner repeats a plan every round until its nodes are
// being deleted, with the same id and the same replacement names, so a
// repeated plan moves the actuator along; moves are advisory (the
// kube-scheduler places the evicted pods).
//
// Replacements are marked. When the actuator creates a replacement for a
// DisruptionPlan it sets these annotations on the NodeClaim:
//
//	flotilla.dev/replaces:          the plan's node_claims, sorted, comma-separated
//	flotilla.dev/replacement-for:   the plan's id
//	flotilla.dev/disruption-reason: Empty | Underutilized | Drifted | Expired | Interrupted
//
// While a NodeClaim a replacement names still exists, the planner treats the
// disruption as in progress: the replacement is never a disruption
// candidate (a fresh replacement is empty until the drain moves the pods
// over, and must not be removed as empty), the replaced nodes count against
// their NodePool's budget, and the planner re-emits the plan (same id, the
// replacements by their names) until the replaced NodeClaims are deleting.
// A replacement that is being deleted or whose Launched condition is False
// ends that: the old nodes become ordinary candidates again.
//
// The old NodeClaims are marked too: the actuator annotates each with
// flotilla.dev/disruption (the plan's id) when it begins, before any
// replacement exists; the planner counts such a node against its budget
// and plans nothing else for it. When the actuator calls a disruption off
// it removes that annotation and sets flotilla.dev/disruption-called-off-at
// (RFC 3339); the planner then leaves the node alone for CoolDown (five
// minutes, the actuator's default), saying so in a Rejection.
//
// Interruptions. When the actuator learns that an instance will go away
// (spot interruption warning, scheduled change, instance stopping or
// terminated; whether a rebalance recommendation counts is the actuator's
// choice) it marks the NodeClaim with either
//
//	status condition Interrupted=True, reason the event kind
//	  (SpotInterruption, ScheduledChange, InstanceStopping, InstanceTerminated,
//	  RebalanceRecommendation), lastTransitionTime the event time; or
//	annotation flotilla.dev/interrupted: <event kind>
//
// The planner then plans DISRUPTION_REASON_INTERRUPTED for the NodeClaim
// in the next round: replacements for its pods (existing room first),
// ignoring disruption budgets, PDBs and do-not-disrupt (the instance goes
// away regardless), with the budget field saying so. Pods nothing can host
// do not hold the plan back. The actuator may drain the interrupted node
// before the replacements are Ready when the warning's deadline requires it.
//
// Blocking annotations. karpenter.sh/do-not-disrupt: "true" on a pod, its
// Node or its NodeClaim keeps the node from every voluntary disruption
// (empty, under-utilised, drifted, expired).
package consolidation
