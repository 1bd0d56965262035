package nodeclass

import (
	"context"
	"errors"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"

	awsv1 "github.com/flotilla-dev/flotilla/api/aws/v1"
)

// StatusWriter writes an EC2NodeClass's status.
type StatusWriter interface {
	UpdateEC2NodeClassStatus(ctx context.Context, nc *awsv1.EC2NodeClass) (*awsv1.EC2NodeClass, error)
}

// Status is the status a node class should have now: what each selector
// resolved to, and a condition per selector saying so or why not. The error
// is for API failures (the status is then left as it was).
func (r *Resolver) Status(ctx context.Context, nc *awsv1.EC2NodeClass) (awsv1.EC2NodeClassStatus, error) {
	st := *nc.Status.DeepCopy()
	st.Subnets, st.SecurityGroups, st.AMIs = nil, nil, nil
	set := func(t string, err error, ok string) error {
		var sel *SelectorError
		switch {
		case err == nil:
			meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: t, Status: metav1.ConditionTrue, Reason: "Resolved", Message: ok, ObservedGeneration: nc.Generation})
		case errors.As(err, &sel):
			meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: t, Status: metav1.ConditionFalse, Reason: "NotResolved", Message: sel.Message, ObservedGeneration: nc.Generation})
		default:
			return err
		}
		return nil
	}
	subnets, err := r.Subnets(ctx, nc.Spec.SubnetSelectorTerms)
	for _, s := range subnets {
		st.Subnets = append(st.Subnets, awsv1.Subnet{ID: s.ID, Zone: s.Zone, ZoneID: s.ZoneID})
	}
	if err := set(awsv1.ConditionTypeSubnetsReady, err, "subnets resolved"); err != nil {
		return st, err
	}
	groups, err := r.SecurityGroups(ctx, nc.Spec.SecurityGroupSelectorTerms)
	for _, g := range groups {
		st.SecurityGroups = append(st.SecurityGroups, awsv1.SecurityGroup{ID: g.ID, Name: g.Name})
	}
	if err := set(awsv1.ConditionTypeSecurityGroupsReady, err, "security groups resolved"); err != nil {
		return st, err
	}
	images, err := r.Images(ctx, nc.Spec.AMISelectorTerms)
	for _, im := range images {
		st.AMIs = append(st.AMIs, awsv1.AMI{ID: im.ID, Name: im.Name, Requirements: []corev1.NodeSelectorRequirement{
			{Key: corev1.LabelArchStable, Operator: corev1.NodeSelectorOpIn, Values: []string{im.Arch}},
		}})
	}
	if err := set(awsv1.ConditionTypeAMIsReady, err, "images resolved"); err != nil {
		return st, err
	}
	if nc.Spec.InstanceProfile != "" {
		st.InstanceProfile = nc.Spec.InstanceProfile
	}
	ready := metav1.Condition{Type: awsv1.ConditionTypeReady, Status: metav1.ConditionTrue, Reason: "Ready", Message: "", ObservedGeneration: nc.Generation}
	for _, t := range []string{awsv1.ConditionTypeSubnetsReady, awsv1.ConditionTypeSecurityGroupsReady, awsv1.ConditionTypeAMIsReady} {
		if c := meta.FindStatusCondition(st.Conditions, t); c != nil && c.Status != metav1.ConditionTrue {
			ready.Status, ready.Reason = metav1.ConditionFalse, t+"False"
			if ready.Message != "" {
				ready.Message += "; "
			}
			ready.Message += c.Message
		}
	}
	meta.SetStatusCondition(&st.Conditions, ready)
	return st, nil
}

// RunStatus keeps the status of every EC2NodeClass in the informer's store
// current: on every change and every interval (NotReadyRetry while one is
// not ready). It blocks until ctx ends.
func (r *Resolver) RunStatus(ctx context.Context, informer cache.SharedIndexInformer, w StatusWriter, interval time.Duration, log *slog.Logger) error {
	if log == nil {
		log = slog.Default()
	}
	if interval <= 0 {
		interval = time.Minute
	}
	trigger := make(chan struct{}, 1)
	poke := func(any) {
		select {
		case trigger <- struct{}{}:
		default:
		}
	}
	if _, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: poke, UpdateFunc: func(_, o any) { poke(o) },
	}); err != nil {
		return err
	}
	go informer.RunWithContext(ctx)
	t := time.NewTimer(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-trigger:
		case <-r.refresh:
		case <-t.C:
		}
		allReady := true
		for _, obj := range informer.GetStore().List() {
			nc, ok := obj.(*awsv1.EC2NodeClass)
			if !ok || nc.DeletionTimestamp != nil {
				continue
			}
			r.Forget(nc.Name)
			st, err := r.Status(ctx, nc)
			if err != nil {
				allReady = false
				log.WarnContext(ctx, "nodeclass_status_failed", "nodeclass", nc.Name, "error", err.Error())
				continue
			}
			if !meta.IsStatusConditionTrue(st.Conditions, awsv1.ConditionTypeReady) {
				allReady = false
			}
			if equality.Semantic.DeepEqual(st, nc.Status) {
				continue
			}
			cp := nc.DeepCopy()
			cp.Status = st
			if _, err := w.UpdateEC2NodeClassStatus(ctx, cp); err != nil {
				allReady = false
				log.WarnContext(ctx, "nodeclass_status_failed", "nodeclass", nc.Name, "error", err.Error())
				continue
			}
			log.InfoContext(ctx, "nodeclass_status_updated", "nodeclass", nc.Name,
				"ready", meta.IsStatusConditionTrue(st.Conditions, awsv1.ConditionTypeReady))
		}
		t.Reset(nextResolve(interval, allReady))
	}
}

// NotReadyRetry is how soon node classes are resolved again while one is
// not ready: subnets, security groups or images that were missing a moment
// ago (an account being set up, EC2 answering errors) hold back every
// launch of the class, so they are looked for again well before the
// interval.
const NotReadyRetry = 10 * time.Second

// nextResolve is the wait before the next resolution.
func nextResolve(interval time.Duration, allReady bool) time.Duration {
	if allReady {
		return interval
	}
	return min(interval, NotReadyRetry)
}
