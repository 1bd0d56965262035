// Package kubelet simulates, for the local environment, the kubelets of the
// EC2 instances Flotilla launches and the node lifecycle part of the cloud
// controller manager. It polls EC2 (moto) for running instances tagged for the
// cluster and registers a Node for each, built from the instance type and the
// instance's bootstrap user data (see NodeConfig), with the kwok annotation so
// kwok keeps it Ready and runs the pods bound to it. When an instance stops
// running, its Node is deleted. Nodes without the kwok annotation are never
// touched.
package kubelet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// EC2API is the part of the EC2 client the simulator calls.
type EC2API interface {
	DescribeInstances(ctx context.Context, in *ec2.DescribeInstancesInput, opts ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error)
	DescribeInstanceTypes(ctx context.Context, in *ec2.DescribeInstanceTypesInput, opts ...func(*ec2.Options)) (*ec2.DescribeInstanceTypesOutput, error)
	DescribeInstanceAttribute(ctx context.Context, in *ec2.DescribeInstanceAttributeInput, opts ...func(*ec2.Options)) (*ec2.DescribeInstanceAttributeOutput, error)
}

// Config configures a Simulator.
type Config struct {
	// ClusterName selects instances tagged kubernetes.io/cluster/<name>=owned.
	ClusterName string
	// Region is written as topology.kubernetes.io/region; derived from the
	// zone when empty.
	Region string
	// Interval between syncs; 1s when zero.
	Interval time.Duration
}

// Simulator registers and removes Nodes for the cluster's EC2 instances.
type Simulator struct {
	ec2  EC2API
	kube kubernetes.Interface
	cfg  Config
	log  *slog.Logger

	mu         sync.Mutex
	types      map[string]InstanceType
	bootstraps map[string]*Bootstrap // by instance id; nil: no usable bootstrap
	warned     map[string]bool
	synced     bool
	lastOK     time.Time
	lastErr    error
}

// New returns a Simulator. log receives registrations, deletions and
// warnings.
func New(ec2Client EC2API, kube kubernetes.Interface, cfg Config, log *slog.Logger) *Simulator {
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.ClusterName == "" {
		cfg.ClusterName = "my-cluster"
	}
	return &Simulator{
		ec2:        ec2Client,
		kube:       kube,
		cfg:        cfg,
		log:        log,
		types:      map[string]InstanceType{},
		bootstraps: map[string]*Bootstrap{},
		warned:     map[string]bool{},
	}
}

// Run syncs at once and then every interval until ctx is done. A failed
// sync is logged and retried at the next tick.
func (s *Simulator) Run(ctx context.Context) error {
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	for {
		if err := s.Sync(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("sync_failed", "error", err.Error())
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Healthy reports nil once a sync has succeeded and the syncs have not been
// failing for longer than five intervals.
func (s *Simulator) Healthy() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.synced {
		if s.lastErr != nil {
			return fmt.Errorf("not synced yet: %w", s.lastErr)
		}
		return errors.New("not synced yet")
	}
	if s.lastErr != nil && time.Since(s.lastOK) > 5*s.cfg.Interval {
		return fmt.Errorf("failing since %s: %w", s.lastOK.Format(time.RFC3339), s.lastErr)
	}
	return nil
}

// Sync makes the Nodes match the running instances once: it registers a Node
// for each running instance that has none and deletes the kwok Nodes whose
// instance no longer runs.
func (s *Simulator) Sync(ctx context.Context) error {
	err := s.sync(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastErr = err
	if err == nil {
		s.synced = true
		s.lastOK = time.Now()
	}
	return err
}

func (s *Simulator) sync(ctx context.Context) error {
	// Every running instance counts for deletion (a Node of an instance of
	// another cluster is not ours to remove); only the owned ones get Nodes.
	running, instances, err := s.runningInstances(ctx)
	if err != nil {
		return err
	}
	nodes, err := s.kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("list nodes: %w", err)
	}
	byName := map[string]*corev1.Node{}
	var errs []error
	for i := range nodes.Items {
		n := &nodes.Items[i]
		byName[n.Name] = n
		if n.Annotations[KwokAnnotation] != KwokAnnotationValue {
			continue
		}
		id := instanceIDFromProviderID(n.Spec.ProviderID)
		if id == "" || running[id] {
			continue
		}
		if err := s.deleteNode(ctx, n, id); err != nil {
			errs = append(errs, err)
		}
	}
	if err := s.learnTypes(ctx, instances); err != nil {
		errs = append(errs, err)
	}
	for _, inst := range instances {
		if existing, ok := byName[inst.NodeName()]; ok {
			if existing.Annotations[KwokAnnotation] != KwokAnnotationValue {
				s.warnOnce("name:"+existing.Name, "node_name_taken", "node", existing.Name, "instance_id", inst.ID)
			}
			continue
		}
		if err := s.register(ctx, inst); err != nil {
			errs = append(errs, err)
		}
	}
	s.forgetGone(running)
	return errors.Join(errs...)
}

func (s *Simulator) deleteNode(ctx context.Context, n *corev1.Node, instanceID string) error {
	err := s.kube.CoreV1().Nodes().Delete(ctx, n.Name, metav1.DeleteOptions{
		Preconditions: &metav1.Preconditions{UID: &n.UID},
	})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("delete node %s: %w", n.Name, err)
	}
	s.log.Info("node_deleted", "node", n.Name, "instance_id", instanceID)
	return nil
}

func (s *Simulator) register(ctx context.Context, inst Instance) error {
	s.mu.Lock()
	it, ok := s.types[inst.Type]
	s.mu.Unlock()
	if !ok {
		s.warnOnce("type:"+inst.Type, "unknown_instance_type", "instance_type", inst.Type, "instance_id", inst.ID)
		return nil
	}
	b, err := s.bootstrap(ctx, inst.ID)
	if err != nil {
		return err
	}
	node := NodeFor(inst, it, s.cfg.Region, b)
	_, err = s.kube.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("register node %s: %w", node.Name, err)
	}
	attrs := []any{"node", node.Name, "instance_id", inst.ID, "instance_type", inst.Type,
		"zone", inst.Zone, "bootstrap", b != nil}
	if !inst.LaunchTime.IsZero() {
		attrs = append(attrs, "since_launch", time.Since(inst.LaunchTime).Round(time.Millisecond).String())
	}
	s.log.Info("node_registered", attrs...)
	return nil
}

