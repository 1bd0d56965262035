package gc

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	awsv1 "github.com/flotilla-dev/flotilla/api/aws/v1"
	karpv1 "github.com/flotilla-dev/flotilla/api/karpenter/v1"
	"github.com/flotilla-dev/flotilla/services/actuator/internal/instance"
	"github.com/flotilla-dev/flotilla/test/moto"
)

var server *moto.Server

func TestMain(m *testing.M) { moto.Main(m, &server) }

// claims is an in-memory NodeClaim API that records deletions.
type claims struct {
	mu      sync.Mutex
	items   []karpv1.NodeClaim
	deleted []string
}

func (c *claims) ListNodeClaims(context.Context) ([]karpv1.NodeClaim, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.items), nil
}

func (c *claims) DeleteNodeClaim(_ context.Context, name string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.deleted = append(c.deleted, name)
	return nil
}

// runInstance starts an instance in moto tagged as Flotilla tags its own.
func runInstance(t *testing.T, api *ec2.Client, cluster, nodeClaim string) string {
	t.Helper()
	out, err := api.RunInstances(t.Context(), &ec2.RunInstancesInput{
		ImageId: aws.String("ami-12c6146b"), InstanceType: "t3.medium", MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		TagSpecifications: []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeInstance, Tags: []ec2types.Tag{
			{Key: aws.String("kubernetes.io/cluster/" + cluster), Value: aws.String("owned")},
			{Key: aws.String("karpenter.sh/nodeclaim"), Value: aws.String(nodeClaim)},
			{Key: aws.String("karpenter.sh/nodepool"), Value: aws.String("default")},
		}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(out.Instances[0].InstanceId)
}

func state(t *testing.T, api *ec2.Client, id string) string {
	t.Helper()
	out, err := api.DescribeInstances(t.Context(), &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	if err != nil {
		t.Fatal(err)
	}
	return string(out.Reservations[0].Instances[0].State.Name)
}

func launched(name, providerID string, at time.Time) karpv1.NodeClaim {
	nc := karpv1.NodeClaim{ObjectMeta: metav1.ObjectMeta{Name: name, UID: "uid-" + "name"}}
	nc.Status.ProviderID = providerID
	nc.Status.Conditions = []metav1.Condition{{Type: karpv1.ConditionTypeLaunched, Status: metav1.ConditionTrue,
		Reason: "Launched", LastTransitionTime: metav1.NewTime(at)}}
	return nc
}

func TestCollect(t *testing.T) {
	ctx := t.Context()
	cfg, err := server.Config(ctx)
	if err != nil {
		t.Fatal(err)
	}
	api := ec2.NewFromConfig(cfg)
	const cluster = "gc"
	leaked := runInstance(t, api, cluster, "gone-1")
	kept := runInstance(t, api, cluster, "alive-1")
	duplicate := runInstance(t, api, cluster, "alive-1") // a second launch for the same claim
	otherCluster := runInstance(t, api, "someone-else", "gone-2")
	vanished := "i-0123456789abcdef0"

	now := time.Now().Add(DefaultGracePeriod + time.Minute)
	cs := &claims{items: []karpv1.NodeClaim{
		launched("alive-1", "aws:///us-east-1a/"+kept, now.Add(-time.Hour)),
		launched("vanished-1", "aws:///us-east-1a/"+vanished, time.Now()),
	}}
	node := func(name, providerID string, created time.Time) *corev1.Node {
		return &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.NewTime(created),
				Labels: map[string]string{karpv1.NodePoolLabelKey: "default"}, Finalizers: []string{karpv1.TerminationFinalizer}},
			Spec: corev1.NodeSpec{ProviderID: providerID},
		}
	}
	kube := fake.NewClientset(
		node("kept", "aws:///us-east-1a/"+kept, now.Add(-time.Hour)),
		node("orphan", "aws:///us-east-1a/i-0fedcba9876543210", time.Now()),
		node("young", "aws:///us-east-1a/i-0aaaaaaaaaaaaaaaa", now.Add(-time.Second)),
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "static", CreationTimestamp: metav1.NewTime(now.Add(-time.Hour))},
			Spec: corev1.NodeSpec{ProviderID: "aws:///us-east-1a/i-0bbbbbbbbbbbbbbbb"}},
	)
	provider := instance.New(api, instance.Options{ClusterName: cluster})

	// Within the grace period nothing is touched.
	young := New(provider, cs, kube, Options{Now: func() time.Time { return time.Now() }})
	res, err := young.Collect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(Result{}, res); diff != "" {
		t.Errorf("within the grace period (-want +got):\n%s", diff)
	}

	c := New(provider, cs, kube, Options{Now: func() time.Time { return now }})
	res, err = c.Collect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := Result{
		TerminatedInstances: []string{leaked, duplicate},
		DeletedNodeClaims:   []string{"vanished-1"},
		DeletedNodes:        []string{"orphan"},
	}
	slices.Sort(want.TerminatedInstances)
	slices.Sort(res.TerminatedInstances)
	if diff := cmp.Diff(want, res); diff != "" {
		t.Errorf("Collect (-want +got):\n%s", diff)
	}
	for id, wantState := range map[string]string{leaked: "terminated", duplicate: "terminated", kept: "running", otherCluster: "running"} {
		if got := state(t, api, id); got != wantState {
			t.Errorf("instance %s is %s, want %s", id, got, wantState)
		}
	}
	if diff := cmp.Diff([]string{"vanished-1"}, cs.deleted); diff != "" {
		t.Errorf("deleted nodeclaims (-want +got):\n%s", diff)
	}
	nodes, err := kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, n := range nodes.Items {
		names = append(names, n.Name)
	}
	slices.Sort(names)
	if diff := cmp.Diff([]string{"kept", "static", "young"}, names); diff != "" {
		t.Errorf("nodes left (-want +got):\n%s", diff)
	}
}

