package instance

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	awsv1 "github.com/flotilla-dev/flotilla/api/aws/v1"
)

// template is the content of one launch template: everything but the
// instance type and subnet, which the fleet overrides.
type template struct {
	NodeClass       string
	ImageID         string
	Arch            string
	UserData        string
	SecurityGroups  []string
	InstanceProfile string
	BlockDevices    []awsv1.BlockDeviceMapping `json:",omitempty"`
	Metadata        *awsv1.MetadataOptions     `json:",omitempty"`
	PublicIP        *bool                      `json:",omitempty"`
	Monitoring      *bool                      `json:",omitempty"`
	Tags            map[string]string          `json:",omitempty"`
}

// name is the launch template's name: the cluster and a hash of the
// content, so the same content reuses the same template and a change makes
// a new one.
func (t *template) name(cluster string) (string, error) {
	b, err := json.Marshal(t)
	if err != nil {
		return "", fmt.Errorf("hash launch template: %w", err)
	}
	sum := sha256.Sum256(b)
	return "flotilla/" + cluster + "/" + hex.EncodeToString(sum[:10]), nil
}

// ensureTemplate returns the name of the launch template with this content,
// creating it when it does not exist yet.
func (p *Provider) ensureTemplate(ctx context.Context, t *template) (string, error) {
	name, err := t.name(p.cluster)
	if err != nil {
		return "", err
	}
	p.mu.Lock()
	_, ok := p.templates[name]
	p.mu.Unlock()
	if ok {
		return name, nil
	}
	out, err := p.ec2.DescribeLaunchTemplates(ctx, &ec2.DescribeLaunchTemplatesInput{LaunchTemplateNames: []string{name}})
	switch {
	case err == nil && len(out.LaunchTemplates) > 0:
		p.remember(name, aws.ToString(out.LaunchTemplates[0].LaunchTemplateId))
		return name, nil
	case err != nil && !isCode(err, "InvalidLaunchTemplateName.NotFoundException"):
		return "", fmt.Errorf("describe launch template %s: %w", name, err)
	}
	created, err := p.ec2.CreateLaunchTemplate(ctx, &ec2.CreateLaunchTemplateInput{
		LaunchTemplateName: aws.String(name),
		LaunchTemplateData: t.data(),
		TagSpecifications: []ec2types.TagSpecification{{
			ResourceType: ec2types.ResourceTypeLaunchTemplate,
			Tags:         ec2Tags(p.templateTags(t)),
		}},
	})
	if err != nil {
		if isCode(err, "InvalidLaunchTemplateName.AlreadyExistsException") {
			// Another launch created it meanwhile.
			return name, nil
		}
		return "", fmt.Errorf("create launch template %s: %w", name, err)
	}
	p.remember(name, aws.ToString(created.LaunchTemplate.LaunchTemplateId))
	p.log.InfoContext(ctx, "launch_template_created", "name", name, "node_class", t.NodeClass, "image", t.ImageID, "arch", t.Arch)
	return name, nil
}

func (p *Provider) remember(name, id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.templates[name] = id
}

func (p *Provider) templateTags(t *template) map[string]string {
	tags := map[string]string{}
	for k, v := range t.Tags {
		tags[k] = v
	}
	k, v := p.ClusterTag()
	tags[k] = v
	tags[awsv1.TagManagedBy] = p.cluster
	tags[awsv1.TagEC2NodeClass] = t.NodeClass
	tags[awsv1.TagEKSClusterName] = p.cluster
	return tags
}

