package nodeclass

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	awsv1 "github.com/flotilla-dev/flotilla/api/aws/v1"
	"github.com/flotilla-dev/flotilla/test/moto"
)

var server *moto.Server

func TestMain(m *testing.M) { moto.Main(m, &server) }

func TestResolveOnMoto(t *testing.T) {
	ctx := t.Context()
	cfg, err := server.Config(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ec2Client, ssmClient := ec2.NewFromConfig(cfg), ssm.NewFromConfig(cfg)
	net, err := moto.CreateNetwork(ctx, ec2Client, "resolve")
	if err != nil {
		t.Fatal(err)
	}
	images, err := moto.SeedAMIParameters(ctx, ssmClient, moto.AMIParameterPrefix, "1.33")
	if err != nil {
		t.Fatal(err)
	}
	r := NewResolver(ec2Client, ssmClient, Options{AMIParameterPrefix: moto.AMIParameterPrefix, KubernetesVersion: "1.33"})
	byTag := map[string]string{moto.DiscoveryTag: "resolve"}

	t.Run("subnets by tag and by id", func(t *testing.T) {
		got, err := r.Subnets(ctx, []awsv1.SubnetSelectorTerm{{Tags: byTag}})
		if err != nil {
			t.Fatal(err)
		}
		zones := map[string]string{}
		for _, s := range got {
			zones[s.Zone] = s.ID
		}
		if diff := cmp.Diff(net.Subnets, zones); diff != "" {
			t.Errorf("subnets by tag (-want +got):\n%s", diff)
		}
		one, err := r.Subnets(ctx, []awsv1.SubnetSelectorTerm{{ID: net.Subnets["us-east-1b"]}})
		if err != nil || len(one) != 1 || one[0].Zone != "us-east-1b" || one[0].ZoneID == "" {
			t.Errorf("subnet by id = %+v, %v", one, err)
		}
		wild, err := r.Subnets(ctx, []awsv1.SubnetSelectorTerm{{Tags: map[string]string{moto.DiscoveryTag: "*"}}})
		if err != nil || len(wild) < 3 {
			t.Errorf("subnets by tag key = %d, %v; want at least 3", len(wild), err)
		}
	})
	t.Run("security groups by tag, id and name", func(t *testing.T) {
		for _, term := range []awsv1.SecurityGroupSelectorTerm{{Tags: byTag}, {ID: net.SecurityGroup}, {Name: "resolve-nodes"}} {
			got, err := r.SecurityGroups(ctx, []awsv1.SecurityGroupSelectorTerm{term})
			if err != nil || len(got) != 1 || got[0].ID != net.SecurityGroup {
				t.Errorf("security groups for %+v = %+v, %v; want %s", term, got, err, net.SecurityGroup)
			}
		}
	})
	t.Run("images by alias, id and ssm parameter", func(t *testing.T) {
		got, err := r.Images(ctx, []awsv1.AMISelectorTerm{{Alias: "al2023@latest"}})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, im := range got {
			ids = append(ids, im.Arch+"="+im.ID)
		}
		if diff := cmp.Diff([]string{"amd64=" + images["x86_64"], "arm64=" + images["arm64"]}, ids); diff != "" {
			t.Errorf("alias images (-want +got):\n%s", diff)
		}
		byID, err := r.Images(ctx, []awsv1.AMISelectorTerm{{ID: images["arm64"]}})
		if err != nil || len(byID) != 1 || byID[0].Arch != "arm64" {
			t.Errorf("image by id = %+v, %v", byID, err)
		}
		bySSM, err := r.Images(ctx, []awsv1.AMISelectorTerm{{SSMParameter: "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-6.1-x86_64"}})
		if err != nil || len(bySSM) != 1 || bySSM[0].ID != images["x86_64"] {
			t.Errorf("image by ssm parameter = %+v, %v", bySSM, err)
		}
	})
	t.Run("what does not resolve is said in words", func(t *testing.T) {
		tests := []struct {
			name string
			nc   awsv1.EC2NodeClassSpec
			cond string
			want string
		}{
			{
				name: "no subnet",
				nc: awsv1.EC2NodeClassSpec{SubnetSelectorTerms: []awsv1.SubnetSelectorTerm{{Tags: map[string]string{"team": "nobody"}}},
					SecurityGroupSelectorTerms: []awsv1.SecurityGroupSelectorTerm{{Tags: byTag}}, AMISelectorTerms: []awsv1.AMISelectorTerm{{Alias: "al2023@latest"}}},
				cond: awsv1.ConditionTypeSubnetsReady,
				want: "no available subnet matches subnetSelectorTerms [{tags team=nobody}]",
			},
			{
				name: "alias of an unknown version",
				nc: awsv1.EC2NodeClassSpec{SubnetSelectorTerms: []awsv1.SubnetSelectorTerm{{Tags: byTag}},
					SecurityGroupSelectorTerms: []awsv1.SecurityGroupSelectorTerm{{Tags: byTag}}, AMISelectorTerms: []awsv1.AMISelectorTerm{{Alias: "al2023@v1999"}}},
				cond: awsv1.ConditionTypeAMIsReady,
				want: `alias "al2023@v1999" did not resolve`,
			},
			{
				name: "unsupported family",
				nc: awsv1.EC2NodeClassSpec{SubnetSelectorTerms: []awsv1.SubnetSelectorTerm{{Tags: byTag}},
					SecurityGroupSelectorTerms: []awsv1.SecurityGroupSelectorTerm{{Tags: byTag}}, AMISelectorTerms: []awsv1.AMISelectorTerm{{Alias: "bottlerocket@latest"}}},
				cond: awsv1.ConditionTypeAMIsReady,
				want: "use al2023",
			},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				nc := &awsv1.EC2NodeClass{ObjectMeta: metav1.ObjectMeta{Name: tt.name, Generation: 1}, Spec: tt.nc}
				_, err := r.Resolve(ctx, nc)
				var sel *SelectorError
				if !errors.As(err, &sel) || !errors.Is(err, ErrNotResolved) || sel.Condition != tt.cond || !strings.Contains(sel.Message, tt.want) {
					t.Fatalf("Resolve = %v, want a %s error containing %q", err, tt.cond, tt.want)
				}
				st, err := r.Status(ctx, nc)
				if err != nil {
					t.Fatal(err)
				}
				ready := meta.FindStatusCondition(st.Conditions, awsv1.ConditionTypeReady)
				if ready == nil || ready.Status != metav1.ConditionFalse || !strings.Contains(ready.Message, tt.want) {
					t.Errorf("Ready condition = %+v, want False saying %q", ready, tt.want)
				}
				if c := meta.FindStatusCondition(st.Conditions, tt.cond); c == nil || c.Status != metav1.ConditionFalse {
					t.Errorf("%s condition = %+v, want False", tt.cond, c)
				}
			})
		}
	})
	t.Run("status of a good node class", func(t *testing.T) {
		nc := &awsv1.EC2NodeClass{ObjectMeta: metav1.ObjectMeta{Name: "good", Generation: 2}, Spec: awsv1.EC2NodeClassSpec{
			SubnetSelectorTerms:        []awsv1.SubnetSelectorTerm{{Tags: byTag}},
			SecurityGroupSelectorTerms: []awsv1.SecurityGroupSelectorTerm{{Tags: byTag}},
			AMISelectorTerms:           []awsv1.AMISelectorTerm{{Alias: "al2023@latest"}},
		}}
		st, err := r.Status(ctx, nc)
		if err != nil {
			t.Fatal(err)
		}
		if !meta.IsStatusConditionTrue(st.Conditions, awsv1.ConditionTypeReady) || len(st.Subnets) != 3 || len(st.SecurityGroups) != 1 || len(st.AMIs) != 2 {
			t.Errorf("status = %+v, want Ready with 3 subnets, 1 security group, 2 images", st)
		}
	})
}

func TestAliasParameter(t *testing.T) {
	t.Parallel()
	got, err := AliasParameter("/aws/service/eks/optimized-ami", "1.33", "al2023@v20250101", "arm64")
	want := "/aws/service/eks/optimized-ami/1.33/amazon-linux-2023/arm64/standard/amazon-eks-node-al2023-arm64-standard-1.33-v20250101/image_id"
	if err != nil || got != want {
		t.Errorf("AliasParameter = %q, %v; want %q", got, err, want)
	}
}

// TestNotReadyClassesAreResolvedSoon: while a node class is not ready (its
// subnets gone after EC2 lost them, say), it is looked at again within
// NotReadyRetry, not after the full interval; ready classes wait the
// interval.
func TestNotReadyClassesAreResolvedSoon(t *testing.T) {
	for _, c := range []struct {
		interval time.Duration
		ready    bool
		want     time.Duration
	}{
		{time.Minute, true, time.Minute},
		{time.Minute, false, NotReadyRetry},
		{5 * time.Second, false, 5 * time.Second},
	} {
		if got := nextResolve(c.interval, c.ready); got != c.want {
			t.Errorf("nextResolve(%s, ready=%v) = %s, want %s", c.interval, c.ready, got, c.want)
		}
	}
}
