package offering

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/pricing"
	"github.com/google/go-cmp/cmp"

	"github.com/flotilla-dev/flotilla/services/internal/catalog"
	"github.com/flotilla-dev/flotilla/test/moto"
)

var server *moto.Server

func TestMain(m *testing.M) { moto.Main(m, &server) }

func TestUnavailable(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	u := NewUnavailable(0, func() time.Time { return now })
	a := Key{InstanceType: "m5.large", Zone: "us-east-1a", CapacityType: "spot"}
	b := Key{InstanceType: "m5.large", Zone: "us-east-1b", CapacityType: "spot"}
	od := Key{InstanceType: "m5.large", Zone: "us-east-1a", CapacityType: "on-demand"}
	u.Mark(a, "InsufficientInstanceCapacity")
	if !u.Contains(a) || u.Contains(b) || u.Contains(od) {
		t.Errorf("after marking %v: contains a=%v b=%v od=%v, want true false false", a, u.Contains(a), u.Contains(b), u.Contains(od))
	}
	u.Mark(Key{CapacityType: "spot"}, "MaxSpotInstanceCountExceeded")
	if reason, ok := u.Reason(b); !ok || reason != "MaxSpotInstanceCountExceeded" {
		t.Errorf("spot everywhere marked: b = %v %q", ok, reason)
	}
	if u.Contains(od) {
		t.Error("an on-demand offering became unavailable with spot")
	}
	now = now.Add(DefaultUnavailableTTL - time.Nanosecond)
	if !u.Contains(a) {
		t.Error("expired before the TTL")
	}
	now = now.Add(time.Nanosecond)
	if u.Contains(a) || u.Contains(b) || len(u.Keys()) != 0 {
		t.Errorf("still unavailable after the TTL: %v", u.Keys())
	}
}

func TestPlausibleSpotPrice(t *testing.T) {
	t.Parallel()
	tests := []struct {
		spot, od float64
		want     bool
	}{
		{0.0125, 0.0416, true},
		{0.00001, 0.0416, false}, // moto's constant
		{0, 0.0416, false},
		{0.05, 0.0416, false}, // above on-demand
		{0.0416, 0.0416, true},
	}
	for _, tt := range tests {
		if got := PlausibleSpotPrice(tt.spot, tt.od); got != tt.want {
			t.Errorf("PlausibleSpotPrice(%v, %v) = %v, want %v", tt.spot, tt.od, got, tt.want)
		}
	}
}

// pricingFake answers GetProducts with fixed documents, or an error.
type pricingFake struct {
	docs  []string
	err   error
	calls int
}

func (p *pricingFake) GetProducts(context.Context, *pricing.GetProductsInput, ...func(*pricing.Options)) (*pricing.GetProductsOutput, error) {
	p.calls++
	if p.err != nil {
		return nil, p.err
	}
	return &pricing.GetProductsOutput{PriceList: p.docs}, nil
}

const m5Doc = `{"product":{"attributes":{"instanceType":"m5.large"}},"terms":{"OnDemand":{"X":{"priceDimensions":{"Y":{"unit":"Hrs","pricePerUnit":{"USD":"0.0960000000"}}}}}}}`

