package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// planArgs are the flags that point `planner plan` at the fixtures in
// testdata: pods as `kubectl get pods -A -o json` prints them (db-0 runs on
// node n1; api-1, web-1, web-2 and huge are pending), the node, a DaemonSet,
// a NodePool with its EC2NodeClass and a tainted Provisioner, and a small
// catalogue.
func planArgs(extra ...string) []string {
	args := []string{"plan",
		"--pods", "testdata/pods.json",
		"--nodes", "testdata/nodes.json",
		"--daemonsets", "testdata/daemonsets.json",
		"--nodepools", "testdata/nodepools.yaml",
		"--catalog", "testdata/catalog.csv",
	}
	return append(args, extra...)
}

// runCLI runs the planner command in process and returns its exit code,
// stdout and stderr.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// planJSON is the part of the PlanResponse's protojson the CLI promises.
type planJSON struct {
	NodeClaims []struct {
		Name                string   `json:"name"`
		NodePool            string   `json:"nodePool"`
		InstanceType        string   `json:"instanceType"`
		Zone                string   `json:"zone"`
		CapacityType        string   `json:"capacityType"`
		PricePerHour        *float64 `json:"pricePerHour"`
		InstanceTypeOptions []string `json:"instanceTypeOptions"`
		Pods                []string `json:"pods"`
	} `json:"nodeClaims"`
	ExistingNodes []struct {
		Node string   `json:"node"`
		Pods []string `json:"pods"`
	} `json:"existingNodes"`
	Unschedulable []struct {
		Pod    string `json:"pod"`
		Reason string `json:"reason"`
	} `json:"unschedulable"`
	TotalPricePerHour *float64 `json:"totalPricePerHour"`
}

func TestPlanJSON(t *testing.T) {
	code, stdout, stderr := runCLI(t, planArgs("-o", "json")...)
	if code != 0 {
		t.Fatalf("exit code %d, stderr:\n%s", code, stderr)
	}
	var got planJSON
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, stdout)
	}
	// The fields the CLI promises, by their protojson names.
	var raw map[string]any
	if err := json.Unmarshal([]byte(stdout), &raw); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"nodeClaims", "existingNodes", "unschedulable", "totalPricePerHour"} {
		if _, ok := raw[f]; !ok {
			t.Errorf("output has no %q field", f)
		}
	}

	// Pending pods go to the existing node n1 first (it has 3.42 CPUs
	// left after db-0), new capacity only for what does not fit.
	if len(got.ExistingNodes) != 1 || got.ExistingNodes[0].Node != "n1" || len(got.ExistingNodes[0].Pods) == 0 {
		t.Fatalf("existingNodes = %+v, want pods placed on n1", got.ExistingNodes)
	}
	placed := slices.Clone(got.ExistingNodes[0].Pods)
	if len(got.NodeClaims) == 0 {
		t.Fatal("no nodeClaims: the pods do not all fit on n1")
	}
	total := 0.0
	for _, nc := range got.NodeClaims {
		if nc.Name == "" || nc.NodePool != "default" || nc.InstanceType == "" || nc.Zone == "" || nc.CapacityType != "on-demand" || nc.PricePerHour == nil {
			t.Errorf("nodeClaim %+v: want name, nodePool default, instanceType, zone, on-demand and a price", nc)
			continue
		}
		if !strings.HasPrefix(nc.Zone, "us-east-1") {
			t.Errorf("nodeClaim %s zone %q is not in the catalogue", nc.Name, nc.Zone)
		}
		if len(nc.InstanceTypeOptions) == 0 || nc.InstanceTypeOptions[0] != nc.InstanceType {
			t.Errorf("nodeClaim %s instanceTypeOptions %v: want the chosen type %s first", nc.Name, nc.InstanceTypeOptions, nc.InstanceType)
		}
		for _, o := range nc.InstanceTypeOptions {
			if o == "m6g.xlarge" {
				t.Errorf("nodeClaim %s offers m6g.xlarge, an arm64 type the NodePool excludes", nc.Name)
			}
		}
		total += *nc.PricePerHour
		placed = append(placed, nc.Pods...)
	}
	slices.Sort(placed)
	if diff := cmp.Diff([]string{"default/api-1", "shop/web-1", "shop/web-2"}, placed); diff != "" {
		t.Errorf("placed pods (namespace/name) mismatch (-want +got):\n%s", diff)
	}
	if got.TotalPricePerHour == nil || *got.TotalPricePerHour < total-1e-9 || *got.TotalPricePerHour > total+1e-9 {
		t.Errorf("totalPricePerHour %v, want the sum of the nodeClaims' prices %v", got.TotalPricePerHour, total)
	}

	if len(got.Unschedulable) != 1 || got.Unschedulable[0].Pod != "batch/huge" {
		t.Fatalf("unschedulable = %+v, want batch/huge alone", got.Unschedulable)
	}
	reason := got.Unschedulable[0].Reason
	for _, want := range []string{"NodePool default", "2000 GiB memory", "NodePool legacy", "taint legacy=true:NoSchedule"} {
		if !strings.Contains(reason, want) {
			t.Errorf("reason %q does not mention %q", reason, want)
		}
	}
}

