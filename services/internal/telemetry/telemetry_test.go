package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"time"
)

func TestTracingEnabled(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want bool
	}{
		{name: "unset is off", want: false},
		{name: "endpoint turns it on", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317"}, want: true},
		{name: "traces endpoint turns it on", env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, want: true},
		{name: "sdk disabled wins", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "x", "OTEL_SDK_DISABLED": "true"}, want: false},
		{name: "exporter none wins", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "x", "OTEL_TRACES_EXPORTER": "none"}, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := TracingEnabled(func(k string) string { return tt.env[k] })
			if got != tt.want {
				t.Errorf("TracingEnabled = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestNewLogger(t *testing.T) {
	var buf bytes.Buffer
	log, err := NewLogger(&buf, "json", "info")
	if err != nil {
		t.Fatal(err)
	}
	log.Debug("hidden")
	log.Info("plan_sent", "pods", 3)
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatalf("log line is not one JSON object: %q: %v", buf.String(), err)
	}
	if rec["msg"] != "plan_sent" || rec["pods"] != float64(3) {
		t.Errorf("record = %v", rec)
	}
	if _, err := NewLogger(&buf, "xml", "info"); err == nil {
		t.Error("unknown format accepted")
	}
	if _, err := NewLogger(&buf, "json", "loud"); err == nil {
		t.Error("unknown level accepted")
	}
}

// TestSetupTracing: with an OTLP endpoint set the services start exporting
// (the exporter connects lazily, so no collector is needed to start), and
// OTEL_RESOURCE_ATTRIBUTES merges into the resource without a conflict.
func TestSetupTracing(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
	t.Setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test")
	stop, err := SetupTracing(t.Context(), "planner", "v0.0.0-test")
	if err != nil {
		t.Fatalf("SetupTracing: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	_ = stop(ctx) // the endpoint is closed; flushing may fail, stopping must return
}
