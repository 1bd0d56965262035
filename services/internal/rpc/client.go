package rpc

import (
	"fmt"
	"net"
	"strings"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
)

// Dial returns a client connection to target with trace propagation, the
// message size limit and keepalives. creds nil means plaintext. The
// connection is lazy: it connects on the first call.
func Dial(target string, creds credentials.TransportCredentials) (*grpc.ClientConn, error) {
	return dial(target, creds)
}

// DialReplicas connects to a replicated service of which only some
// replicas serve (the leader of an elected pair): target is a
// comma-separated list of host:port addresses or a resolver target such as
// dns:///actuator.flotilla.svc:7102 (a headless Service that lists every
// pod). Calls go round-robin to the replicas whose grpc.health.v1 status for
// healthService is SERVING; the others are skipped until they are. While
// none is (a failover), calls wait for one within their deadline.
func DialReplicas(target string, creds credentials.TransportCredentials, healthService string) (*grpc.ClientConn, error) {
	cfg := fmt.Sprintf(`{"loadBalancingConfig":[{"round_robin":{}}],"healthCheckConfig":{"serviceName":%q}}`, healthService)
	opts := []grpc.DialOption{grpc.WithDefaultServiceConfig(cfg), grpc.WithDefaultCallOptions(grpc.WaitForReady(true))}
	if strings.Contains(target, ",") {
		var addrs []resolver.Address
		for _, a := range strings.Split(target, ",") {
			if a = strings.TrimSpace(a); a != "" {
				addrs = append(addrs, resolver.Address{Addr: a})
			}
		}
		host, _, err := net.SplitHostPort(addrs[0].Addr)
		if err != nil {
			return nil, fmt.Errorf("dial %s: %w", target, err)
		}
		r := manual.NewBuilderWithScheme("replicas")
		r.InitialState(resolver.State{Addresses: addrs})
		// Certificates name the host the replicas share (127.0.0.1 locally).
		opts = append(opts, grpc.WithResolvers(r), grpc.WithAuthority(host))
		target = r.Scheme() + ":///replicas"
	}
	return dial(target, creds, opts...)
}

func dial(target string, creds credentials.TransportCredentials, extra ...grpc.DialOption) (*grpc.ClientConn, error) {
	if creds == nil {
		creds = insecure.NewCredentials()
	}
	opts := append([]grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithStatsHandler(otelgrpc.NewClientHandler()),
		grpc.WithDefaultCallOptions(
			grpc.ForceCodecV2(newMessageCodec()),
			grpc.MaxCallRecvMsgSize(DefaultMaxMessageBytes),
			grpc.MaxCallSendMsgSize(DefaultMaxMessageBytes),
		),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
	}, extra...)
	conn, err := grpc.NewClient(target, opts...)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", target, err)
	}
	return conn, nil
}
