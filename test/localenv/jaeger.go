package localenv

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// Names and variables of the environment's Jaeger.
const (
	ProcJaeger = "jaeger"
	// VarJaegerURL is Jaeger's query address (HTTP API:
	// $FLOTILLA_JAEGER_URL/api/traces?service=watcher).
	VarJaegerURL = "FLOTILLA_JAEGER_URL"
	// VarOTLPEndpoint is where the services export traces (OTLP over gRPC).
	VarOTLPEndpoint = "OTEL_EXPORTER_OTLP_ENDPOINT"
)

// JaegerOptions configure StartJaeger; zero ports pick free ones.
type JaegerOptions struct {
	// QueryPort serves the HTTP query API (Jaeger's usual 16686).
	QueryPort int
	// OTLPPort receives OTLP over gRPC (the usual 4317).
	OTLPPort int
}

// jaegerConfig is Jaeger v2's configuration: OTLP in, in-memory storage,
// the query API, everything on 127.0.0.1, no self-tracing.
const jaegerConfig = `service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces: {receivers: [otlp], exporters: [jaeger_storage_exporter]}
  telemetry:
    metrics: {level: none}
extensions:
  jaeger_storage:
    backends: {mem: {memory: {max_traces: 20000}}}
  jaeger_query:
    enable_tracing: false
    storage: {traces: mem}
    http: {endpoint: 127.0.0.1:%d}
    grpc: {endpoint: 127.0.0.1:%d}
receivers:
  otlp:
    protocols:
      grpc: {endpoint: 127.0.0.1:%d}
      http: {endpoint: 127.0.0.1:%d}
exporters:
  jaeger_storage_exporter: {trace_storage: mem}
`

// FindJaeger returns the Jaeger v2 binary: $FLOTILLA_JAEGER when set, else
// the cache of tools/jaeger/build.sh, which builds it when the cache is
// cold (about 7 minutes on 2 cores) unless FLOTILLA_BUILD=0.
func FindJaeger(ctx context.Context, progress io.Writer) (string, error) {
	if p := os.Getenv("FLOTILLA_JAEGER"); p != "" {
		return p, nil
	}
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	script := filepath.Join(root, "tools", "jaeger", "build.sh")
	cmd := exec.CommandContext(ctx, "bash", script)
	if os.Getenv("FLOTILLA_BUILD") == "0" {
		cmd.Env = append(os.Environ(), "JAEGER_NO_BUILD=1")
	}
	var out bytes.Buffer
	cmd.Stdout = &out
	if progress != nil {
		cmd.Stderr = progress
	}
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("jaeger: %s: %w", script, err)
	}
	bin := strings.TrimSpace(lastLine(out.String()))
	if _, err := os.Stat(bin); err != nil {
		return "", fmt.Errorf("jaeger: %w", err)
	}
	return bin, nil
}

// StartJaeger starts Jaeger (bin from FindJaeger) with in-memory storage
// and publishes its addresses: OTEL_EXPORTER_OTLP_ENDPOINT, which every
// Flotilla service started afterwards exports its traces to, and
// FLOTILLA_JAEGER_URL.
func (e *Env) StartJaeger(ctx context.Context, bin string, o JaegerOptions) error {
	var free []int
	if o.QueryPort == 0 || o.OTLPPort == 0 {
		var err error
		if free, err = FreePorts(2); err != nil {
			return err
		}
	}
	if o.QueryPort == 0 {
		o.QueryPort = free[0]
	}
	if o.OTLPPort == 0 {
		o.OTLPPort = free[1]
	}
	// The query gRPC and OTLP HTTP ports are not used; free ones keep them
	// out of the way.
	others, err := FreePorts(2)
	if err != nil {
		return err
	}
	cfg := filepath.Join(e.Dir, "jaeger.yaml")
	if err := writeFile(cfg, fmt.Appendf(nil, jaegerConfig, o.QueryPort, others[0], o.OTLPPort, others[1]), 0o644); err != nil {
		return fmt.Errorf("jaeger config: %w", err)
	}
	query := "http://127.0.0.1:" + strconv.Itoa(o.QueryPort)
	if err := e.StartProcess(ctx, Process{
		Name:      ProcJaeger,
		Argv:      []string{bin, "--config", cfg},
		HealthURL: query + "/api/services",
	}); err != nil {
		return err
	}
	for k, v := range map[string]string{
		VarJaegerURL:    query,
		VarOTLPEndpoint: "http://127.0.0.1:" + strconv.Itoa(o.OTLPPort),
		// Export spans within half a second (the SDK's default is 5 s).
		"OTEL_BSP_SCHEDULE_DELAY": "500",
	} {
		if err := e.SetVar(k, v); err != nil {
			return err
		}
	}
	return nil
}
