// Package v1 is the karpenter.sh/v1 API that Flotilla serves: NodePool (a
// template and the limits, budgets and disruption settings for a group of
// nodes) and NodeClaim (a request for one node, from launch to termination),
// plus the well-known labels, annotations, taints, finalizers and status
// condition types that Flotilla shares with Karpenter.
//
// The types follow the JSON shape of Karpenter's v1 API, so NodePool
// manifests written for Karpenter apply unchanged. Validation lives in the
// generated CRD schema (OpenAPI and CEL rules); [IsRestrictedLabel] and
// [NodePool.SetDefaults] repeat the parts Go callers need when they read
// manifests without an API server.
//
// +kubebuilder:object:generate=true
// +groupName=karpenter.sh
package v1
