// Package deploy checks the kustomize manifests in deploy/: every overlay
// renders, passes a server-side dry-run apply against a real apiserver, has
// the probes, limits and security contexts production needs, grants each
// service exactly the API access its code uses, and the example IAM policy
// lists exactly the AWS actions the actuator calls. `make deploy-check` runs
// these tests.
package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/flotilla-dev/flotilla/test/localenv"
)

var overlays = []string{"local", "aws"}

// shared is the local environment the tests that need an apiserver share;
// TestMain stops it.
var shared struct {
	once sync.Once
	env  *localenv.Env
	err  error
}

// apiserver returns the shared local environment, starting it on first use.
func apiserver(t *testing.T) *localenv.Env {
	t.Helper()
	shared.once.Do(func() {
		shared.env, shared.err = localenv.Start(context.Background(), localenv.Options{NoKubelet: true})
	})
	if shared.err != nil {
		t.Fatalf("start local environment: %v", shared.err)
	}
	return shared.env
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.env != nil {
		if code != 0 {
			shared.env.KeepDir()
			fmt.Fprintf(os.Stderr, "deploy: environment state and logs kept in %s\n", shared.env.Dir)
		}
		_ = shared.env.Stop(context.Background())
	}
	os.Exit(code)
}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := localenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func kubectl(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl not on PATH")
	}
	return p
}

// render runs kubectl kustomize on an overlay and returns its objects.
func render(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	out, err := exec.Command(kubectl(t), "kustomize", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl kustomize %s: %v\n%s", dir, err, out)
	}
	var objs []*unstructured.Unstructured
	for _, doc := range strings.Split(string(out), "\n---\n") {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		objs = append(objs, u)
	}
	return objs
}

func ofKind(objs []*unstructured.Unstructured, kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == kind {
			out = append(out, o)
		}
	}
	return out
}

// TestDeployManifests renders every overlay and checks what production
// needs of each Deployment.
func TestDeployManifests(t *testing.T) {
	root := repoRoot(t)
	for _, overlay := range overlays {
		t.Run(overlay, func(t *testing.T) {
			objs := render(t, filepath.Join(root, "deploy", "overlays", overlay))
			deps := ofKind(objs, "Deployment")
			if len(deps) != 3 {
				t.Fatalf("%d Deployments, want planner, actuator and watcher", len(deps))
			}
			pdbs := map[string]bool{}
			for _, p := range ofKind(objs, "PodDisruptionBudget") {
				pdbs[p.GetName()] = true
			}
			for _, d := range deps {
				checkDeployment(t, d)
				if !pdbs[d.GetName()] {
					t.Errorf("%s has no PodDisruptionBudget", d.GetName())
				}
			}
			if n := len(ofKind(objs, "NetworkPolicy")); n != 4 {
				t.Errorf("%d NetworkPolicies, want default deny + watcher→planner + watcher→actuator + metrics", n)
			}
			if n := len(ofKind(objs, "CustomResourceDefinition")); n != 4 {
				t.Errorf("%d CRDs, want 4", n)
			}
			for _, sa := range ofKind(objs, "ServiceAccount") {
				if sa.GetName() == "flotilla-planner" {
					if auto, _, _ := unstructured.NestedBool(sa.Object, "automountServiceAccountToken"); auto {
						t.Error("the planner's ServiceAccount mounts a token; it needs no API access")
					}
				}
				irsa := sa.GetAnnotations()["eks.amazonaws.com/role-arn"]
				if want := overlay == "aws" && sa.GetName() == "flotilla-actuator"; want != (irsa != "") {
					t.Errorf("%s: IRSA role annotation %q, want one only on the actuator in the aws overlay", sa.GetName(), irsa)
				}
			}
			for _, kind := range []string{"RoleBinding", "ClusterRoleBinding"} {
				for _, b := range ofKind(objs, kind) {
					if strings.Contains(b.GetName(), "planner") {
						t.Errorf("%s %s: the planner gets no RBAC", kind, b.GetName())
					}
				}
			}
		})
	}
}

