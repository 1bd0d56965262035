package actuation

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	actuatorv1 "github.com/flotilla-dev/flotilla/gen/flotilla/actuator/v1"
	clusterv1 "github.com/flotilla-dev/flotilla/gen/flotilla/cluster/v1"
	"google.golang.org/grpc"
)

// Catalog is the part of the actuator's API that lists instance types.
type Catalog interface {
	ListInstanceTypes(ctx context.Context, in *actuatorv1.ListInstanceTypesRequest, opts ...grpc.CallOption) (*actuatorv1.ListInstanceTypesResponse, error)
}

// CatalogSink receives the instance catalogue.
type CatalogSink interface {
	SetInstanceTypes(region string, types []*clusterv1.InstanceType)
}

// FetchCatalog fetches the instance catalogue (every zone of the region,
// with offerings and prices) from the actuator and hands it to sink.
func FetchCatalog(ctx context.Context, actuator Catalog, sink CatalogSink, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	resp, err := actuator.ListInstanceTypes(ctx, &actuatorv1.ListInstanceTypesRequest{})
	if err != nil {
		return fmt.Errorf("list instance types: %w", err)
	}
	sink.SetInstanceTypes(resp.GetRegion(), resp.GetInstanceTypes())
	return nil
}

// RefreshCatalog fetches the catalogue now and then every interval until
// ctx is done (prices and capacity errors change). A failed fetch keeps the
// last one and is retried sooner: every 2 s until the first success (the
// actuator may be starting or failing over), every 15 s after.
func RefreshCatalog(ctx context.Context, actuator Catalog, sink CatalogSink, interval time.Duration, logger *slog.Logger) {
	var wait time.Duration
	fetched := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		if err := FetchCatalog(ctx, actuator, sink, 30*time.Second); err != nil {
			if ctx.Err() != nil {
				return
			}
			logger.Warn("catalog_refresh_failed", "error", err.Error())
			wait = min(interval, 15*time.Second)
			if !fetched {
				wait = min(interval, 2*time.Second)
			}
			continue
		}
		fetched = true
		wait = interval
	}
}
