package snapshot

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clusterv1 "github.com/flotilla-dev/flotilla/gen/flotilla/cluster/v1"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"
)

const podsJSON = `{
    "apiVersion": "v1",
    "items": [
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "creationTimestamp": "2026-01-02T03:04:05Z",
                "labels": {"app": "web"},
                "name": "web-1",
                "namespace": "default",
                "ownerReferences": [{"apiVersion": "apps/v1", "controller": true, "kind": "ReplicaSet", "name": "web-5d8", "uid": "rs"}],
                "resourceVersion": "10",
                "uid": "u1"
            },
            "spec": {
                "containers": [{"image": "nginx", "name": "web", "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}],
                "schedulerName": "default-scheduler",
                "tolerations": [{"effect": "NoExecute", "key": "node.kubernetes.io/not-ready", "operator": "Exists", "tolerationSeconds": 300}]
            },
            "status": {
                "conditions": [{"lastProbeTime": null, "lastTransitionTime": "2026-01-02T03:04:06Z", "message": "0/3 nodes are available", "reason": "Unschedulable", "status": "False", "type": "PodScheduled"}],
                "phase": "Pending",
                "qosClass": "Burstable"
            }
        },
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "done", "namespace": "default", "uid": "u2"},
            "spec": {"containers": [{"name": "c"}], "nodeName": "n1"},
            "status": {"phase": "Succeeded"}
        },
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "db-0", "namespace": "data", "uid": "u3"},
            "spec": {"containers": [{"name": "c", "resources": {"limits": {"cpu": "500m"}}}], "nodeName": "n1"},
            "status": {"phase": "Running"}
        }
    ],
    "kind": "List",
    "metadata": {"resourceVersion": ""}
}`

const nodesJSON = `{"apiVersion": "v1", "kind": "List", "metadata": {}, "items": [
  {"apiVersion": "v1", "kind": "Node",
   "metadata": {"name": "n1", "labels": {"node.kubernetes.io/instance-type": "m5.large", "topology.kubernetes.io/zone": "us-east-1a"}},
   "spec": {"providerID": "aws:///us-east-1a/i-1"},
   "status": {"allocatable": {"cpu": "1930m", "memory": "7Gi", "pods": "29"}, "capacity": {"cpu": "2", "memory": "8Gi", "pods": "29"},
              "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "ok", "lastHeartbeatTime": "2026-01-02T03:04:05Z", "lastTransitionTime": "2026-01-02T03:04:05Z"}],
              "nodeInfo": {"architecture": "amd64", "bootID": "", "containerRuntimeVersion": "", "kernelVersion": "", "kubeProxyVersion": "", "kubeletVersion": "v1.37.2", "machineID": "", "operatingSystem": "linux", "osImage": "", "systemUUID": ""}}}
]}`

const daemonSetsJSON = `{"apiVersion": "v1", "kind": "List", "metadata": {}, "items": [
  {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "proxy", "namespace": "kube-system"},
   "spec": {"selector": {"matchLabels": {"k8s-app": "proxy"}},
            "template": {"metadata": {"labels": {"k8s-app": "proxy"}},
                         "spec": {"containers": [{"name": "p", "image": "proxy", "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]}}},
   "status": {"currentNumberScheduled": 1, "desiredNumberScheduled": 1, "numberMisscheduled": 0, "numberReady": 1}}
]}`