// TestCollectLaunchTemplates: the launch templates of a deleted node class
// go; those of existing node classes, of a node class a NodeClaim still
// names, and of other clusters stay.
func TestCollectLaunchTemplates(t *testing.T) {
	ctx := t.Context()
	cfg, err := server.Config(ctx)
	if err != nil {
		t.Fatal(err)
	}
	api := ec2.NewFromConfig(cfg)
	const cluster = "gc-templates"
	template := func(name, cluster, nodeClass string) string {
		t.Helper()
		out, err := api.CreateLaunchTemplate(ctx, &ec2.CreateLaunchTemplateInput{
			LaunchTemplateName: aws.String(name),
			LaunchTemplateData: &ec2types.RequestLaunchTemplateData{ImageId: aws.String("ami-12c6146b")},
			TagSpecifications: []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeLaunchTemplate, Tags: []ec2types.Tag{
				{Key: aws.String("kubernetes.io/cluster/" + cluster), Value: aws.String("owned")},
				{Key: aws.String(awsv1.TagEC2NodeClass), Value: aws.String(nodeClass)},
			}}},
		})
		if err != nil {
			t.Fatal(err)
		}
		return aws.ToString(out.LaunchTemplate.LaunchTemplateName)
	}
	gone := template("flotilla/gc-templates/gone", cluster, "deleted-class")
	template("flotilla/gc-templates/kept", cluster, "default")
	template("flotilla/gc-templates/claimed", cluster, "old-class")
	template("flotilla/other/gone", "other", "deleted-class")

	claimed := launched("c-1", "", time.Now())
	claimed.Spec.NodeClassRef.Name = "old-class"
	provider := instance.New(api, instance.Options{ClusterName: cluster})
	opts := Options{
		Templates:   provider,
		NodeClasses: func(context.Context) ([]string, error) { return []string{"default"}, nil },
	}
	// Young templates are left alone.
	opts.Now = time.Now
	res, err := New(provider, &claims{items: []karpv1.NodeClaim{claimed}}, fake.NewClientset(), opts).Collect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.DeletedTemplates) != 0 {
		t.Errorf("deleted %v within the grace period", res.DeletedTemplates)
	}
	opts.Now = func() time.Time { return time.Now().Add(DefaultGracePeriod + time.Minute) }
	res, err = New(provider, &claims{items: []karpv1.NodeClaim{claimed}}, fake.NewClientset(), opts).Collect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{gone}, res.DeletedTemplates); diff != "" {
		t.Errorf("deleted launch templates (-want +got):\n%s", diff)
	}
	out, err := api.DescribeLaunchTemplates(ctx, &ec2.DescribeLaunchTemplatesInput{})
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, lt := range out.LaunchTemplates {
		left = append(left, aws.ToString(lt.LaunchTemplateName))
	}
	slices.Sort(left)
	want := []string{"flotilla/gc-templates/claimed", "flotilla/gc-templates/kept", "flotilla/other/gone"}
	if diff := cmp.Diff(want, left); diff != "" {
		t.Errorf("launch templates left (-want +got):\n%s", diff)
	}
}
