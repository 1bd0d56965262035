package config

import (
	"bytes"
	"errors"
	"flag"
	"strings"
	"testing"
	"time"
)

func TestParseEnvFallback(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		env      map[string]string
		wantAddr string
		wantWait time.Duration
		wantErr  string
	}{
		{name: "defaults", wantAddr: ":1", wantWait: time.Second},
		{name: "env fills unset flags", env: map[string]string{"FLOTILLA_LISTEN_ADDR": "127.0.0.1:9", "FLOTILLA_IDLE_WAIT": "5ms"}, wantAddr: "127.0.0.1:9", wantWait: 5 * time.Millisecond},
		{name: "command line wins over env", args: []string{"--listen-addr=127.0.0.1:7"}, env: map[string]string{"FLOTILLA_LISTEN_ADDR": "127.0.0.1:9"}, wantAddr: "127.0.0.1:7", wantWait: time.Second},
		{name: "bad env value names the variable", env: map[string]string{"FLOTILLA_IDLE_WAIT": "soon"}, wantErr: "FLOTILLA_IDLE_WAIT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			fs := flag.NewFlagSet("x", flag.ContinueOnError)
			addr := fs.String("listen-addr", ":1", "address")
			wait := fs.Duration("idle-wait", time.Second, "wait")
			err := Parse(fs, "x", tt.args, &bytes.Buffer{})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want mention of %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if *addr != tt.wantAddr || *wait != tt.wantWait {
				t.Errorf("got addr %q wait %v, want %q %v", *addr, *wait, tt.wantAddr, tt.wantWait)
			}
		})
	}
}

func TestParseVersion(t *testing.T) {
	var out bytes.Buffer
	fs := flag.NewFlagSet("planner", flag.ContinueOnError)
	err := Parse(fs, "planner", []string{"--version"}, &out)
	if !errors.Is(err, ErrVersion) {
		t.Fatalf("err = %v, want ErrVersion", err)
	}
	if !strings.HasPrefix(out.String(), "planner "+Version) {
		t.Errorf("output %q does not start with the name and version", out.String())
	}
}