func checkDeployment(t *testing.T, d *unstructured.Unstructured) {
	t.Helper()
	name := d.GetName()
	spec, _, _ := unstructured.NestedMap(d.Object, "spec", "template", "spec")
	psc, _, _ := unstructured.NestedMap(spec, "securityContext")
	if psc["runAsNonRoot"] != true {
		t.Errorf("%s: pod securityContext.runAsNonRoot is not true", name)
	}
	if typ, _, _ := unstructured.NestedString(psc, "seccompProfile", "type"); typ != "RuntimeDefault" {
		t.Errorf("%s: seccompProfile %q, want RuntimeDefault", name, typ)
	}
	if tsc, _, _ := unstructured.NestedSlice(spec, "topologySpreadConstraints"); len(tsc) == 0 {
		t.Errorf("%s: no topology spread constraints", name)
	}
	containers, _, _ := unstructured.NestedSlice(spec, "containers")
	for _, c := range containers {
		c := c.(map[string]any)
		sc, _ := c["securityContext"].(map[string]any)
		if sc["readOnlyRootFilesystem"] != true || sc["allowPrivilegeEscalation"] != false || sc["runAsNonRoot"] != true {
			t.Errorf("%s: container securityContext %v, want read-only root, no privilege escalation, non-root", name, sc)
		}
		if drop, _, _ := unstructured.NestedStringSlice(sc, "capabilities", "drop"); !slices.Equal(drop, []string{"ALL"}) {
			t.Errorf("%s: drops capabilities %v, want [ALL]", name, drop)
		}
		for _, kind := range []string{"requests", "limits"} {
			res, _, _ := unstructured.NestedStringMap(c, "resources", kind)
			if res["cpu"] == "" || res["memory"] == "" {
				t.Errorf("%s: resources.%s %v lacks cpu or memory", name, kind, res)
			}
		}
		for probe, service := range map[string]string{"livenessProbe": "liveness", "readinessProbe": "readiness"} {
			svc, ok, _ := unstructured.NestedString(c, probe, "grpc", "service")
			if !ok || svc != service {
				t.Errorf("%s: %s gRPC service %q, want %q (Kubernetes' native gRPC probe)", name, probe, svc, service)
			}
		}
	}
	r, _, _ := unstructured.NestedFieldNoCopy(d.Object, "spec", "replicas")
	if replicas, _ := r.(float64); (name == "flotilla-actuator" || name == "flotilla-watcher") && replicas < 2 {
		t.Errorf("%s: %v replica(s), want 2 (one leads, one stands by)", name, replicas)
	}
}

// TestDeployServerSideDryRun applies every overlay to a real apiserver with
// a server-side dry-run: the apiserver validates every object (schemas,
// defaults, admission) without keeping them.
func TestDeployServerSideDryRun(t *testing.T) {
	kc := kubectl(t)
	root := repoRoot(t)
	env := apiserver(t)
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(kc, append([]string{"--kubeconfig", env.Kubeconfig}, args...)...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out.String())
		}
		return out.String()
	}
	// Namespaced objects are dry-run into a namespace that must exist.
	run("create", "namespace", "flotilla")
	for _, overlay := range overlays {
		t.Run(overlay, func(t *testing.T) {
			out := run("apply", "--server-side", "--dry-run=server", "--field-manager=flotilla-deploy-check", "-k", filepath.Join(root, "deploy", "overlays", overlay))
			if n := strings.Count(out, "(server dry run)"); n < 30 {
				t.Errorf("dry run applied %d objects, want every object of the overlay:\n%s", n, out)
			}
		})
	}
}

// access is one API call a service makes.
type access struct{ verb, group, resource, subresource, namespace string }