func TestCatalogOnMoto(t *testing.T) {
	ctx := t.Context()
	cfg, err := server.Config(ctx)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	u := NewUnavailable(0, func() time.Time { return now })
	prices := NewPriceList(&pricingFake{docs: []string{m5Doc}})
	c := NewCatalog(ec2.NewFromConfig(cfg), CatalogOptions{Region: "us-east-1", Prices: prices, Unavailable: u, Now: func() time.Time { return now }})

	u.Mark(Key{InstanceType: "t3.medium", Zone: "us-east-1b", CapacityType: "spot"}, "InsufficientInstanceCapacity")
	types, err := c.InstanceTypes(ctx, []string{"us-east-1a", "us-east-1b"})
	if err != nil {
		t.Fatal(err)
	}
	if len(types) < 100 {
		t.Fatalf("catalogue has %d instance types, want the hundreds moto offers", len(types))
	}
	byName := map[string]int{}
	for i, it := range types {
		byName[it.Name] = i
		for _, o := range it.Offerings {
			if o.Zone != "us-east-1a" && o.Zone != "us-east-1b" {
				t.Fatalf("%s has an offering in %s, outside the zones asked for", it.Name, o.Zone)
			}
		}
	}
	type off struct {
		Zone, Capacity, Source string
		Price                  float64
		Available              bool
	}
	got := func(name string) []off {
		i, ok := byName[name]
		if !ok {
			t.Fatalf("%s missing from the catalogue", name)
		}
		var out []off
		for _, o := range types[i].Offerings {
			out = append(out, off{o.Zone, o.CapacityType, o.PriceSource, o.PricePerHour, o.Available})
		}
		return out
	}
	// t3.medium: embedded on-demand price (the fake price list has none for
	// it); moto's constant spot price is implausible, so synthetic.
	od := 0.0416
	want := []off{
		{"us-east-1a", "on-demand", catalog.PriceSourceEmbedded, od, true},
		{"us-east-1a", "spot", catalog.PriceSourceSynthetic, catalog.SyntheticSpotPrice("t3.medium", "us-east-1a", od), true},
		{"us-east-1b", "on-demand", catalog.PriceSourceEmbedded, od, true},
		{"us-east-1b", "spot", catalog.PriceSourceSynthetic, catalog.SyntheticSpotPrice("t3.medium", "us-east-1b", od), false},
	}
	if diff := cmp.Diff(want, got("t3.medium")); diff != "" {
		t.Errorf("t3.medium offerings (-want +got):\n%s", diff)
	}
	// m5.large: on-demand from the price list.
	for _, o := range got("m5.large") {
		if o.Capacity == "on-demand" && (o.Source != PriceSourcePricingAPI || o.Price != 0.096) {
			t.Errorf("m5.large on-demand = %v from %s, want 0.096 from %s", o.Price, o.Source, PriceSourcePricingAPI)
		}
	}
	// Spot offerings exactly for the types EC2 sells as spot (the embedded
	// specs' supported usage classes; DescribeInstanceTypes is not called).
	embedded, err := catalog.Region("us-east-1")
	if err != nil {
		t.Fatal(err)
	}
	embeddedSpot := map[string]bool{}
	for _, it := range embedded {
		embeddedSpot[it.Name] = soldAsSpot(it)
	}
	onDemandOnly := 0
	for _, it := range types {
		if soldAsSpot(it) != embeddedSpot[it.Name] {
			t.Errorf("%s: spot offerings %v, but EC2 sells it as spot: %v", it.Name, soldAsSpot(it), embeddedSpot[it.Name])
		}
		if !embeddedSpot[it.Name] {
			onDemandOnly++
		}
	}
	if onDemandOnly == 0 {
		t.Error("no on-demand-only instance type in the catalogue (hpc6a.48xlarge, say): the spot check above tests nothing")
	}
	if it, ok, err := c.Get(ctx, "t3.medium"); err != nil || !ok || it.Capacity.Pods != 17 || it.Arch != "amd64" {
		t.Errorf("Get(t3.medium) = %v %v %v, want amd64 with 17 pods", it, ok, err)
	}
	if _, ok, _ := c.Get(ctx, "nope.large"); ok {
		t.Error("Get(nope.large) found something")
	}
}

func TestPriceListRemembersFailure(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	api := &pricingFake{err: errors.New("connection refused")}
	p := NewPriceList(api)
	p.Now = func() time.Time { return now }
	for range 3 {
		if _, err := p.OnDemandPrices(t.Context(), "us-east-1"); err == nil {
			t.Fatal("want the error")
		}
	}
	if api.calls != 1 {
		t.Errorf("GetProducts calls = %d, want 1 (failure remembered)", api.calls)
	}
	api.err, api.docs = nil, []string{m5Doc}
	now = now.Add(2 * time.Hour)
	got, err := p.OnDemandPrices(t.Context(), "us-east-1")
	if err != nil || got["m5.large"] != 0.096 {
		t.Errorf("after the retry interval = %v, %v; want m5.large 0.096", got, err)
	}
}
