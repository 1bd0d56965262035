// Package interruption reads EC2's interruption notices from SQS queues (the
// EventBridge events AWS sends when a spot instance is about to be
// reclaimed, recommends rebalancing, schedules maintenance, or an instance
// stops or terminates) and acts on each for the NodeClaim whose instance it
// names: a warning marks the NodeClaim Interrupted (with the deadline when
// AWS gave one), so that the planner plans a replacement at once and the
// disruption package drains the node when the replacement is ready or just
// before the deadline; an instance that is stopping or gone has its
// NodeClaim deleted, which drains what is left and cleans up. A spot
// warning also marks the offering unavailable for a while, so the
// replacement is not launched into the pool AWS is reclaiming. Handled
// messages are deleted; a message that fails to be handled comes back after
// the queue's visibility timeout.
package interruption

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Kind is the kind of a notice.
type Kind int

// Kinds of notices.
const (
	KindUnknown Kind = iota
	// KindSpotInterruption: AWS reclaims a spot instance in two minutes.
	KindSpotInterruption
	// KindRebalanceRecommendation: a spot instance is at elevated risk of
	// interruption.
	KindRebalanceRecommendation
	// KindScheduledChange: AWS Health scheduled maintenance or retirement.
	KindScheduledChange
	// KindStateChange: the instance is stopping, stopped, shutting down or
	// terminated.
	KindStateChange
)

func (k Kind) String() string {
	switch k {
	case KindSpotInterruption:
		return "spot interruption warning"
	case KindRebalanceRecommendation:
		return "rebalance recommendation"
	case KindScheduledChange:
		return "scheduled change"
	case KindStateChange:
		return "state change"
	}
	return "unknown"
}

// SpotWarning is how long AWS gives between a spot interruption warning
// and taking the instance.
const SpotWarning = 2 * time.Minute

// Notice is one parsed interruption message.
type Notice struct {
	Kind Kind
	// ID is the event id AWS gave.
	ID          string
	InstanceIDs []string
	// State is the new instance state of a state change.
	State string
	// Time is when AWS sent the event.
	Time time.Time
	// Deadline is when the instance will be taken away; zero when AWS said
	// nothing about it.
	Deadline time.Time
	// Detail is the event in words, for conditions and logs.
	Detail string
}

// ErrNotInterruption is returned (wrapped) for a well-formed message that is
// not an interruption notice (another event type on the queue).
var ErrNotInterruption = errors.New("not an interruption notice")

// event is an EventBridge event as delivered to SQS.
type event struct {
	ID         string          `json:"id"`
	DetailType string          `json:"detail-type"`
	Source     string          `json:"source"`
	Time       string          `json:"time"`
	Resources  []string        `json:"resources"`
	Detail     json.RawMessage `json:"detail"`
}

type ec2Detail struct {
	InstanceID     string `json:"instance-id"`
	InstanceAction string `json:"instance-action"`
	State          string `json:"state"`
}

type healthDetail struct {
	Service           string `json:"service"`
	EventTypeCode     string `json:"eventTypeCode"`
	EventTypeCategory string `json:"eventTypeCategory"`
	StartTime         string `json:"startTime"`
	AffectedEntities  []struct {
		EntityValue string `json:"entityValue"`
	} `json:"affectedEntities"`
}