// TestDeployRBACMatchesTheCode applies the base's RBAC to a real apiserver
// and asks it (SubjectAccessReview) whether each service may make the calls
// its code makes — and not others.
func TestDeployRBACMatchesTheCode(t *testing.T) {
	kc := kubectl(t)
	root := repoRoot(t)
	env := apiserver(t)
	var rbac bytes.Buffer
	for _, o := range render(t, filepath.Join(root, "deploy", "base")) {
		switch o.GetKind() {
		case "Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding":
			b, err := yaml.Marshal(o.Object)
			if err != nil {
				t.Fatal(err)
			}
			rbac.WriteString("---\n")
			rbac.Write(b)
		}
	}
	cmd := exec.Command(kc, "--kubeconfig", env.Kubeconfig, "apply", "--server-side", "-f", "-")
	cmd.Stdin = &rbac
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("apply rbac: %v\n%s", err, out)
	}
	rc, err := env.RESTConfig()
	if err != nil {
		t.Fatal(err)
	}
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	allowed := func(sa string, a access) bool {
		t.Helper()
		r, err := client.AuthorizationV1().SubjectAccessReviews().Create(context.Background(), &authorizationv1.SubjectAccessReview{
			Spec: authorizationv1.SubjectAccessReviewSpec{
				User:   "system:serviceaccount:flotilla:" + sa,
				Groups: []string{"system:serviceaccounts", "system:serviceaccounts:flotilla", "system:authenticated"},
				ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: a.verb, Group: a.group, Resource: a.resource,
					Subresource: a.subresource, Namespace: a.namespace, Name: leaseName(sa, a)},
			},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return r.Status.Allowed
	}
	calls := map[string][]access{
		// Informers (list, watch), events, the Lease.
		"flotilla-watcher": {
			{"list", "", "pods", "", ""}, {"watch", "", "pods", "", ""}, {"watch", "", "nodes", "", ""},
			{"watch", "", "persistentvolumeclaims", "", ""}, {"watch", "", "persistentvolumes", "", ""},
			{"watch", "apps", "daemonsets", "", ""}, {"watch", "policy", "poddisruptionbudgets", "", ""},
			{"watch", "storage.k8s.io", "storageclasses", "", ""}, {"watch", "storage.k8s.io", "csinodes", "", ""},
			{"watch", "karpenter.sh", "nodepools", "", ""}, {"watch", "karpenter.sh", "nodeclaims", "", ""},
			{"watch", "karpenter.k8s.aws", "ec2nodeclasses", "", ""}, {"watch", "karpenter.k8s.aws", "provisioners", "", ""},
			{"create", "", "events", "", "default"}, {"patch", "", "events", "", "default"},
			{"get", "coordination.k8s.io", "leases", "", "flotilla"}, {"update", "coordination.k8s.io", "leases", "", "flotilla"},
			{"create", "coordination.k8s.io", "leases", "", "flotilla"},
		},
		"flotilla-actuator": {
			{"create", "karpenter.sh", "nodeclaims", "", ""}, {"update", "karpenter.sh", "nodeclaims", "", ""},
			{"patch", "karpenter.sh", "nodeclaims", "", ""}, {"delete", "karpenter.sh", "nodeclaims", "", ""},
			{"get", "karpenter.sh", "nodeclaims", "", ""}, {"watch", "karpenter.sh", "nodeclaims", "", ""},
			{"update", "karpenter.sh", "nodeclaims", "status", ""}, {"update", "karpenter.sh", "nodepools", "status", ""},
			{"watch", "karpenter.sh", "nodepools", "", ""}, {"get", "karpenter.sh", "nodepools", "", ""},
			{"watch", "karpenter.k8s.aws", "ec2nodeclasses", "", ""}, {"update", "karpenter.k8s.aws", "ec2nodeclasses", "status", ""},
			{"get", "karpenter.k8s.aws", "provisioners", "", ""}, {"list", "karpenter.k8s.aws", "provisioners", "", ""},
			{"watch", "", "nodes", "", ""}, {"update", "", "nodes", "", ""}, {"patch", "", "nodes", "", ""}, {"delete", "", "nodes", "", ""},
			{"list", "", "pods", "", ""}, {"delete", "", "pods", "", "default"}, {"create", "", "pods", "eviction", "default"},
			{"list", "policy", "poddisruptionbudgets", "", "default"},
			{"get", "coordination.k8s.io", "leases", "", "flotilla"}, {"update", "coordination.k8s.io", "leases", "", "flotilla"},
			{"create", "coordination.k8s.io", "leases", "", "flotilla"},
		},
	}
	for sa, as := range calls {
		for _, a := range as {
			if !allowed(sa, a) {
				t.Errorf("%s may not %+v, which its code does", sa, a)
			}
		}
	}
	denied := map[string][]access{
		"flotilla-planner": {{"list", "", "pods", "", ""}, {"get", "karpenter.sh", "nodepools", "", ""}, {"get", "coordination.k8s.io", "leases", "", "flotilla"}},
		"flotilla-watcher": {
			{"create", "karpenter.sh", "nodeclaims", "", ""}, {"update", "", "nodes", "", ""}, {"create", "", "pods", "eviction", "default"},
			{"get", "", "secrets", "", "flotilla"}, {"update", "coordination.k8s.io", "leases", "", "kube-system"},
		},
		"flotilla-actuator": {
			{"get", "", "secrets", "", "flotilla"}, {"create", "", "pods", "", "default"}, {"update", "karpenter.sh", "nodepools", "", ""},
			{"update", "apps", "deployments", "", "default"},
		},
	}
	for sa, as := range denied {
		for _, a := range as {
			if allowed(sa, a) {
				t.Errorf("%s may %+v, which it never does", sa, a)
			}
		}
	}
}