const nodePoolsYAML = `# Pools for the what-if question.
apiVersion: karpenter.sh/v1
kind: NodePool
metadata:
  name: general
spec:
  template:
    spec:
      requirements:
        - key: karpenter.sh/capacity-type
          operator: In
          values: ["spot", "on-demand"]
      nodeClassRef:
        group: karpenter.k8s.aws
        kind: EC2NodeClass
        name: general
  limits:
    cpu: "1000"
---
apiVersion: karpenter.k8s.aws/v1
kind: EC2NodeClass
metadata:
  name: general
spec:
  amiSelectorTerms:
    - alias: al2023@latest
  subnetSelectorTerms:
    - tags:
        karpenter.sh/discovery: my-cluster
  securityGroupSelectorTerms:
    - tags:
        karpenter.sh/discovery: my-cluster
---
apiVersion: karpenter.k8s.aws/v1alpha5
kind: Provisioner
metadata:
  name: default
spec:
  requirements:
    - key: "node.kubernetes.io/instance-type"
      operator: In
      values: ["t3.medium", "t3.large"]
  limits:
    resources:
      cpu: "100"
      memory: "200Gi"
  provider:
    subnetSelector:
      karpenter.sh/discovery: "my-cluster"
    securityGroupSelector:
      karpenter.sh/discovery: "my-cluster"
`

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestFromFiles(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 2, 3, 4, 5, 6, 0, time.UTC)
	snap, err := FromFiles(Files{
		Pods:       writeFile(t, "pods.json", podsJSON),
		Nodes:      writeFile(t, "nodes.json", nodesJSON),
		DaemonSets: writeFile(t, "ds.json", daemonSetsJSON),
		NodePools:  writeFile(t, "pools.yaml", nodePoolsYAML),
		Now:        now,
	})
	if err != nil {
		t.Fatalf("FromFiles: %v", err)
	}
	if got := snap.GetNow().AsTime(); !got.Equal(now) {
		t.Errorf("now = %v, want %v", got, now)
	}
	var pods []string
	for _, p := range snap.GetPods() {
		pods = append(pods, p.GetNamespace()+"/"+p.GetName())
	}
	if diff := cmp.Diff([]string{"default/web-1", "data/db-0"}, pods); diff != "" {
		t.Errorf("pods (finished ones left out) mismatch (-want +got):\n%s", diff)
	}
	web := snap.GetPods()[0]
	if !web.GetUnschedulable() || web.GetOwnerKind() != "ReplicaSet" || web.GetContainers()[0].GetRequests().GetCpuMillis() != 1000 {
		t.Errorf("web-1 converted as %v", web)
	}
	if got := snap.GetPods()[1].GetContainers()[0].GetRequests().GetCpuMillis(); got != 500 {
		t.Errorf("db-0 cpu request from its limit = %d, want 500", got)
	}
	wantNode := &clusterv1.Node{
		Name: "n1", ProviderId: "aws:///us-east-1a/i-1", Ready: true,
		Labels:      map[string]string{"node.kubernetes.io/instance-type": "m5.large", "topology.kubernetes.io/zone": "us-east-1a"},
		Capacity:    &clusterv1.Resources{CpuMillis: 2000, MemoryBytes: 8 << 30, Pods: 29},
		Allocatable: &clusterv1.Resources{CpuMillis: 1930, MemoryBytes: 7 << 30, Pods: 29},
	}
	if diff := cmp.Diff([]*clusterv1.Node{wantNode}, snap.GetNodes(), protocmp.Transform()); diff != "" {
		t.Errorf("nodes mismatch (-want +got):\n%s", diff)
	}
	if len(snap.GetDaemonSets()) != 1 || snap.GetDaemonSets()[0].GetTemplate().GetContainers()[0].GetRequests().GetMemoryBytes() != 64<<20 {
		t.Errorf("daemonsets: %v", snap.GetDaemonSets())
	}
	pools := map[string]*clusterv1.NodePool{}
	for _, p := range snap.GetNodePools() {
		pools[p.GetName()] = p
	}
	if p := pools["general"]; p == nil || p.GetLimits()["cpu"] != 1_000_000 || !p.GetReady() || p.GetSourceKind() != "NodePool" {
		t.Errorf("NodePool general converted as %v", p)
	}
	prov := pools["default"]
	if prov == nil || prov.GetSourceKind() != "Provisioner" || prov.GetLimits()["cpu"] != 100_000 || prov.GetLimits()["memory"] != 200<<30 || prov.GetNodeClass() != "default" || !prov.GetReady() {
		t.Fatalf("Provisioner default converted as %v", prov)
	}
	var types []string
	for _, r := range prov.GetRequirements() {
		if r.GetKey() == "node.kubernetes.io/instance-type" {
			types = r.GetValues()
		}
	}
	if diff := cmp.Diff([]string{"t3.medium", "t3.large"}, types); diff != "" {
		t.Errorf("Provisioner instance types mismatch (-want +got):\n%s", diff)
	}
	var classes []string
	for _, c := range snap.GetNodeClasses() {
		classes = append(classes, c.GetName())
	}
	if diff := cmp.Diff([]string{"general", "default"}, classes); diff != "" {
		t.Errorf("node classes mismatch (-want +got):\n%s", diff)
	}
}

func TestDecodeErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		file    string
		content string
		decode  func(file string, data []byte) error
		// want are substrings of the error; line is the line the error
		// must report (0: not checked).
		want []string
		line int
	}{
		{
			name: "unknown field in a pod", file: "pods.json",
			content: strings.Replace(podsJSON, `"schedulerName"`, `"schedulerNme"`, 1),
			decode:  podsDecoder,
			want:    []string{"pods.json:", "items[0] Pod default/web-1", "spec.schedulerNme: unknown field"},
			line:    18,
		},
		{
			name: "malformed quantity in a pod", file: "pods.json",
			content: strings.Replace(podsJSON, `"cpu": "1"`, `"cpu": "1 core"`, 1),
			decode:  podsDecoder,
			want:    []string{"items[0] Pod default/web-1", "spec.containers[0].resources.requests[cpu]", "quantities must match"},
			line:    17,
		},
		{
			name: "wrong type in a node", file: "nodes.json",
			content: strings.Replace(nodesJSON, `"providerID": "aws:///us-east-1a/i-1"`, `"providerID": 7`, 1),
			decode:  nodesDecoder,
			want:    []string{"items[0] Node n1", "spec.providerID: want string, got number"},
			line:    4,
		},
		{
			name: "invalid JSON", file: "pods.json",
			content: "{\n  \"items\": [\n   }\n",
			decode:  podsDecoder,
			want:    []string{"pods.json:3: invalid JSON"},
		},
		{
			name: "not a list of pods", file: "pods.json",
			content: `{"apiVersion": "v1", "kind": "NodeList", "items": []}`,
			decode:  podsDecoder,
			want:    []string{"kind: want List, PodList or Pod"},
		},
		{
			name: "wrong item kind", file: "ds.json",
			content: `{"apiVersion": "v1", "kind": "List", "items": [{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}}]}`,
			decode:  daemonSetsDecoder,
			want:    []string{"items[0] Pod x: kind: want DaemonSet"},
		},
		{
			name: "negative request in a daemonset", file: "ds.json",
			content: strings.Replace(daemonSetsJSON, `"cpu": "100m"`, `"cpu": "-100m"`, 1),
			decode:  daemonSetsDecoder,
			want:    []string{"items[0] DaemonSet kube-system/proxy", "spec.template.spec.containers[0].resources.requests[cpu]: quantity -100m is negative"},
			line:    5,
		},
		{
			name: "unknown field in a NodePool with its line", file: "pools.yaml",
			content: strings.Replace(nodePoolsYAML, "          operator: In\n", "          operator: In\n          minValue: 2\n", 1),
			decode:  nodePoolsDecoder,
			want:    []string{"pools.yaml:12: document 1 NodePool general: spec.template.spec.requirements[0].minValue: unknown field"},
			line:    12,
		},
		{
			name: "malformed limit in a Provisioner", file: "pools.yaml",
			content: strings.Replace(nodePoolsYAML, `cpu: "100"`, `cpu: "lots"`, 1),
			decode:  nodePoolsDecoder,
			want:    []string{"document 3 Provisioner default", "spec.limits.resources[cpu]"},
			line:    45,
		},
		{
			name: "bad operator in a NodePool", file: "pools.yaml",
			content: strings.Replace(nodePoolsYAML, "operator: In\n          values: [\"spot\"", "operator: Near\n          values: [\"spot\"", 1),
			decode:  nodePoolsDecoder,
			want:    []string{"document 1 NodePool general", "spec.template.spec.requirements[0].operator", `"Near"`},
			line:    11,
		},
		{
			name: "YAML syntax error", file: "pools.yaml",
			content: "apiVersion: karpenter.sh/v1\nkind: NodePool\n---\nmetadata:\n  name: [x\n",
			decode:  nodePoolsDecoder,
			want:    []string{"pools.yaml:", "document 2", "invalid YAML"},
		},
		{
			name: "unknown kind", file: "pools.yaml",
			content: "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n",
			decode:  nodePoolsDecoder,
			want:    []string{"document 1 ConfigMap x: kind: want NodePool, EC2NodeClass or Provisioner"},
		},
		{
			name: "wrong apiVersion", file: "pools.yaml",
			content: "apiVersion: karpenter.sh/v1beta1\nkind: NodePool\nmetadata:\n  name: x\n",
			decode:  nodePoolsDecoder,
			want:    []string{"NodePool x: apiVersion: want karpenter.sh/v1"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.decode(tc.file, []byte(tc.content))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			var oe *ObjectError
			if !errors.As(err, &oe) {
				t.Fatalf("error %T is not an *ObjectError", err)
			}
			if tc.line != 0 && oe.Line != tc.line {
				t.Errorf("line = %d, want %d (%v)", oe.Line, tc.line, err)
			}
		})
	}
}

func podsDecoder(file string, data []byte) error {
	_, err := PodsFromJSON(file, data)
	return err
}

func nodesDecoder(file string, data []byte) error {
	_, err := NodesFromJSON(file, data)
	return err
}

func daemonSetsDecoder(file string, data []byte) error {
	_, err := DaemonSetsFromJSON(file, data)
	return err
}

func nodePoolsDecoder(file string, data []byte) error {
	_, _, err := NodePoolsFromYAML(file, data)
	return err
}

func FuzzDecoders(f *testing.F) {
	f.Add(podsJSON, 0)
	f.Add(nodesJSON, 1)
	f.Add(daemonSetsJSON, 2)
	f.Add(nodePoolsYAML, 3)
	f.Add(`{"kind":"List","items":[{"kind":"Pod","spec":{"containers":[{"resources":{"requests":{"cpu":"1e30"}}}]}}]}`, 0)
	f.Add("kind: NodePool\nspec:\n  limits:\n    cpu: 1e400\n", 3)
	f.Fuzz(func(t *testing.T, data string, which int) {
		decoders := []func(string, []byte) error{podsDecoder, nodesDecoder, daemonSetsDecoder, nodePoolsDecoder}
		d := decoders[uint(which)%uint(len(decoders))]
		// No panic; errors name the file.
		if err := d("in", []byte(data)); err != nil && !strings.HasPrefix(err.Error(), "in") {
			t.Errorf("error does not name the file: %v", err)
		}
	})
}
