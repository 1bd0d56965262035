// Package v1 is the karpenter.k8s.aws/v1 API that Flotilla serves:
// EC2NodeClass, the AWS side of a NodePool (subnets, security groups, AMIs,
// instance profile, tags, kubelet settings, block devices, metadata options
// and the SQS queue for spot interruption messages), with the EC2 tag keys
// Flotilla puts on what it launches.
//
// +kubebuilder:object:generate=true
// +groupName=karpenter.k8s.aws
package v1
