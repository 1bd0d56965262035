package interruption

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// Messages as EventBridge delivers them to SQS.

func spotWarning(instance string, at time.Time) string {
	return fmt.Sprintf(`{"version":"0","id":"spot-%[1]s","detail-type":"EC2 Spot Instance Interruption Warning","source":"aws.ec2",
"account":"123456789012","time":%[2]q,"region":"us-east-1","resources":["arn:aws:ec2:us-east-1a:instance/%[1]s"],
"detail":{"instance-id":%[1]q,"instance-action":"terminate"}}`, instance, at.UTC().Format(time.RFC3339))
}

func rebalance(instance string, at time.Time) string {
	return fmt.Sprintf(`{"version":"0","id":"rebalance-%[1]s","detail-type":"EC2 Instance Rebalance Recommendation","source":"aws.ec2",
"account":"123456789012","time":%[2]q,"region":"us-east-1","resources":["arn:aws:ec2:us-east-1a:instance/%[1]s"],
"detail":{"instance-id":%[1]q}}`, instance, at.UTC().Format(time.RFC3339))
}

func stateChange(instance, state string, at time.Time) string {
	return fmt.Sprintf(`{"version":"0","id":"state-%[1]s","detail-type":"EC2 Instance State-change Notification","source":"aws.ec2",
"account":"123456789012","time":%[2]q,"region":"us-east-1","resources":["arn:aws:ec2:us-east-1:123456789012:instance/%[1]s"],
"detail":{"instance-id":%[1]q,"state":%[3]q}}`, instance, at.UTC().Format(time.RFC3339), state)
}

func scheduledChange(instance string, at, start time.Time) string {
	return fmt.Sprintf(`{"version":"0","id":"health-%[1]s","detail-type":"AWS Health Event","source":"aws.health",
"account":"123456789012","time":%[2]q,"region":"us-east-1","resources":[],
"detail":{"eventArn":"arn:aws:health:us-east-1::event/EC2/AWS_EC2_INSTANCE_RETIREMENT_SCHEDULED/x","service":"EC2",
"eventTypeCode":"AWS_EC2_INSTANCE_RETIREMENT_SCHEDULED","eventTypeCategory":"scheduledChange",
"startTime":%[3]q,"affectedEntities":[{"entityValue":%[1]q}]}}`, instance, at.UTC().Format(time.RFC3339), start.UTC().Format(time.RFC1123))
}

func TestParse(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	start := time.Date(2026, 3, 8, 9, 30, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		body string
		want Notice
	}{
		{"spot warning", spotWarning("i-0abc", at), Notice{Kind: KindSpotInterruption, ID: "spot-i-0abc", InstanceIDs: []string{"i-0abc"},
			Time: at, Deadline: at.Add(2 * time.Minute), Detail: "spot interruption warning: AWS will terminate instance i-0abc"}},
		{"rebalance", rebalance("i-0abc", at), Notice{Kind: KindRebalanceRecommendation, ID: "rebalance-i-0abc", InstanceIDs: []string{"i-0abc"},
			Time: at, Detail: "rebalance recommendation: spot instance i-0abc is at elevated risk of interruption"}},
		{"stopping", stateChange("i-0abc", "stopping", at), Notice{Kind: KindStateChange, ID: "state-i-0abc", InstanceIDs: []string{"i-0abc"},
			State: "stopping", Time: at, Detail: "instance i-0abc is stopping"}},
		{"terminated", stateChange("i-0abc", "terminated", at), Notice{Kind: KindStateChange, ID: "state-i-0abc", InstanceIDs: []string{"i-0abc"},
			State: "terminated", Time: at, Detail: "instance i-0abc is terminated"}},
		{"scheduled change", scheduledChange("i-0abc", at, start), Notice{Kind: KindScheduledChange, ID: "health-i-0abc", InstanceIDs: []string{"i-0abc"},
			Time: at, Deadline: start, Detail: "scheduled change AWS_EC2_INSTANCE_RETIREMENT_SCHEDULED for i-0abc starting 2026-03-08T09:30:00Z"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := Parse(tc.body)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Parse (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseRejects(t *testing.T) {
	t.Parallel()
	at := time.Now()
	for _, tc := range []struct {
		name            string
		body            string
		notInterruption bool
	}{
		{"running is no interruption", stateChange("i-0abc", "running", at), true},
		{"another event", `{"id":"x","source":"aws.s3","detail-type":"Object Created","detail":{}}`, true},
		{"health event of another service", `{"id":"x","source":"aws.health","detail-type":"AWS Health Event","detail":{"service":"RDS","eventTypeCategory":"scheduledChange"}}`, true},
		{"no instance", `{"id":"x","source":"aws.ec2","detail-type":"EC2 Spot Instance Interruption Warning","detail":{}}`, true},
		{"not json", `<xml/>`, false},
		{"bad time", `{"id":"x","time":"yesterday","source":"aws.ec2","detail-type":"EC2 Spot Instance Interruption Warning","detail":{"instance-id":"i-1"}}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse(tc.body)
			if err == nil {
				t.Fatal("Parse succeeded")
			}
			if got := errors.Is(err, ErrNotInterruption); got != tc.notInterruption {
				t.Errorf("errors.Is(%v, ErrNotInterruption) = %v, want %v", err, got, tc.notInterruption)
			}
		})
	}
}
