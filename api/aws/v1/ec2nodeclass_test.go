package v1_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"

	awsv1 "github.com/flotilla-dev/flotilla/api/aws/v1"
)

func TestEC2NodeClassExamplesRoundTrip(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("testdata/ec2nodeclass-*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			t.Parallel()
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var nc awsv1.EC2NodeClass
			if err := yaml.UnmarshalStrict(data, &nc); err != nil {
				t.Fatalf("decode: %v", err)
			}
			out, err := yaml.Marshal(&nc)
			if err != nil {
				t.Fatal(err)
			}
			var again awsv1.EC2NodeClass
			if err := yaml.UnmarshalStrict(out, &again); err != nil {
				t.Fatalf("decode own output: %v\n%s", err, out)
			}
			if diff := cmp.Diff(nc, again); diff != "" {
				t.Errorf("round trip changed the EC2NodeClass (-before +after):\n%s", diff)
			}
		})
	}
}

func TestEC2NodeClassFullExample(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("testdata/ec2nodeclass-full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var nc awsv1.EC2NodeClass
	if err := yaml.UnmarshalStrict(data, &nc); err != nil {
		t.Fatal(err)
	}
	s := nc.Spec
	if s.InterruptionQueue != "my-cluster-interruptions" {
		t.Errorf("interruptionQueue = %q", s.InterruptionQueue)
	}
	if got := s.BlockDeviceMappings[0].EBS.VolumeSize.Value(); got != 100<<30 {
		t.Errorf("volumeSize = %d bytes, want 100Gi", got)
	}
	if got := s.Kubelet.EvictionSoftGracePeriod["memory.available"].Duration.Seconds(); got != 90 {
		t.Errorf("evictionSoftGracePeriod = %vs, want 90s", got)
	}
	if !nc.IsTrue(awsv1.ConditionTypeReady) || nc.Condition(awsv1.ConditionTypeSubnetsReady) != nil {
		t.Errorf("conditions: Ready=%v SubnetsReady=%v", nc.IsTrue(awsv1.ConditionTypeReady), nc.Condition(awsv1.ConditionTypeSubnetsReady))
	}
	want := awsv1.Subnet{ID: "subnet-0a1b2c3d", Zone: "us-east-1a", ZoneID: "use1-az1"}
	if diff := cmp.Diff([]awsv1.Subnet{want}, nc.Status.Subnets); diff != "" {
		t.Errorf("status.subnets mismatch (-want +got):\n%s", diff)
	}
}