// leaseName is the Lease a service's election names (the base's cluster
// is my-cluster); other calls name no object.
func leaseName(sa string, a access) string {
	if a.resource != "leases" || a.verb == "create" {
		return ""
	}
	return sa + "-my-cluster"
}

// sdkCall finds calls of the AWS SDK by their input types.
var sdkCall = regexp.MustCompile(`\*(ec2|ssm|sqs|pricing)\.([A-Z][A-Za-z]+)Input\b`)

// TestDeployIAMPolicyMatchesTheCode: the example IAM policy grants exactly
// the EC2, SSM, SQS and Pricing actions the actuator's code calls, plus
// ec2:RunInstances and iam:PassRole, which AWS checks on CreateFleet's
// behalf.
func TestDeployIAMPolicyMatchesTheCode(t *testing.T) {
	root := repoRoot(t)
	called := map[string]bool{}
	err := filepath.WalkDir(filepath.Join(root, "services", "actuator"), func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range sdkCall.FindAllStringSubmatch(string(b), -1) {
			called[m[1]+":"+m[2]] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "deploy", "overlays", "aws", "iam-policy.json"))
	if err != nil {
		t.Fatal(err)
	}
	var policy struct {
		Statement []struct {
			Action any `json:"Action"`
		} `json:"Statement"`
	}
	if err := json.Unmarshal(b, &policy); err != nil {
		t.Fatal(err)
	}
	granted := map[string]bool{}
	for _, s := range policy.Statement {
		switch a := s.Action.(type) {
		case string:
			granted[a] = true
		case []any:
			for _, x := range a {
				granted[x.(string)] = true
			}
		}
	}
	for _, implied := range []string{"ec2:RunInstances", "iam:PassRole"} {
		if !granted[implied] {
			t.Errorf("policy lacks %s, which CreateFleet needs", implied)
		}
		delete(granted, implied)
	}
	if diff := cmp.Diff(sortedKeys(called), sortedKeys(granted)); diff != "" {
		t.Errorf("IAM policy actions differ from the SDK calls in services/actuator (-called +granted):\n%s", diff)
	}
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
