// Package v1alpha5 is the brief's Provisioner (group karpenter.k8s.aws,
// version v1alpha5): Karpenter's v1alpha5 Provisioner shape, with its AWS
// provider block, accepted verbatim. [Provisioner.Convert] maps a
// Provisioner onto the karpenter.sh/v1 NodePool and karpenter.k8s.aws/v1
// EC2NodeClass it describes; Flotilla then treats it exactly like them.
//
// +kubebuilder:object:generate=true
// +groupName=karpenter.k8s.aws
package v1alpha5
