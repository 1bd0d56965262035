package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are exported with the Prometheus client library rather than the
// OpenTelemetry SDK's Prometheus exporter: names, labels and histogram
// buckets then come out exactly as written (Karpenter's karpenter_* names,
// no unit or _total suffixes added, no target_info or scope labels), and
// the library is already in every service's dependency graph through
// client-go's.

// NewRegistry returns a registry with the Go runtime and process collectors
// and flotilla_build_info{service,version} = 1.
func NewRegistry(service, version string) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	info := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "flotilla_build_info",
		Help:        "A metric with a constant '1' value labeled by the service and the version it was built from.",
		ConstLabels: prometheus.Labels{"service": service, "version": version},
	})
	info.Set(1)
	reg.MustRegister(info)
	return reg
}

// ServeMetrics serves reg in the Prometheus text format at /metrics on lis
// until ctx is done.
func ServeMetrics(ctx context.Context, lis net.Listener, reg *prometheus.Registry, logger *slog.Logger) error {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		Registry:          reg,
		EnableOpenMetrics: true,
		Timeout:           10 * time.Second,
	}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(lis) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve metrics %s: %w", lis.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve metrics %s: %w", lis.Addr(), err)
	}
	return nil
}

// DurationBuckets are histogram buckets in seconds from 5 ms to 10 min,
// for solve times, cloud calls and launch latencies alike.
var DurationBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600}
