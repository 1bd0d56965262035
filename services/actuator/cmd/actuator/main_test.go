package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestRunUsage(t *testing.T) {
	t.Setenv("FLOTILLA_CLUSTER_NAME", "")
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string
	}{
		{name: "version", args: []string{"--version"}, wantCode: 0, wantOut: "actuator "},
		{name: "cluster name required", args: []string{"--kubeconfig", "/nonexistent"}, wantCode: 2, wantOut: "--cluster-name is required"},
		{name: "bad kubeconfig", args: []string{"--cluster-name", "c", "--kubeconfig", "/nonexistent"}, wantCode: 2, wantOut: "kubeconfig"},
		{name: "unknown flag", args: []string{"--nope"}, wantCode: 2, wantOut: "flag provided but not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			if code := run(tt.args, &out, &out); code != tt.wantCode || !strings.Contains(out.String(), tt.wantOut) {
				t.Errorf("run(%v) = %d, output %q; want %d containing %q", tt.args, code, out.String(), tt.wantCode, tt.wantOut)
			}
		})
	}
}