func TestPlanText(t *testing.T) {
	code, stdout, stderr := runCLI(t, planArgs()...)
	if code != 0 {
		t.Fatalf("exit code %d, stderr:\n%s", code, stderr)
	}
	lines := strings.Split(stdout, "\n")
	header := func(prefix string) (string, int) {
		for i, l := range lines {
			if strings.HasPrefix(l, prefix) {
				return l, i
			}
		}
		t.Fatalf("no line starting with %q in:\n%s", prefix, stdout)
		return "", 0
	}
	h, i := header("NEW NODE")
	for _, col := range []string{"NODEPOOL", "INSTANCE TYPE", "ZONE", "CAPACITY", "$/HOUR", "PODS"} {
		if !strings.Contains(h, col) {
			t.Errorf("new node header %q lacks column %s", h, col)
		}
	}
	// Columns line up: each row starts its zone where the header does.
	zoneCol := strings.Index(h, "ZONE")
	row := lines[i+1]
	if len(row) <= zoneCol || !strings.HasPrefix(row[zoneCol:], "us-east-1") {
		t.Errorf("row %q does not have its zone under the ZONE column of %q", row, h)
	}
	if _, j := header("EXISTING NODE"); !strings.HasPrefix(lines[j+1], "n1 ") {
		t.Errorf("existing node row %q, want n1", lines[j+1])
	}
	if _, j := header("UNSCHEDULABLE POD"); !strings.HasPrefix(lines[j+1], "batch/huge ") || !strings.Contains(lines[j+1], "2000 GiB memory") {
		t.Errorf("unschedulable row %q, want batch/huge with its reason", lines[j+1])
	}
	if !strings.Contains(stdout, "1 unschedulable; new capacity $") {
		t.Errorf("no summary line in:\n%s", stdout)
	}
}

func TestPlanBadInput(t *testing.T) {
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	pods, pools, catalogCSV := read("pods.json"), read("nodepools.yaml"), read("catalog.csv")
	replace := func(s, old, new string) string {
		t.Helper()
		if !strings.Contains(s, old) {
			t.Fatalf("fixture lacks %q", old)
		}
		return strings.Replace(s, old, new, 1)
	}
	tests := []struct {
		name string
		// files are written to a temporary directory and replace the
		// fixture of the flag that names them.
		files map[string]string
		args  []string
		// want are substrings of stderr.
		want []string
	}{
		{
			name:  "YAML syntax error",
			files: map[string]string{"nodepools": replace(pools, "  name: default\nspec:\n  weight", "  name: [default\nspec:\n  weight")},
			want:  []string{"pools.yaml:6:", "document 1", "invalid YAML"},
		},
		{
			name:  "malformed quantity",
			files: map[string]string{"pods": replace(pods, `"cpu": "500m", "memory": "512Mi"`, `"cpu": "half", "memory": "512Mi"`)},
			want:  []string{"pods.json:19:", "items[1] Pod default/api-1", "spec.containers[0].resources.requests[cpu]"},
		},
		{
			name:  "unknown operator in a NodePool",
			files: map[string]string{"nodepools": replace(pools, "operator: In", "operator: Near")},
			want:  []string{"pools.yaml:13:", "document 1 NodePool default", "spec.template.spec.requirements[0].operator", `unknown operator "Near"`},
		},
		{
			name: "unknown operator in a pod's node affinity",
			files: map[string]string{"pods": replace(pods, `"metadata": {"name": "api-1", "namespace": "default", "labels": {"app": "api"}, "uid": "u-api-1"},
            "spec": {`, `"metadata": {"name": "api-1", "namespace": "default", "labels": {"app": "api"}, "uid": "u-api-1"},
            "spec": {
                "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "kubernetes.io/arch", "operator": "Near", "values": ["amd64"]}]}]}}},`)},
			want: []string{"pods.json:20:", "items[1] Pod default/api-1", "matchExpressions[0].operator", `unknown operator "Near"`},
		},
		{
			name:  "malformed catalogue price",
			files: map[string]string{"catalog": replace(catalogCSV, "0.192", "cheap")},
			want:  []string{"catalog.csv:5:", "price_per_hour", `"cheap"`},
		},
		{
			name: "unknown output format",
			args: []string{"-o", "yaml"},
			want: []string{`-o "yaml"`, "json or text"},
		},
		{
			name: "unknown region without a catalogue",
			args: []string{"--catalog", "", "--region", "mars-1"},
			want: []string{`--region "mars-1"`},
		},
		{
			name: "unknown flag",
			args: []string{"--pod-file", "x"},
			want: []string{"-pod-file", "usage: planner plan"},
		},
		{
			name: "missing file",
			args: []string{"--nodes", "testdata/no-such-nodes.json"},
			want: []string{"no-such-nodes.json"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := planArgs()
			dir := t.TempDir()
			names := map[string]string{"pods": "pods.json", "nodepools": "pools.yaml", "catalog": "catalog.csv"}
			for flagName, content := range tc.files {
				path := filepath.Join(dir, names[flagName])
				if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
					t.Fatal(err)
				}
				args = append(args, "--"+flagName, path)
			}
			args = append(args, tc.args...)
			code, stdout, stderr := runCLI(t, args...)
			if code != 2 {
				t.Errorf("exit code %d, want 2; stderr:\n%s", code, stderr)
			}
			if stdout != "" {
				t.Errorf("printed a plan for bad input:\n%s", stdout)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr %q does not mention %q", stderr, w)
				}
			}
			if strings.Contains(stderr, "panic") || strings.Contains(stderr, "goroutine ") {
				t.Errorf("stderr shows a panic:\n%s", stderr)
			}
		})
	}
}

func TestPlanHelp(t *testing.T) {
	code, _, stderr := runCLI(t, "plan", "-h")
	if code != 0 || !strings.Contains(stderr, "usage: planner plan") {
		t.Errorf("plan -h: exit code %d, stderr %q; want 0 and the usage", code, stderr)
	}
}