// Parse reads an EventBridge event from an SQS message body.
func Parse(body string) (Notice, error) {
	var ev event
	if err := json.Unmarshal([]byte(body), &ev); err != nil {
		return Notice{}, fmt.Errorf("parse interruption message: %w", err)
	}
	n := Notice{ID: ev.ID}
	if ev.Time != "" {
		t, err := time.Parse(time.RFC3339, ev.Time)
		if err != nil {
			return Notice{}, fmt.Errorf("parse interruption message %s: time %q: %w", ev.ID, ev.Time, err)
		}
		n.Time = t
	}
	switch {
	case ev.Source == "aws.ec2" && ev.DetailType == "EC2 Spot Instance Interruption Warning":
		d, err := ec2DetailOf(ev)
		if err != nil {
			return Notice{}, err
		}
		n.Kind, n.InstanceIDs = KindSpotInterruption, []string{d.InstanceID}
		if !n.Time.IsZero() {
			n.Deadline = n.Time.Add(SpotWarning)
		}
		action := d.InstanceAction
		if action == "" {
			action = "terminate"
		}
		n.Detail = fmt.Sprintf("spot interruption warning: AWS will %s instance %s", action, d.InstanceID)
	case ev.Source == "aws.ec2" && ev.DetailType == "EC2 Instance Rebalance Recommendation":
		d, err := ec2DetailOf(ev)
		if err != nil {
			return Notice{}, err
		}
		n.Kind, n.InstanceIDs = KindRebalanceRecommendation, []string{d.InstanceID}
		n.Detail = fmt.Sprintf("rebalance recommendation: spot instance %s is at elevated risk of interruption", d.InstanceID)
	case ev.Source == "aws.ec2" && ev.DetailType == "EC2 Instance State-change Notification":
		d, err := ec2DetailOf(ev)
		if err != nil {
			return Notice{}, err
		}
		switch d.State {
		case "stopping", "stopped", "shutting-down", "terminated":
		default:
			return Notice{}, fmt.Errorf("instance %s is %s: %w", d.InstanceID, d.State, ErrNotInterruption)
		}
		n.Kind, n.InstanceIDs, n.State = KindStateChange, []string{d.InstanceID}, d.State
		n.Detail = fmt.Sprintf("instance %s is %s", d.InstanceID, d.State)
	case ev.Source == "aws.health" && ev.DetailType == "AWS Health Event":
		var d healthDetail
		if err := json.Unmarshal(ev.Detail, &d); err != nil {
			return Notice{}, fmt.Errorf("parse health event %s: %w", ev.ID, err)
		}
		if d.Service != "EC2" || d.EventTypeCategory != "scheduledChange" {
			return Notice{}, fmt.Errorf("health event %s (%s %s): %w", ev.ID, d.Service, d.EventTypeCategory, ErrNotInterruption)
		}
		for _, e := range d.AffectedEntities {
			if strings.HasPrefix(e.EntityValue, "i-") {
				n.InstanceIDs = append(n.InstanceIDs, e.EntityValue)
			}
		}
		if len(n.InstanceIDs) == 0 {
			return Notice{}, fmt.Errorf("health event %s names no instance: %w", ev.ID, ErrNotInterruption)
		}
		n.Kind = KindScheduledChange
		if t, ok := healthTime(d.StartTime); ok {
			n.Deadline = t
		}
		n.Detail = fmt.Sprintf("scheduled change %s for %s", d.EventTypeCode, strings.Join(n.InstanceIDs, ", "))
		if !n.Deadline.IsZero() {
			n.Detail += " starting " + n.Deadline.UTC().Format(time.RFC3339)
		}
	default:
		return Notice{}, fmt.Errorf("%s event %q: %w", ev.Source, ev.DetailType, ErrNotInterruption)
	}
	return n, nil
}

func ec2DetailOf(ev event) (ec2Detail, error) {
	var d ec2Detail
	if err := json.Unmarshal(ev.Detail, &d); err != nil {
		return d, fmt.Errorf("parse %s %s: %w", ev.DetailType, ev.ID, err)
	}
	if d.InstanceID == "" {
		for _, r := range ev.Resources {
			if i := strings.LastIndex(r, "/"); i >= 0 && strings.HasPrefix(r[i+1:], "i-") {
				d.InstanceID = r[i+1:]
			}
		}
	}
	if d.InstanceID == "" {
		return d, fmt.Errorf("%s %s names no instance: %w", ev.DetailType, ev.ID, ErrNotInterruption)
	}
	return d, nil
}

// healthTime parses an AWS Health time: RFC 1123 ("Sat, 05 Jun 2021
// 15:10:09 GMT") or RFC 3339.
func healthTime(s string) (time.Time, bool) {
	for _, layout := range []string{time.RFC1123, time.RFC1123Z, time.RFC3339} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}
