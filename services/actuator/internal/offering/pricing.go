package offering

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/pricing"
	pricingtypes "github.com/aws/aws-sdk-go-v2/service/pricing/types"
)

// PricingAPI is exactly the part of the AWS Price List API PriceList calls.
type PricingAPI interface {
	GetProducts(ctx context.Context, in *pricing.GetProductsInput, opts ...func(*pricing.Options)) (*pricing.GetProductsOutput, error)
}

// PriceList reads on-demand Linux prices from the AWS Price List API,
// remembering a failure for a while so an unreachable endpoint costs one
// timeout per Retry, not one per catalogue build.
type PriceList struct {
	api PricingAPI
	// Timeout bounds one full read; 30 s when 0.
	Timeout time.Duration
	// Retry is how long a failure is remembered; 1 h when 0.
	Retry time.Duration
	Now   func() time.Time

	mu       sync.Mutex
	failedAt time.Time
	lastErr  error
}

// NewPriceList returns a PriceList over api.
func NewPriceList(api PricingAPI) *PriceList {
	return &PriceList{api: api}
}

// OnDemandPrices returns the on-demand price ($/h) of every Linux, shared
// tenancy instance type of a region the Price List knows.
func (p *PriceList) OnDemandPrices(ctx context.Context, region string) (map[string]float64, error) {
	now := time.Now
	if p.Now != nil {
		now = p.Now
	}
	retry := p.Retry
	if retry <= 0 {
		retry = time.Hour
	}
	p.mu.Lock()
	if p.lastErr != nil && now().Sub(p.failedAt) < retry {
		err := p.lastErr
		p.mu.Unlock()
		return nil, err
	}
	p.mu.Unlock()

	timeout := p.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	prices, err := p.read(ctx, region)
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		p.failedAt, p.lastErr = now(), err
		return nil, err
	}
	p.lastErr = nil
	return prices, nil
}

func (p *PriceList) read(ctx context.Context, region string) (map[string]float64, error) {
	match := func(field, value string) pricingtypes.Filter {
		return pricingtypes.Filter{Type: pricingtypes.FilterTypeTermMatch, Field: aws.String(field), Value: aws.String(value)}
	}
	pg := pricing.NewGetProductsPaginator(p.api, &pricing.GetProductsInput{
		ServiceCode: aws.String("AmazonEC2"),
		Filters: []pricingtypes.Filter{
			match("regionCode", region),
			match("operatingSystem", "Linux"),
			match("tenancy", "Shared"),
			match("preInstalledSw", "NA"),
			match("capacitystatus", "Used"),
			match("licenseModel", "No License required"),
		},
	})
	prices := map[string]float64{}
	for pg.HasMorePages() {
		page, err := pg.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("price list: %w", err)
		}
		for _, doc := range page.PriceList {
			name, price, err := parseProduct(doc)
			if err != nil {
				return nil, err
			}
			if name != "" && price > 0 {
				prices[name] = price
			}
		}
	}
	if len(prices) == 0 {
		return nil, fmt.Errorf("price list for %s: %w", region, ErrNoPrices)
	}
	return prices, nil
}

// product is the part of a Price List product document read here.
type product struct {
	Product struct {
		Attributes struct {
			InstanceType string `json:"instanceType"`
		} `json:"attributes"`
	} `json:"product"`
	Terms struct {
		OnDemand map[string]struct {
			PriceDimensions map[string]struct {
				Unit         string            `json:"unit"`
				PricePerUnit map[string]string `json:"pricePerUnit"`
			} `json:"priceDimensions"`
		} `json:"OnDemand"`
	} `json:"terms"`
}

// parseProduct returns the instance type and hourly USD price of one Price
// List document.
func parseProduct(doc string) (string, float64, error) {
	var pr product
	if err := json.Unmarshal([]byte(doc), &pr); err != nil {
		return "", 0, fmt.Errorf("decode price list product: %w", err)
	}
	for _, term := range pr.Terms.OnDemand {
		for _, dim := range term.PriceDimensions {
			if dim.Unit != "" && dim.Unit != "Hrs" {
				continue
			}
			usd, err := strconv.ParseFloat(dim.PricePerUnit["USD"], 64)
			if err == nil && usd > 0 {
				return pr.Product.Attributes.InstanceType, usd, nil
			}
		}
	}
	return pr.Product.Attributes.InstanceType, 0, nil
}
