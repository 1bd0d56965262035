package interruption

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/google/go-cmp/cmp"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	karpv1 "github.com/flotilla-dev/flotilla/api/karpenter/v1"
	"github.com/flotilla-dev/flotilla/services/actuator/internal/nodeclaim"
	"github.com/flotilla-dev/flotilla/services/actuator/internal/offering"
	"github.com/flotilla-dev/flotilla/test/moto"
)

var server *moto.Server

func TestMain(m *testing.M) { moto.Main(m, &server) }

// claims is an in-memory NodeClaim store; failAnnotate makes every write
// fail as an unreachable API server would.
type claims struct {
	mu           sync.Mutex
	byName       map[string]*karpv1.NodeClaim
	failAnnotate bool
}

func newClaims(ncs ...*karpv1.NodeClaim) *claims {
	c := &claims{byName: map[string]*karpv1.NodeClaim{}}
	for _, nc := range ncs {
		c.byName[nc.Name] = nc
	}
	return c
}

func claim(name, instanceID, capacityType string) *karpv1.NodeClaim {
	return &karpv1.NodeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
			karpv1.CapacityTypeLabelKey: capacityType, karpv1.LabelInstanceType: "t3.medium", karpv1.LabelTopologyZone: "us-east-1a",
		}},
		Status: karpv1.NodeClaimStatus{ProviderID: "aws:///us-east-1a/" + instanceID, NodeName: "node-" + name},
	}
}

func (c *claims) Cached() []*karpv1.NodeClaim {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*karpv1.NodeClaim
	for _, nc := range c.byName {
		out = append(out, nc.DeepCopy())
	}
	return out
}

func (c *claims) get(name string) (*karpv1.NodeClaim, error) {
	nc, ok := c.byName[name]
	if !ok {
		return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "nodeclaims"}, name)
	}
	if c.failAnnotate {
		return nil, errors.New("connection refused")
	}
	return nc, nil
}

func (c *claims) Annotate(_ context.Context, name string, annotations map[string]*string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	nc, err := c.get(name)
	if err != nil {
		return err
	}
	if nc.Annotations == nil {
		nc.Annotations = map[string]string{}
	}
	for k, v := range annotations {
		nc.Annotations[k] = *v
	}
	return nil
}

func (c *claims) SetCondition(_ context.Context, name string, cond metav1.Condition) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	nc, err := c.get(name)
	if err != nil {
		return err
	}
	meta.SetStatusCondition(&nc.Status.Conditions, cond)
	return nil
}

func (c *claims) Delete(_ context.Context, name string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	nc, err := c.get(name)
	if err != nil {
		return err
	}
	now := metav1.Now()
	nc.DeletionTimestamp = &now
	return nil
}

func (c *claims) claim(name string) *karpv1.NodeClaim {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.byName[name].DeepCopy()
}

// marks records offerings marked unavailable.
type marks struct {
	mu   sync.Mutex
	keys []offering.Key
}

func (m *marks) Mark(k offering.Key, _ string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.keys = append(m.keys, k)
}

func newQueue(t *testing.T, api *sqs.Client, name string) string {
	t.Helper()
	out, err := api.CreateQueue(t.Context(), &sqs.CreateQueueInput{QueueName: aws.String(name),
		Attributes: map[string]string{"VisibilityTimeout": "30"}})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(out.QueueUrl)
}

func send(t *testing.T, api *sqs.Client, url string, bodies ...string) {
	t.Helper()
	for _, b := range bodies {
		if _, err := api.SendMessage(t.Context(), &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String(b)}); err != nil {
			t.Fatal(err)
		}
	}
}

// left returns how many messages are on the queue, visible or in flight.
func left(t *testing.T, api *sqs.Client, url string) int {
	t.Helper()
	out, err := api.GetQueueAttributes(t.Context(), &sqs.GetQueueAttributesInput{QueueUrl: aws.String(url),
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessages, sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible}})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, k := range []string{"ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"} {
		v, _ := strconv.Atoi(out.Attributes[k])
		n += v
	}
	return n
}

