package offering

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
)

// countingEC2 counts catalogue builds (first pages of
// DescribeInstanceTypeOfferings) and holds the first one until release is
// closed.
type countingEC2 struct {
	*ec2.Client
	builds  atomic.Int32
	release chan struct{}
}

func (c *countingEC2) DescribeInstanceTypeOfferings(ctx context.Context, in *ec2.DescribeInstanceTypeOfferingsInput, opts ...func(*ec2.Options)) (*ec2.DescribeInstanceTypeOfferingsOutput, error) {
	if in.NextToken == nil && c.builds.Add(1) == 1 {
		<-c.release
	}
	return c.Client.DescribeInstanceTypeOfferings(ctx, in, opts...)
}

// TestCallersShareABuildUnderWay: callers that need the catalogue while it
// is being built (a restarted actuator's first launches, queued behind the
// build Run starts) get that build, not one more build each; EC2 is asked
// once.
func TestCallersShareABuildUnderWay(t *testing.T) {
	ctx := t.Context()
	cfg, err := server.Config(ctx)
	if err != nil {
		t.Fatal(err)
	}
	api := &countingEC2{Client: ec2.NewFromConfig(cfg), release: make(chan struct{})}
	c := NewCatalog(api, CatalogOptions{Region: "us-east-1"})
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := c.Refresh(ctx); err != nil {
			t.Error(err)
		}
	})
	for api.builds.Load() == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	for range 3 {
		wg.Go(func() {
			if _, ok, err := c.Get(ctx, "t3.medium"); err != nil || !ok {
				t.Errorf("Get(t3.medium) = %v, %v", ok, err)
			}
		})
	}
	// Let the callers queue behind the build, then let it finish.
	time.Sleep(300 * time.Millisecond)
	close(api.release)
	wg.Wait()
	if n := api.builds.Load(); n != 1 {
		t.Errorf("the catalogue was built %d times, want once", n)
	}
	// A refresh asked for explicitly still builds.
	if err := c.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if n := api.builds.Load(); n != 2 {
		t.Errorf("after Refresh: %d builds, want 2", n)
	}
}
