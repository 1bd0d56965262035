package offering

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"google.golang.org/protobuf/proto"

	clusterv1 "github.com/flotilla-dev/flotilla/gen/flotilla/cluster/v1"
	"github.com/flotilla-dev/flotilla/services/internal/catalog"
)

// Price sources this package adds to the embedded catalogue's.
const (
	// PriceSourcePricingAPI is an on-demand price from the AWS Price List.
	PriceSourcePricingAPI = "pricing-api"
	// PriceSourceSpotHistory is a spot price from DescribeSpotPriceHistory.
	PriceSourceSpotHistory = "spot-price-history"
)

// DefaultRefresh is how often the catalogue is rebuilt from EC2.
const DefaultRefresh = 10 * time.Minute

// EC2API is exactly the part of the EC2 API the catalogue calls.
type EC2API interface {
	DescribeInstanceTypeOfferings(ctx context.Context, in *ec2.DescribeInstanceTypeOfferingsInput, opts ...func(*ec2.Options)) (*ec2.DescribeInstanceTypeOfferingsOutput, error)
	DescribeSpotPriceHistory(ctx context.Context, in *ec2.DescribeSpotPriceHistoryInput, opts ...func(*ec2.Options)) (*ec2.DescribeSpotPriceHistoryOutput, error)
	DescribeAvailabilityZones(ctx context.Context, in *ec2.DescribeAvailabilityZonesInput, opts ...func(*ec2.Options)) (*ec2.DescribeAvailabilityZonesOutput, error)
}

// OnDemandPrices returns on-demand prices ($/h) by instance type for a
// region; see PriceList.
type OnDemandPrices interface {
	OnDemandPrices(ctx context.Context, region string) (map[string]float64, error)
}

// CatalogOptions configure a Catalog.
type CatalogOptions struct {
	Region string
	// Prices gives on-demand prices; nil means the embedded table only.
	Prices OnDemandPrices
	// Unavailable marks offerings unavailable in what InstanceTypes
	// returns; nil means none are.
	Unavailable *Unavailable
	// Refresh is how long a build is served before the next; DefaultRefresh
	// when 0.
	Refresh time.Duration
	Now     func() time.Time
	Logger  *slog.Logger
}

// Catalog is the region's instance catalogue as EC2 offers it, priced. The
// instance types and the zones each is offered in come from
// DescribeInstanceTypeOfferings, spot prices from DescribeSpotPriceHistory
// and on-demand prices from the Price List API; the embedded catalogue
// supplies the specs (capacity, labels, pod limits, whether EC2 sells the
// type as spot) and any price that is missing or implausible (price_source
// says which). Instance types the embedded catalogue does not know are left
// out. DescribeInstanceTypes is not called: everything it would add is in
// the embedded specs, and it is by far the slowest call of a build (seconds
// on moto), which a restarted actuator would wait for before its first
// launch. It is safe for concurrent use.
type Catalog struct {
	ec2  EC2API
	opts CatalogOptions

	refreshMu sync.Mutex // one build at a time
	mu        sync.Mutex
	types     []*clusterv1.InstanceType
	byName    map[string]*clusterv1.InstanceType
	built     time.Time
	builds    int // finished builds, so a waiting caller can see one finish
}

// NewCatalog returns a catalogue that builds itself on first use.
func NewCatalog(api EC2API, opts CatalogOptions) *Catalog {
	if opts.Refresh <= 0 {
		opts.Refresh = DefaultRefresh
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Catalog{ec2: api, opts: opts}
}

// InstanceTypes returns the catalogue with offerings only in the given zones
// (every zone when empty), offerings in the unavailable cache marked so.
// The messages are copies the caller may change.
func (c *Catalog) InstanceTypes(ctx context.Context, zones []string) ([]*clusterv1.InstanceType, error) {
	types, err := c.current(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]*clusterv1.InstanceType, 0, len(types))
	for _, it := range types {
		cp := proto.Clone(it).(*clusterv1.InstanceType)
		cp.Offerings = slices.DeleteFunc(cp.Offerings, func(o *clusterv1.Offering) bool {
			return len(zones) > 0 && !slices.Contains(zones, o.Zone)
		})
		if len(cp.Offerings) == 0 {
			continue
		}
		for _, o := range cp.Offerings {
			if c.opts.Unavailable != nil && c.opts.Unavailable.Contains(Key{InstanceType: cp.Name, Zone: o.Zone, CapacityType: o.CapacityType}) {
				o.Available = false
			}
		}
		out = append(out, cp)
	}
	return out, nil
}

