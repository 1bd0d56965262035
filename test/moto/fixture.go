package moto

import (
	"context"
	"fmt"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
)

// DiscoveryTag is the tag key the fixture's subnets and security group
// carry, with the cluster name as value.
const DiscoveryTag = "karpenter.sh/discovery"

// Network is a VPC made for one test cluster.
type Network struct {
	VPC string
	// Subnets by zone: us-east-1a, us-east-1b, us-east-1c.
	Subnets       map[string]string
	SecurityGroup string
}

// CreateNetwork makes a VPC with one subnet in each of three zones and a
// security group, all tagged karpenter.sh/discovery=<cluster>.
func CreateNetwork(ctx context.Context, api *ec2.Client, cluster string) (*Network, error) {
	tags := func(rt ec2types.ResourceType, name string) []ec2types.TagSpecification {
		return []ec2types.TagSpecification{{ResourceType: rt, Tags: []ec2types.Tag{
			{Key: aws.String(DiscoveryTag), Value: aws.String(cluster)},
			{Key: aws.String("Name"), Value: aws.String(name)},
		}}}
	}
	vpc, err := api.CreateVpc(ctx, &ec2.CreateVpcInput{CidrBlock: aws.String("10.0.0.0/16"), TagSpecifications: tags(ec2types.ResourceTypeVpc, cluster)})
	if err != nil {
		return nil, fmt.Errorf("create vpc: %w", err)
	}
	n := &Network{VPC: aws.ToString(vpc.Vpc.VpcId), Subnets: map[string]string{}}
	for i, zone := range []string{"us-east-1a", "us-east-1b", "us-east-1c"} {
		sn, err := api.CreateSubnet(ctx, &ec2.CreateSubnetInput{
			VpcId: vpc.Vpc.VpcId, AvailabilityZone: aws.String(zone),
			CidrBlock:         aws.String(fmt.Sprintf("10.0.%d.0/20", i*16)),
			TagSpecifications: tags(ec2types.ResourceTypeSubnet, cluster+"-"+zone),
		})
		if err != nil {
			return nil, fmt.Errorf("create subnet in %s: %w", zone, err)
		}
		n.Subnets[zone] = aws.ToString(sn.Subnet.SubnetId)
	}
	sg, err := api.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{
		GroupName: aws.String(cluster + "-nodes"), Description: aws.String("nodes"), VpcId: vpc.Vpc.VpcId,
		TagSpecifications: tags(ec2types.ResourceTypeSecurityGroup, cluster+"-nodes"),
	})
	if err != nil {
		return nil, fmt.Errorf("create security group: %w", err)
	}
	n.SecurityGroup = aws.ToString(sg.GroupId)
	return n, nil
}

// AMIParameterPrefix is where SeedAMIParameters writes; moto refuses names
// under /aws.
const AMIParameterPrefix = "/flotilla/aws/service/eks/optimized-ami"

// SeedAMIParameters writes the al2023 alias parameters the actuator reads
// (<prefix>/<version>/amazon-linux-2023/<x86_64|arm64>/standard/recommended/image_id)
// with the ids of moto's own Amazon Linux 2023 images, and returns them by
// EC2 architecture.
func SeedAMIParameters(ctx context.Context, api *ssm.Client, prefix, kubernetesVersion string) (map[string]string, error) {
	out := map[string]string{}
	for _, arch := range []string{"x86_64", "arm64"} {
		src, err := api.GetParameter(ctx, &ssm.GetParameterInput{
			Name: aws.String("/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-6.1-" + arch),
		})
		if err != nil {
			return nil, fmt.Errorf("read moto's al2023 %s image: %w", arch, err)
		}
		id := aws.ToString(src.Parameter.Value)
		name := fmt.Sprintf("%s/%s/amazon-linux-2023/%s/standard/recommended/image_id", prefix, kubernetesVersion, arch)
		if _, err := api.PutParameter(ctx, &ssm.PutParameterInput{
			Name: aws.String(name), Value: aws.String(id), Type: ssmtypes.ParameterTypeString, Overwrite: aws.Bool(true),
		}); err != nil {
			return nil, fmt.Errorf("put %s: %w", name, err)
		}
		out[arch] = id
	}
	return out, nil
}

// FindNetwork returns the network CreateNetwork made for cluster, or nil
// when there is none.
func FindNetwork(ctx context.Context, api *ec2.Client, cluster string) (*Network, error) {
	filter := []ec2types.Filter{{Name: aws.String("tag:" + DiscoveryTag), Values: []string{cluster}}}
	vpcs, err := api.DescribeVpcs(ctx, &ec2.DescribeVpcsInput{Filters: filter})
	if err != nil {
		return nil, fmt.Errorf("describe vpcs: %w", err)
	}
	if len(vpcs.Vpcs) == 0 {
		return nil, nil
	}
	n := &Network{VPC: aws.ToString(vpcs.Vpcs[0].VpcId), Subnets: map[string]string{}}
	subnets, err := api.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{Filters: filter})
	if err != nil {
		return nil, fmt.Errorf("describe subnets: %w", err)
	}
	for _, s := range subnets.Subnets {
		n.Subnets[aws.ToString(s.AvailabilityZone)] = aws.ToString(s.SubnetId)
	}
	sgs, err := api.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{Filters: filter})
	if err != nil {
		return nil, fmt.Errorf("describe security groups: %w", err)
	}
	if len(sgs.SecurityGroups) > 0 {
		n.SecurityGroup = aws.ToString(sgs.SecurityGroups[0].GroupId)
	}
	return n, nil
}

// SubnetIDs returns the network's subnet ids, sorted.
func (n *Network) SubnetIDs() []string {
	ids := make([]string, 0, len(n.Subnets))
	for _, id := range n.Subnets {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}
