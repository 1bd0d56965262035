// Package snapshot converts Kubernetes objects (Pods, Nodes, DaemonSets,
// PodDisruptionBudgets, and the NodePool, NodeClaim, EC2NodeClass and
// Provisioner custom resources) into Flotilla's cluster model
// (flotilla.cluster.v1), which is what the planner reads.
//
// Quantities become base units: cpu in millicores, memory and storage in
// bytes, everything else a count. Conversion errors name the field by its
// JSON path (*FieldError) inside an *ObjectError naming the object.
//
// The watcher converts objects from its informer caches; the planner's
// what-if command reads kubectl output and NodePool YAML through FromFiles,
// whose decoding is strict: unknown fields, values of the wrong type and
// malformed quantities are errors naming the file, the object, the field
// and, where possible, the line.
//
// Pods nominated to a NodeClaim in flight are recorded on the NodeClaim
// (see AnnotationNominatedPods and InFlight), not on the pods.
package snapshot