// runningInstances returns the ids of all running instances, and those of
// them tagged kubernetes.io/cluster/<name>=owned.
func (s *Simulator) runningInstances(ctx context.Context) (map[string]bool, []Instance, error) {
	in := &ec2.DescribeInstancesInput{Filters: []ec2types.Filter{
		{Name: aws.String("instance-state-name"), Values: []string{"running"}},
	}}
	clusterTag := "kubernetes.io/cluster/" + s.cfg.ClusterName
	running := map[string]bool{}
	var out []Instance
	p := ec2.NewDescribeInstancesPaginator(s.ec2, in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, nil, fmt.Errorf("describe instances: %w", err)
		}
		for _, r := range page.Reservations {
			for _, i := range r.Instances {
				if i.State == nil || i.State.Name != ec2types.InstanceStateNameRunning {
					continue
				}
				running[aws.ToString(i.InstanceId)] = true
				if !hasTag(i.Tags, clusterTag, "owned") {
					continue
				}
				inst := Instance{
					ID:             aws.ToString(i.InstanceId),
					Type:           string(i.InstanceType),
					PrivateDNSName: aws.ToString(i.PrivateDnsName),
					PrivateIP:      aws.ToString(i.PrivateIpAddress),
					Spot:           i.InstanceLifecycle == ec2types.InstanceLifecycleTypeSpot,
					LaunchTime:     aws.ToTime(i.LaunchTime),
				}
				if i.Placement != nil {
					inst.Zone = aws.ToString(i.Placement.AvailabilityZone)
				}
				out = append(out, inst)
			}
		}
	}
	return running, out, nil
}

func hasTag(tags []ec2types.Tag, key, value string) bool {
	for _, t := range tags {
		if aws.ToString(t.Key) == key {
			return aws.ToString(t.Value) == value
		}
	}
	return false
}

// learnTypes describes the instance types not seen before.
func (s *Simulator) learnTypes(ctx context.Context, instances []Instance) error {
	s.mu.Lock()
	var missing []ec2types.InstanceType
	seen := map[string]bool{}
	for _, i := range instances {
		if _, ok := s.types[i.Type]; !ok && !seen[i.Type] {
			seen[i.Type] = true
			missing = append(missing, ec2types.InstanceType(i.Type))
		}
	}
	s.mu.Unlock()
	if len(missing) == 0 {
		return nil
	}
	p := ec2.NewDescribeInstanceTypesPaginator(s.ec2, &ec2.DescribeInstanceTypesInput{InstanceTypes: missing})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("describe instance types: %w", err)
		}
		s.mu.Lock()
		for _, t := range page.InstanceTypes {
			it := InstanceType{Arch: "amd64"}
			if t.ProcessorInfo != nil && len(t.ProcessorInfo.SupportedArchitectures) > 0 {
				it.Arch = KubernetesArch(string(t.ProcessorInfo.SupportedArchitectures[0]))
			}
			if t.VCpuInfo != nil {
				it.VCPU = aws.ToInt32(t.VCpuInfo.DefaultVCpus)
			}
			if t.MemoryInfo != nil {
				it.MemoryMiB = aws.ToInt64(t.MemoryInfo.SizeInMiB)
			}
			s.types[string(t.InstanceType)] = it
		}
		s.mu.Unlock()
	}
	return nil
}

// bootstrap reads and parses an instance's user data once. It returns nil,
// after one warning, when the user data is missing or unparseable.
func (s *Simulator) bootstrap(ctx context.Context, instanceID string) (*Bootstrap, error) {
	s.mu.Lock()
	b, ok := s.bootstraps[instanceID]
	s.mu.Unlock()
	if ok {
		return b, nil
	}
	out, err := s.ec2.DescribeInstanceAttribute(ctx, &ec2.DescribeInstanceAttributeInput{
		InstanceId: aws.String(instanceID),
		Attribute:  ec2types.InstanceAttributeNameUserData,
	})
	if err != nil {
		return nil, fmt.Errorf("describe user data of %s: %w", instanceID, err)
	}
	var userData string
	if out.UserData != nil {
		userData = aws.ToString(out.UserData.Value)
	}
	switch parsed, err := ParseUserData(userData); {
	case userData == "":
		s.warnOnce("userdata:"+instanceID, "user_data_missing", "instance_id", instanceID)
	case err != nil:
		s.warnOnce("userdata:"+instanceID, "user_data_unparseable", "instance_id", instanceID, "error", err.Error())
	default:
		b = &parsed
	}
	s.mu.Lock()
	s.bootstraps[instanceID] = b
	s.mu.Unlock()
	return b, nil
}

// forgetGone drops what is cached about instances that no longer run.
func (s *Simulator) forgetGone(running map[string]bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id := range s.bootstraps {
		if !running[id] {
			delete(s.bootstraps, id)
			delete(s.warned, "userdata:"+id)
		}
	}
}

func (s *Simulator) warnOnce(key, msg string, attrs ...any) {
	s.mu.Lock()
	seen := s.warned[key]
	s.warned[key] = true
	s.mu.Unlock()
	if !seen {
		s.log.Warn(msg, attrs...)
	}
}