// data is the launch template's data.
func (t *template) data() *ec2types.RequestLaunchTemplateData {
	d := &ec2types.RequestLaunchTemplateData{
		ImageId:  aws.String(t.ImageID),
		UserData: aws.String(t.UserData),
	}
	if t.InstanceProfile != "" {
		d.IamInstanceProfile = &ec2types.LaunchTemplateIamInstanceProfileSpecificationRequest{Name: aws.String(t.InstanceProfile)}
	}
	if t.PublicIP != nil {
		// A public IP setting needs an explicit interface, which then
		// carries the security groups.
		d.NetworkInterfaces = []ec2types.LaunchTemplateInstanceNetworkInterfaceSpecificationRequest{{
			DeviceIndex:              aws.Int32(0),
			AssociatePublicIpAddress: t.PublicIP,
			Groups:                   t.SecurityGroups,
		}}
	} else {
		d.SecurityGroupIds = t.SecurityGroups
	}
	if t.Monitoring != nil {
		d.Monitoring = &ec2types.LaunchTemplatesMonitoringRequest{Enabled: t.Monitoring}
	}
	if m := t.Metadata; m != nil {
		d.MetadataOptions = &ec2types.LaunchTemplateInstanceMetadataOptionsRequest{
			HttpEndpoint:            ec2types.LaunchTemplateInstanceMetadataEndpointState(aws.ToString(m.HTTPEndpoint)),
			HttpProtocolIpv6:        ec2types.LaunchTemplateInstanceMetadataProtocolIpv6(aws.ToString(m.HTTPProtocolIPv6)),
			HttpTokens:              ec2types.LaunchTemplateHttpTokensState(aws.ToString(m.HTTPTokens)),
			HttpPutResponseHopLimit: int32Ptr(m.HTTPPutResponseHopLimit),
		}
	}
	for _, b := range t.BlockDevices {
		m := ec2types.LaunchTemplateBlockDeviceMappingRequest{DeviceName: b.DeviceName}
		if e := b.EBS; e != nil {
			m.Ebs = &ec2types.LaunchTemplateEbsBlockDeviceRequest{
				DeleteOnTermination: e.DeleteOnTermination,
				Encrypted:           e.Encrypted,
				Iops:                int32Ptr(e.IOPS),
				KmsKeyId:            e.KMSKeyID,
				SnapshotId:          e.SnapshotID,
				Throughput:          int32Ptr(e.Throughput),
				VolumeType:          ec2types.VolumeType(aws.ToString(e.VolumeType)),
			}
			if e.VolumeSize != nil {
				gib := (e.VolumeSize.Value() + (1<<30 - 1)) >> 30
				m.Ebs.VolumeSize = aws.Int32(int32(gib))
			}
		}
		d.BlockDeviceMappings = append(d.BlockDeviceMappings, m)
	}
	return d
}

func int32Ptr(v *int64) *int32 {
	if v == nil {
		return nil
	}
	return aws.Int32(int32(*v))
}

// Template is a launch template Flotilla created for the cluster.
type Template struct {
	ID, Name string
	// NodeClass is the EC2NodeClass it was made for.
	NodeClass string
	Created   time.Time
}

// Templates lists the cluster's launch templates.
func (p *Provider) Templates(ctx context.Context) ([]Template, error) {
	k, v := p.ClusterTag()
	in := &ec2.DescribeLaunchTemplatesInput{Filters: []ec2types.Filter{{Name: aws.String("tag:" + k), Values: []string{v}}}}
	var out []Template
	for {
		page, err := p.ec2.DescribeLaunchTemplates(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("describe launch templates: %w", err)
		}
		for _, lt := range page.LaunchTemplates {
			t := Template{ID: aws.ToString(lt.LaunchTemplateId), Name: aws.ToString(lt.LaunchTemplateName), Created: aws.ToTime(lt.CreateTime)}
			for _, tag := range lt.Tags {
				if aws.ToString(tag.Key) == awsv1.TagEC2NodeClass {
					t.NodeClass = aws.ToString(tag.Value)
				}
			}
			out = append(out, t)
		}
		if aws.ToString(page.NextToken) == "" {
			return out, nil
		}
		in.NextToken = page.NextToken
	}
}

// DeleteTemplate deletes a launch template (gone already is no error).
func (p *Provider) DeleteTemplate(ctx context.Context, t Template) error {
	p.mu.Lock()
	delete(p.templates, t.Name)
	p.mu.Unlock()
	_, err := p.ec2.DeleteLaunchTemplate(ctx, &ec2.DeleteLaunchTemplateInput{LaunchTemplateId: aws.String(t.ID)})
	if err != nil && !isCode(err, "InvalidLaunchTemplateId.NotFound") && !isCode(err, "InvalidLaunchTemplateName.NotFoundException") {
		return fmt.Errorf("delete launch template %s: %w", t.Name, err)
	}
	return nil
}
