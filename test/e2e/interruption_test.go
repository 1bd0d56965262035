package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// otherImage returns an x86_64 image moto has other than id.
func otherImage(t *testing.T, id string) string {
	t.Helper()
	out, err := w.ec2.DescribeImages(context.Background(), &ec2.DescribeImagesInput{Filters: []ec2types.Filter{
		{Name: aws.String("architecture"), Values: []string{"x86_64"}},
		{Name: aws.String("state"), Values: []string{"available"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, im := range out.Images {
		if aws.ToString(im.ImageId) != id {
			ids = append(ids, aws.ToString(im.ImageId))
		}
	}
	if len(ids) == 0 {
		t.Fatalf("moto has no x86_64 image besides %s", id)
	}
	slices.Sort(ids)
	return ids[0]
}

// condition returns a status condition of an unstructured object.
func condition(obj unstructured.Unstructured, conditionType string) (status, lastTransition string) {
	conds, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
	for _, c := range conds {
		m, ok := c.(map[string]any)
		if ok && m["type"] == conditionType {
			s, _ := m["status"].(string)
			lt, _ := m["lastTransitionTime"].(string)
			return s, lt
		}
	}
	return "", ""
}

// TestSpotInterruptionReplacesFirst: an EC2 spot interruption warning on
// the node class's queue gets the node a replacement at once; the
// replacement is Ready before the interrupted node is tainted or drained,
// the pod moves over, and the interrupted instance is terminated; the
// message is deleted.
func TestSpotInterruptionReplacesFirst(t *testing.T) {
	t.Parallel()
	const pool = "e2e-spot"
	api := sqs.NewFromConfig(w.env.AWSConfig())
	queue := "flotilla-e2e-interruption-" + strings.ToLower(fmt.Sprint(time.Now().UnixNano()%1e6))
	q, err := api.CreateQueue(context.Background(), &sqs.CreateQueueInput{QueueName: aws.String(queue)})
	if err != nil {
		t.Fatal(err)
	}
	url := aws.ToString(q.QueueUrl)
	t.Cleanup(func() { _, _ = api.DeleteQueue(context.Background(), &sqs.DeleteQueueInput{QueueUrl: aws.String(url)}) })
	testPool(t, pool, poolOptions{InstanceTypes: []string{"t3.medium", "t3.large"}, CapacityTypes: []string{"spot", "on-demand"},
		Policy: "WhenEmpty", InterruptionQueue: queue})
	ns := namespace(t, pool)
	workload(t, ns, "app", pool, 1, "1500m")
	var oldNode, oldClaim, instanceID string
	eventually(t, 90*time.Second, "the pod Running", func() (bool, string) {
		running, _ := pods(t, ns)
		claims := poolClaims(t, pool)
		if len(running) != 1 || len(claims) != 1 {
			return false, fmt.Sprintf("%d running, %d nodeclaims", len(running), len(claims))
		}
		oldNode, oldClaim = running[0].Spec.NodeName, claims[0].GetName()
		providerID, _, _ := unstructured.NestedString(claims[0].Object, "status", "providerID")
		instanceID = providerID[strings.LastIndex(providerID, "/")+1:]
		return true, ""
	})

	// The warning, as EventBridge puts it on the queue.
	sent := time.Now().UTC()
	body := fmt.Sprintf(`{"version":"0","id":"e2e-%[1]s","detail-type":"EC2 Spot Instance Interruption Warning","source":"aws.ec2",
"account":"123456789012","time":%[2]q,"region":"us-east-1","resources":["arn:aws:ec2:us-east-1a:instance/%[1]s"],
"detail":{"instance-id":%[1]q,"instance-action":"terminate"}}`, instanceID, sent.Format(time.RFC3339))
	if _, err := api.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String(body)}); err != nil {
		t.Fatal(err)
	}

	// Watch the interrupted node and its replacement until the pod runs on
	// the replacement and the old node is gone.
	var replacement string
	var readySeen, drainSeen time.Duration
	took := eventually(t, 100*time.Second, "the pod Running on a replacement, the interrupted node gone", func() (bool, string) {
		elapsed := time.Since(sent)
		var old *unstructured.Unstructured
		for _, c := range poolClaims(t, pool) {
			if c.GetName() == oldClaim {
				old = &c
			} else if replacement == "" {
				replacement = c.GetName()
			}
			if c.GetName() == replacement && readySeen == 0 {
				if s, _ := condition(c, "Initialized"); s == "True" {
					readySeen = elapsed
				}
			}
		}
		tainted := false
		if n, err := w.kube.CoreV1().Nodes().Get(context.Background(), oldNode, metav1.GetOptions{}); err == nil {
			for _, taint := range n.Spec.Taints {
				tainted = tainted || taint.Key == "karpenter.sh/disrupted"
			}
		}
		if (tainted || old == nil || old.GetDeletionTimestamp() != nil) && drainSeen == 0 {
			drainSeen = elapsed
			if readySeen == 0 {
				t.Fatalf("interrupted node %s drained %s after the warning, before its replacement was Ready", oldNode, elapsed.Round(time.Millisecond))
			}
		}
		running, _ := pods(t, ns)
		onNew := len(running) == 1 && running[0].Spec.NodeName != oldNode
		return onNew && old == nil, fmt.Sprintf("replacement %q ready at %s, drain at %s; old claim present %v; running %d",
			replacement, readySeen, drainSeen, old != nil, len(running))
	})
	if drainSeen > 90*time.Second {
		t.Errorf("drain started %s after the warning; the instance goes at 120s", drainSeen)
	}
	out, err := w.ec2.DescribeInstances(context.Background(), &ec2.DescribeInstancesInput{InstanceIds: []string{instanceID}})
	if err != nil {
		t.Fatal(err)
	}
	if st := out.Reservations[0].Instances[0].State.Name; st != ec2types.InstanceStateNameTerminated && st != ec2types.InstanceStateNameShuttingDown {
		t.Errorf("interrupted instance %s is %s, want terminated", instanceID, st)
	}
	attrs, err := api.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{QueueUrl: aws.String(url),
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessages, sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible}})
	if err != nil {
		t.Fatal(err)
	}
	if attrs.Attributes["ApproximateNumberOfMessages"] != "0" || attrs.Attributes["ApproximateNumberOfMessagesNotVisible"] != "0" {
		t.Errorf("the warning is still on the queue: %v", attrs.Attributes)
	}
	t.Logf("warning → replacement %s Ready after %s, interrupted node drained after %s, pod moved and old node gone after %s",
		replacement, readySeen.Round(time.Millisecond), drainSeen.Round(time.Millisecond), took.Round(time.Millisecond))
}