func sqsClient(t *testing.T) *sqs.Client {
	t.Helper()
	cfg, err := server.Config(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return sqs.NewFromConfig(cfg)
}

func TestReceiveOnMoto(t *testing.T) {
	t.Parallel()
	api := sqsClient(t)
	url := newQueue(t, api, "receive-"+strconv.FormatInt(time.Now().UnixNano(), 36))
	at := time.Now().UTC().Truncate(time.Second)
	cs := newClaims(claim("spot-a", "i-aaa", "spot"), claim("od-b", "i-bbb", "on-demand"), claim("od-c", "i-ccc", "on-demand"))
	offerings := &marks{}
	p := NewPoller(api, NewHandler(cs, offerings, nil), PollerOptions{Wait: time.Second})
	send(t, api, url,
		spotWarning("i-aaa", at),
		rebalance("i-aaa", at), // milder: does not replace the warning
		stateChange("i-bbb", "terminated", at),
		scheduledChange("i-ccc", at, at.Add(time.Hour)),
		spotWarning("i-zzz", at), // not ours
		stateChange("i-ccc", "running", at),
		"not an event",
	)
	for range 5 {
		if _, err := p.Receive(t.Context(), url); err != nil {
			t.Fatal(err)
		}
		if left(t, api, url) == 0 {
			break
		}
	}
	if n := left(t, api, url); n != 0 {
		t.Errorf("%d messages left on the queue, want every one handled and deleted", n)
	}

	a := cs.claim("spot-a")
	cond := a.Condition(nodeclaim.ConditionInterrupted)
	if cond == nil || cond.Status != metav1.ConditionTrue || cond.Reason != nodeclaim.ReasonSpotInterruption ||
		!strings.Contains(cond.Message, "spot interruption warning") {
		t.Errorf("spot-a Interrupted = %+v, want True/SpotInterruption", cond)
	}
	if got, want := a.Annotations[nodeclaim.AnnotationInterruptionDeadline], at.Add(2*time.Minute).Format(time.RFC3339); got != want {
		t.Errorf("spot-a deadline = %q, want %q", got, want)
	}
	if a.DeletionTimestamp != nil {
		t.Error("spot-a deleted at once; it should wait for its replacement")
	}
	if diff := cmp.Diff([]offering.Key{{InstanceType: "t3.medium", Zone: "us-east-1a", CapacityType: "spot"}}, offerings.keys); diff != "" {
		t.Errorf("offerings marked unavailable (-want +got):\n%s", diff)
	}
	b := cs.claim("od-b")
	if b.DeletionTimestamp == nil {
		t.Error("od-b, whose instance terminated, was not deleted")
	}
	if c := b.Condition(nodeclaim.ConditionInterrupted); c == nil || c.Reason != nodeclaim.ReasonInstanceTerminated {
		t.Errorf("od-b Interrupted = %+v, want reason InstanceTerminated", c)
	}
	c := cs.claim("od-c")
	if cond := c.Condition(nodeclaim.ConditionInterrupted); cond == nil || cond.Reason != nodeclaim.ReasonScheduledChange {
		t.Errorf("od-c Interrupted = %+v, want reason ScheduledChange", cond)
	}
	if got, want := c.Annotations[nodeclaim.AnnotationInterruptionDeadline], at.Add(time.Hour).Format(time.RFC3339); got != want {
		t.Errorf("od-c deadline = %q, want %q", got, want)
	}
}

func TestFailedHandlingLeavesTheMessage(t *testing.T) {
	t.Parallel()
	api := sqsClient(t)
	url := newQueue(t, api, "failing-"+strconv.FormatInt(time.Now().UnixNano(), 36))
	cs := newClaims(claim("spot-a", "i-aaa", "spot"))
	cs.failAnnotate = true
	p := NewPoller(api, NewHandler(cs, nil, nil), PollerOptions{Wait: time.Second})
	send(t, api, url, spotWarning("i-aaa", time.Now()))
	if n, err := p.Receive(t.Context(), url); err != nil || n != 1 {
		t.Fatalf("Receive = %d, %v; want 1 message", n, err)
	}
	if n := left(t, api, url); n != 1 {
		t.Errorf("%d messages on the queue, want the unhandled one back later", n)
	}
}

func TestRunReadsEveryQueue(t *testing.T) {
	t.Parallel()
	api := sqsClient(t)
	suffix := strconv.FormatInt(time.Now().UnixNano(), 36)
	byName := "class-" + suffix
	byURL := newQueue(t, api, "flag-"+suffix)
	newQueue(t, api, byName)
	cs := newClaims(claim("a", "i-aaa", "spot"), claim("b", "i-bbb", "spot"))
	p := NewPoller(api, NewHandler(cs, nil, nil), PollerOptions{
		Wait: time.Second, Refresh: 100 * time.Millisecond,
		// A node class's queue by name, the flag's by URL, and a node
		// class naming the flag's queue again.
		Queues: func() []string { return []string{byName, byURL, "", byURL} },
	})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = p.Run(ctx)
	}()
	defer func() {
		cancel()
		<-done
	}()
	nameURL, err := api.GetQueueUrl(t.Context(), &sqs.GetQueueUrlInput{QueueName: aws.String(byName)})
	if err != nil {
		t.Fatal(err)
	}
	send(t, api, aws.ToString(nameURL.QueueUrl), spotWarning("i-aaa", time.Now()))
	send(t, api, byURL, spotWarning("i-bbb", time.Now()))
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if cs.claim("a").IsTrue(nodeclaim.ConditionInterrupted) && cs.claim("b").IsTrue(nodeclaim.ConditionInterrupted) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("not both NodeClaims interrupted: a %v, b %v", cs.claim("a").Status.Conditions, cs.claim("b").Status.Conditions)
}
