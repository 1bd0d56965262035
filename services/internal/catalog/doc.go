// Package catalog is Flotilla's instance catalogue: the EC2 instance types a
// NodeClaim may become, with their capacity, well-known labels and offerings
// (zone × capacity type, with a price).
//
// Two sources build the same shape, []*clusterv1.InstanceType:
//
//   - Region builds the catalogue for a region from facts embedded in the
//     binary (see data/README.md): instance specs, ENI limits, network
//     bandwidth, offerings per zone and on-demand prices. No spot prices are
//     embedded anywhere, so spot offerings carry a synthetic price, a seeded
//     fraction of on-demand, with price_source "synthetic".
//   - ReadCSV reads the planner's --catalog file, one offering per row.
//
// Both name labels and resources as Karpenter does (node.kubernetes.io/...,
// karpenter.k8s.aws/instance-*, nvidia.com/gpu, aws.amazon.com/neuron, ...),
// and both use ParseName to split an instance type name into family,
// category, generation and size.
package catalog
