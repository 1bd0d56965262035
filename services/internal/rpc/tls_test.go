package rpc

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	clusterv1 "github.com/flotilla-dev/flotilla/gen/flotilla/cluster/v1"
	plannerv1 "github.com/flotilla-dev/flotilla/gen/flotilla/planner/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// testCA signs certificates for the tests.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue writes a certificate for 127.0.0.1 (server and client use) and its
// key into dir as name.crt and name.key, and the CA as name-ca.crt.
func (ca *testCA) issue(t *testing.T, dir, name string, serial int64) TLSFiles {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	f := TLSFiles{Cert: filepath.Join(dir, name+".crt"), Key: filepath.Join(dir, name+".key"), CA: filepath.Join(dir, name+"-ca.crt")}
	writeAtomic(t, f.Cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	writeAtomic(t, f.Key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}))
	writeAtomic(t, f.CA, ca.pem)
	return f
}

// writeAtomic replaces a file the way a Secret volume update does: a new
// file renamed over the old one.
func writeAtomic(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path+".tmp", b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
}

type okPlanner struct {
	plannerv1.UnimplementedPlannerServer
}

func (okPlanner) Plan(context.Context, *plannerv1.PlanRequest) (*plannerv1.PlanResponse, error) {
	return &plannerv1.PlanResponse{TotalPricePerHour: 1}, nil
}

// serveTLS starts a planner server with mutual TLS from files on 127.0.0.1
// and returns its address.
func serveTLS(t *testing.T, files TLSFiles) string {
	t.Helper()
	creds, err := files.ServerCredentials()
	if err != nil {
		t.Fatal(err)
	}
	srv, err := NewServer(ServerOptions{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Creds: creds})
	if err != nil {
		t.Fatal(err)
	}
	plannerv1.RegisterPlannerServer(srv, okPlanner{})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis, time.Second) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return lis.Addr().String()
}

// call makes one Plan call on a new connection and returns the serial of
// the server certificate it saw.
func call(t *testing.T, addr string, creds credentials.TransportCredentials) (int64, error) {
	t.Helper()
	conn, err := Dial(addr, creds)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var p peer.Peer
	_, err = plannerv1.NewPlannerClient(conn).Plan(ctx, &plannerv1.PlanRequest{Snapshot: &clusterv1.Snapshot{}}, grpc.Peer(&p))
	if err != nil {
		return 0, err
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.PeerCertificates) == 0 {
		t.Fatalf("call was not over TLS: %T", p.AuthInfo)
	}
	return info.State.PeerCertificates[0].SerialNumber.Int64(), nil
}

func TestMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, "flotilla-test-ca")
	serverFiles := ca.issue(t, dir, "server", 100)
	clientFiles := ca.issue(t, dir, "client", 200)
	addr := serveTLS(t, serverFiles)

	clientCreds, err := clientFiles.ClientCredentials()
	if err != nil {
		t.Fatal(err)
	}
	t.Run("client with a certificate from the CA is served", func(t *testing.T) {
		serial, err := call(t, addr, clientCreds)
		if err != nil || serial != 100 {
			t.Fatalf("call = serial %d, %v; want served by serial 100", serial, err)
		}
	})
	t.Run("plaintext client is refused", func(t *testing.T) {
		_, err := call(t, addr, insecure.NewCredentials())
		if status.Code(err) != codes.Unavailable {
			t.Fatalf("plaintext call: %v, want Unavailable", err)
		}
	})
	t.Run("TLS client without a certificate is refused", func(t *testing.T) {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(ca.pem)
		_, err := call(t, addr, credentials.NewTLS(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}))
		if status.Code(err) != codes.Unavailable {
			t.Fatalf("call without client certificate: %v, want Unavailable", err)
		}
	})
	t.Run("client with a certificate from another CA is refused", func(t *testing.T) {
		other := newTestCA(t, "someone-else")
		files := other.issue(t, dir, "stranger", 300)
		files.CA = serverFiles.CA // trusts the server, but is not trusted by it
		creds, err := files.ClientCredentials()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := call(t, addr, creds); status.Code(err) != codes.Unavailable {
			t.Fatalf("call with a foreign certificate: %v, want Unavailable", err)
		}
	})
	t.Run("a rotated server certificate is picked up without restart", func(t *testing.T) {
		ca.issue(t, dir, "server", 101)
		deadline := time.Now().Add(10 * time.Second)
		for {
			serial, err := call(t, addr, clientCreds)
			if err != nil {
				t.Fatal(err)
			}
			if serial == 101 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("server still presents serial %d after rotation", serial)
			}
			time.Sleep(200 * time.Millisecond)
		}
	})
	t.Run("a rotated CA refuses clients of the old one", func(t *testing.T) {
		newCA := newTestCA(t, "flotilla-test-ca-2")
		// Rotate the server to the new CA, then the well-behaved client.
		newCA.issue(t, dir, "server", 102)
		newCA.issue(t, dir, "client", 201)
		deadline := time.Now().Add(10 * time.Second)
		for {
			serial, err := call(t, addr, clientCreds)
			if err == nil && serial == 102 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("rotated client not served by the rotated server: serial %d, %v", serial, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
		oldClient := ca.issue(t, t.TempDir(), "old", 400)
		oldClient.CA = serverFiles.CA
		creds, err := oldClient.ClientCredentials()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := call(t, addr, creds); status.Code(err) != codes.Unavailable {
			t.Fatalf("client of the old CA: %v, want Unavailable", err)
		}
	})
}

func TestTLSFilesValidate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files TLSFiles
		ok    bool
	}{
		{"none", TLSFiles{}, true},
		{"all", TLSFiles{Cert: "a", Key: "b", CA: "c"}, true},
		{"no ca", TLSFiles{Cert: "a", Key: "b"}, false},
		{"only ca", TLSFiles{CA: "c"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.files.Validate(); (err == nil) != tc.ok {
				t.Errorf("Validate() = %v, want ok=%t", err, tc.ok)
			}
		})
	}
	if _, err := (TLSFiles{Cert: "/nonexistent.crt", Key: "/nonexistent.key", CA: "/nonexistent.ca"}).ServerCredentials(); err == nil {
		t.Error("ServerCredentials with missing files succeeded")
	}
}

// TestDialReplicasFollowsHealth shows a client of an elected pair calling
// only the replica whose service is SERVING, and following a failover.
func TestDialReplicasFollowsHealth(t *testing.T) {
	const svc = "flotilla.planner.v1.Planner"
	type replica struct {
		srv  *Server
		addr string
	}
	var reps []replica
	for i := range 2 {
		srv, err := NewServer(ServerOptions{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		plannerv1.RegisterPlannerServer(srv, pricePlanner{price: float64(i + 1)})
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- srv.Serve(ctx, lis, time.Second) }()
		t.Cleanup(func() { cancel(); <-done })
		srv.SetStatus(i == 0, svc)
		reps = append(reps, replica{srv: srv, addr: lis.Addr().String()})
	}
	conn, err := DialReplicas(reps[0].addr+","+reps[1].addr, nil, svc)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := plannerv1.NewPlannerClient(conn)
	// servedBy waits until every call of a round lands on the want replica.
	servedBy := func(want float64) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			all := true
			for range 4 {
				resp, err := client.Plan(ctx, &plannerv1.PlanRequest{Snapshot: &clusterv1.Snapshot{}}, grpc.WaitForReady(true))
				if err != nil || resp.GetTotalPricePerHour() != want {
					all = false
				}
			}
			cancel()
			if all {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("calls not all served by replica %v", want)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	servedBy(1)
	reps[0].srv.SetStatus(false, svc)
	reps[1].srv.SetStatus(true, svc)
	servedBy(2)
	if _, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{Service: svc}); err != nil {
		t.Fatalf("health through the replica connection: %v", err)
	}
}

// pricePlanner answers every Plan with its own price, naming the replica.
type pricePlanner struct {
	plannerv1.UnimplementedPlannerServer
	price float64
}

func (p pricePlanner) Plan(context.Context, *plannerv1.PlanRequest) (*plannerv1.PlanResponse, error) {
	return &plannerv1.PlanResponse{TotalPricePerHour: p.price}, nil
}
