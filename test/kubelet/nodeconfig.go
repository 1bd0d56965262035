package kubelet

// NodeConfigMediaType is the Content-Type of the MIME part that carries the
// NodeConfig in an instance's user data.
const NodeConfigMediaType = "application/node.eks.aws"

// NodeConfigAPIVersion is the apiVersion of the NodeConfig document.
const NodeConfigAPIVersion = "node.eks.aws/v1alpha1"

// NodeConfig is the subset of the Amazon Linux 2023 nodeadm NodeConfig that
// the simulated kubelet reads. The actuator produces it; it cannot import this
// module, so the exact document it must write is spelled out here. Field names
// and JSON tags are the contract: copy them verbatim.
//
// The user data of a launched instance is the base64 encoding of a MIME
// multi-part document. The part whose Content-Type is
// "application/node.eks.aws" holds this YAML:
//
//	MIME-Version: 1.0
//	Content-Type: multipart/mixed; boundary="//"
//
//	--//
//	Content-Type: application/node.eks.aws
//
//	apiVersion: node.eks.aws/v1alpha1
//	kind: NodeConfig
//	spec:
//	  cluster:
//	    name: my-cluster
//	    apiServerEndpoint: https://127.0.0.1:6443
//	    certificateAuthority: LS0tLS1CRUdJTi...   # base64 of the CA PEM
//	    cidr: 10.96.0.0/16
//	  kubelet:
//	    config:
//	      maxPods: 17
//	      kubeReserved: {cpu: 70m, memory: 442Mi, ephemeral-storage: 1Gi}
//	      systemReserved: {cpu: 100m, memory: 100Mi, ephemeral-storage: 1Gi}
//	      evictionHard: {memory.available: 100Mi, nodefs.available: 10%}
//	      registerWithTaints:                  # optional, merged with the flag
//	      - {key: example.com/gpu, value: "true", effect: NoSchedule}
//	    flags:
//	    - --node-labels=karpenter.sh/nodepool=default,karpenter.sh/capacity-type=on-demand
//	    - --register-with-taints=karpenter.sh/unregistered:NoExecute,example.com/startup=true:NoSchedule
//	--//--
//
// Labels come from --node-labels (comma-separated key=value), taints from
// --register-with-taints (comma-separated key[=value]:Effect) and from
// config.registerWithTaints. Capacity "pods" is maxPods (110 when absent).
// Allocatable is capacity minus kubeReserved and systemReserved, and, for
// memory and ephemeral-storage, minus evictionHard's memory.available and
// nodefs.available (a quantity or a percentage of capacity).
type NodeConfig struct {
	APIVersion string         `json:"apiVersion"`
	Kind       string         `json:"kind"`
	Spec       NodeConfigSpec `json:"spec"`
}

// NodeConfigSpec is the spec of a NodeConfig.
type NodeConfigSpec struct {
	Cluster ClusterDetails `json:"cluster"`
	Kubelet KubeletOptions `json:"kubelet"`
}

// ClusterDetails tells the node which cluster to join.
type ClusterDetails struct {
	Name              string `json:"name,omitempty"`
	APIServerEndpoint string `json:"apiServerEndpoint,omitempty"`
	// CertificateAuthority is the base64 encoding of the cluster CA's PEM.
	CertificateAuthority string `json:"certificateAuthority,omitempty"`
	CIDR                 string `json:"cidr,omitempty"`
}

// KubeletOptions are the kubelet's configuration file fields and extra flags.
type KubeletOptions struct {
	Config KubeletConfig `json:"config,omitempty"`
	Flags  []string      `json:"flags,omitempty"`
}

// KubeletConfig is the subset of the KubeletConfiguration the simulator uses.
// Resource values are Kubernetes quantities ("70m", "442Mi"); evictionHard
// values may also be percentages ("10%").
type KubeletConfig struct {
	MaxPods            *int32            `json:"maxPods,omitempty"`
	KubeReserved       map[string]string `json:"kubeReserved,omitempty"`
	SystemReserved     map[string]string `json:"systemReserved,omitempty"`
	EvictionHard       map[string]string `json:"evictionHard,omitempty"`
	RegisterWithTaints []Taint           `json:"registerWithTaints,omitempty"`
}

// Taint is a node taint as written in registerWithTaints; it has the JSON
// shape of a core/v1 Taint.
type Taint struct {
	Key    string `json:"key"`
	Value  string `json:"value,omitempty"`
	Effect string `json:"effect"`
}
