package chaos

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// ec2Proxy stands between the actuator and moto_server and tells the
// harness about the EC2 calls it carries: before a request goes to moto and
// after moto answered, so that a fault can fire at exactly that moment.
type ec2Proxy struct {
	target string
	client *http.Client
	// hook is called with the EC2 action (Query protocol "Action") before
	// the request is forwarded (after=false) and after moto answered
	// (after=true). When it returns true the request is dropped: the
	// caller's connection is closed without an answer.
	hook func(action string, after bool) (drop bool)
	// trace, when set, gets one line per call: start, action, status and
	// duration.
	trace io.Writer
	mu    sync.Mutex
	srv   *http.Server
	lis   net.Listener
}

// startProxy listens on a free loopback port and forwards to target.
func startProxy(target string, hook func(action string, after bool) bool) (*ec2Proxy, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("ec2 proxy: %w", err)
	}
	p := &ec2Proxy{
		target: strings.TrimRight(target, "/"),
		client: &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 16}},
		hook:   hook,
		lis:    lis,
	}
	p.srv = &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = p.srv.Serve(lis) }()
	return p, nil
}

// URL is the endpoint the actuator is given instead of moto's.
func (p *ec2Proxy) URL() string { return "http://" + p.lis.Addr().String() }

func (p *ec2Proxy) close() { _ = p.srv.Close() }

func (p *ec2Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	action := ""
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		if q, err := url.ParseQuery(string(body)); err == nil {
			action = q.Get("Action")
		}
	}
	if action != "" && p.hook(action, false) {
		drop(w)
		return
	}
	out, err := http.NewRequestWithContext(context.WithoutCancel(r.Context()), r.Method, p.target+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	for k, vs := range r.Header {
		for _, v := range vs {
			out.Header.Add(k, v)
		}
	}
	began := time.Now()
	resp, err := p.client.Do(out)
	if err != nil {
		p.record(began, action, err.Error())
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	p.record(began, action, resp.Status)
	defer resp.Body.Close()
	answer, err := io.ReadAll(resp.Body)
	if err != nil && !errors.Is(err, io.EOF) {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	if action != "" && p.hook(action, true) {
		drop(w)
		return
	}
	for k, vs := range resp.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(answer)
}

func (p *ec2Proxy) record(began time.Time, action, status string) {
	if p.trace == nil {
		return
	}
	if action == "" {
		action = "(non-query)"
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.trace, "%s %s %s %s\n", began.UTC().Format("15:04:05.000"), action, status, time.Since(began).Round(time.Millisecond))
}

// drop closes the client's connection without an answer, as a dead peer's
// socket would be.
func drop(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			_ = conn.Close()
			return
		}
	}
	http.Error(w, "dropped by the chaos proxy", http.StatusBadGateway)
}