// Get returns one instance type (a copy), or false.
func (c *Catalog) Get(ctx context.Context, name string) (*clusterv1.InstanceType, bool, error) {
	if _, err := c.current(ctx); err != nil {
		return nil, false, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	it, ok := c.byName[name]
	if !ok {
		return nil, false, nil
	}
	return proto.Clone(it).(*clusterv1.InstanceType), true, nil
}

func (c *Catalog) current(ctx context.Context) ([]*clusterv1.InstanceType, error) {
	c.mu.Lock()
	types, built, builds := c.types, c.built, c.builds
	c.mu.Unlock()
	if types != nil && c.opts.Now().Sub(built) < c.opts.Refresh {
		return types, nil
	}
	if err := c.refreshAfter(ctx, builds); err != nil {
		if types != nil {
			// Serve the last build while EC2 is unreachable.
			c.opts.Logger.WarnContext(ctx, "catalog_refresh_failed", "error", err.Error())
			return types, nil
		}
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.types, nil
}

// Run refreshes the catalogue every Refresh until ctx ends. Failures are
// logged; the last good build keeps being served.
func (c *Catalog) Run(ctx context.Context) error {
	t := time.NewTicker(c.opts.Refresh)
	defer t.Stop()
	for {
		if err := c.Refresh(ctx); err != nil && ctx.Err() == nil {
			c.opts.Logger.WarnContext(ctx, "catalog_refresh_failed", "error", err.Error())
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Refresh rebuilds the catalogue from EC2 now.
func (c *Catalog) Refresh(ctx context.Context) error {
	c.refreshMu.Lock()
	defer c.refreshMu.Unlock()
	return c.rebuild(ctx)
}

// refreshAfter rebuilds the catalogue unless a build finished since the
// caller saw builds of them: callers that queued behind a build (Run's at
// start, say) use its result instead of building it all again.
func (c *Catalog) refreshAfter(ctx context.Context, builds int) error {
	c.refreshMu.Lock()
	defer c.refreshMu.Unlock()
	c.mu.Lock()
	done := c.builds > builds && c.types != nil
	c.mu.Unlock()
	if done {
		return nil
	}
	return c.rebuild(ctx)
}

// rebuild builds the catalogue; the caller holds refreshMu.
func (c *Catalog) rebuild(ctx context.Context) error {
	types, err := c.build(ctx)
	if err != nil {
		return err
	}
	byName := make(map[string]*clusterv1.InstanceType, len(types))
	for _, it := range types {
		byName[it.Name] = it
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.types, c.byName, c.built = types, byName, c.opts.Now()
	c.builds++
	return nil
}

type ec2Facts struct {
	zones   map[string][]string // instance type → zones offered
	zoneIDs map[string]string
	spotUSD map[[2]string]float64 // (type, zone) → latest spot price
}

func (c *Catalog) build(ctx context.Context) ([]*clusterv1.InstanceType, error) {
	embedded, err := catalog.Region(c.opts.Region)
	if err != nil {
		return nil, fmt.Errorf("build catalogue: %w", err)
	}
	facts, err := c.describe(ctx)
	if err != nil {
		return nil, fmt.Errorf("build catalogue for %s: %w", c.opts.Region, err)
	}
	var onDemand map[string]float64
	if c.opts.Prices != nil {
		onDemand, err = c.opts.Prices.OnDemandPrices(ctx, c.opts.Region)
		if err != nil {
			c.opts.Logger.InfoContext(ctx, "pricing_api_unavailable", "region", c.opts.Region, "error", err.Error())
		}
	}
	out := make([]*clusterv1.InstanceType, 0, len(embedded))
	for _, it := range embedded {
		zones := facts.zones[it.Name]
		if len(zones) == 0 {
			continue
		}
		base, ok := embeddedOnDemand(it)
		if !ok {
			continue
		}
		spot := soldAsSpot(it)
		odPrice, odSource := base, catalog.PriceSourceEmbedded
		if p, ok := onDemand[it.Name]; ok && p > 0 {
			odPrice, odSource = p, PriceSourcePricingAPI
		}
		it.Offerings = nil
		for _, z := range slices.Sorted(slices.Values(zones)) {
			it.Offerings = append(it.Offerings, &clusterv1.Offering{
				Zone: z, ZoneId: facts.zoneIDs[z], CapacityType: catalog.CapacityTypeOnDemand,
				PricePerHour: odPrice, Available: true, PriceSource: odSource,
			})
			if !spot {
				continue
			}
			price, source := facts.spotUSD[[2]string{it.Name, z}], PriceSourceSpotHistory
			if !PlausibleSpotPrice(price, odPrice) {
				price, source = catalog.SyntheticSpotPrice(it.Name, z, odPrice), catalog.PriceSourceSynthetic
			}
			it.Offerings = append(it.Offerings, &clusterv1.Offering{
				Zone: z, ZoneId: facts.zoneIDs[z], CapacityType: catalog.CapacityTypeSpot,
				PricePerHour: price, Available: true, PriceSource: source,
			})
		}
		out = append(out, it)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("build catalogue for %s: EC2 offers none of the %d known instance types", c.opts.Region, len(embedded))
	}
	return out, nil
}

// PlausibleSpotPrice reports whether a spot price can be believed: positive,
// not above on-demand and not below 5% of it (spot discounts stop near 90%).
// An emulator's constant placeholder price fails this and the synthetic
// price is used instead.
func PlausibleSpotPrice(spot, onDemand float64) bool {
	return spot > 0 && onDemand > 0 && spot <= onDemand && spot >= onDemand*0.05
}

// soldAsSpot reports whether the embedded catalogue has spot offerings for
// the type (EC2 lists spot among its supported usage classes).
func soldAsSpot(it *clusterv1.InstanceType) bool {
	return slices.ContainsFunc(it.Offerings, func(o *clusterv1.Offering) bool {
		return o.CapacityType == catalog.CapacityTypeSpot
	})
}

func embeddedOnDemand(it *clusterv1.InstanceType) (float64, bool) {
	for _, o := range it.Offerings {
		if o.CapacityType == catalog.CapacityTypeOnDemand && o.PricePerHour > 0 {
			return o.PricePerHour, true
		}
	}
	return 0, false
}

func (c *Catalog) describe(ctx context.Context) (*ec2Facts, error) {
	f := &ec2Facts{zones: map[string][]string{}, zoneIDs: map[string]string{}, spotUSD: map[[2]string]float64{}}
	op := ec2.NewDescribeInstanceTypeOfferingsPaginator(c.ec2, &ec2.DescribeInstanceTypeOfferingsInput{
		LocationType: ec2types.LocationTypeAvailabilityZone,
	})
	for op.HasMorePages() {
		page, err := op.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("describe instance type offerings: %w", err)
		}
		for _, o := range page.InstanceTypeOfferings {
			name := string(o.InstanceType)
			f.zones[name] = append(f.zones[name], aws.ToString(o.Location))
		}
	}
	azs, err := c.ec2.DescribeAvailabilityZones(ctx, &ec2.DescribeAvailabilityZonesInput{})
	if err != nil {
		return nil, fmt.Errorf("describe availability zones: %w", err)
	}
	for _, z := range azs.AvailabilityZones {
		f.zoneIDs[aws.ToString(z.ZoneName)] = aws.ToString(z.ZoneId)
	}
	if err := c.spotPrices(ctx, f); err != nil {
		// Spot prices are optional: synthetic ones stand in, labelled.
		c.opts.Logger.InfoContext(ctx, "spot_prices_unavailable", "error", err.Error())
	}
	return f, nil
}

func (c *Catalog) spotPrices(ctx context.Context, f *ec2Facts) error {
	latest := map[[2]string]time.Time{}
	sp := ec2.NewDescribeSpotPriceHistoryPaginator(c.ec2, &ec2.DescribeSpotPriceHistoryInput{
		ProductDescriptions: []string{"Linux/UNIX"},
		StartTime:           aws.Time(c.opts.Now()),
	})
	for sp.HasMorePages() {
		page, err := sp.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("describe spot price history: %w", err)
		}
		for _, h := range page.SpotPriceHistory {
			k := [2]string{string(h.InstanceType), aws.ToString(h.AvailabilityZone)}
			ts := aws.ToTime(h.Timestamp)
			if t, seen := latest[k]; seen && !ts.After(t) {
				continue
			}
			price, err := strconv.ParseFloat(aws.ToString(h.SpotPrice), 64)
			if err != nil {
				continue
			}
			latest[k] = ts
			f.spotUSD[k] = price
		}
	}
	return nil
}

// ErrNoPrices is returned by a price source that found no prices.
var ErrNoPrices = errors.New("no prices")
