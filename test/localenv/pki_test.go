package localenv

import (
	"bytes"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatalf("%s: no PEM block", path)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestPKIServesAndAuthenticatesTheAPIServer(t *testing.T) {
	t.Parallel()
	p, err := LoadOrCreatePKI(filepath.Join(t.TempDir(), "pki"))
	if err != nil {
		t.Fatal(err)
	}
	ca := readCert(t, p.CACert)
	roots := x509.NewCertPool()
	roots.AddCert(ca)

	server := readCert(t, p.ServerCert)
	for _, name := range []string{"127.0.0.1", "10.96.0.1", "localhost", "kubernetes.default", "kubernetes.default.svc.cluster.local"} {
		if _, err := server.Verify(x509.VerifyOptions{Roots: roots, DNSName: name}); err != nil {
			t.Errorf("server certificate not valid for %s: %v", name, err)
		}
	}
	admin := readCert(t, p.AdminCert)
	if !slices.Equal(admin.Subject.Organization, []string{"system:masters"}) {
		t.Errorf("admin organization = %v, want [system:masters]", admin.Subject.Organization)
	}
	if _, err := admin.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("admin certificate not a client certificate of the CA: %v", err)
	}
	for _, key := range []string{p.CAKey, p.ServerKey, p.AdminKey, p.ServiceAccountKey} {
		if st, err := os.Stat(key); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v (err %v), want 0600", key, st.Mode().Perm(), err)
		}
	}

	// The service-account pair is RSA and the public half matches.
	keyPEM, _ := os.ReadFile(p.ServiceAccountKey)
	kb, _ := pem.Decode(keyPEM)
	priv, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, ok := priv.(*rsa.PrivateKey)
	if !ok {
		t.Fatalf("service-account key is %T, want RSA", priv)
	}
	pubPEM, _ := os.ReadFile(p.ServiceAccountPub)
	pb, _ := pem.Decode(pubPEM)
	pub, err := x509.ParsePKIXPublicKey(pb.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if !rsaKey.PublicKey.Equal(pub) {
		t.Error("service-account public key does not match the private key")
	}

	// A TLS handshake like the API server's: serving cert, client cert
	// required and verified by the CA.
	serverPair, err := tls.LoadX509KeyPair(p.ServerCert, p.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{serverPair},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    roots,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	peer := make(chan []string, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			peer <- nil
			return
		}
		defer c.Close()
		tc := c.(*tls.Conn)
		if err := tc.Handshake(); err != nil {
			peer <- nil
			return
		}
		peer <- tc.ConnectionState().PeerCertificates[0].Subject.Organization
	}()
	clientCfg, err := p.AdminTLS()
	if err != nil {
		t.Fatal(err)
	}
	c, err := tls.Dial("tcp", l.Addr().String(), clientCfg)
	if err != nil {
		t.Fatalf("admin client handshake: %v", err)
	}
	c.Close()
	if got := <-peer; !slices.Equal(got, []string{"system:masters"}) {
		t.Errorf("server saw client organization %v, want [system:masters]", got)
	}
}

func TestLoadOrCreatePKIReusesAValidPKIAndReplacesABrokenOne(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "pki")
	first, err := LoadOrCreatePKI(dir)
	if err != nil {
		t.Fatal(err)
	}
	caBefore, _ := os.ReadFile(first.CACert)
	if _, err := LoadOrCreatePKI(dir); err != nil {
		t.Fatal(err)
	}
	caAgain, _ := os.ReadFile(first.CACert)
	if !bytes.Equal(caBefore, caAgain) {
		t.Error("a valid PKI was regenerated; kubeconfigs copied by users would break")
	}
	if err := os.WriteFile(first.AdminCert, []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreatePKI(dir); err != nil {
		t.Fatal(err)
	}
	caAfter, _ := os.ReadFile(first.CACert)
	if bytes.Equal(caBefore, caAfter) {
		t.Error("a broken PKI was kept")
	}
	readCert(t, first.AdminCert)
}

func TestIssueSignsWithTheCA(t *testing.T) {
	t.Parallel()
	p, err := LoadOrCreatePKI(filepath.Join(t.TempDir(), "pki"))
	if err != nil {
		t.Fatal(err)
	}
	// A fresh PKI value (as after Load) must load the CA to issue.
	again := pkiPaths(p.Dir)
	certFile, keyFile, err := again.Issue("planner", CertSpec{
		CommonName: "planner", DNSNames: []string{"planner.flotilla.svc"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, Server: true, Client: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tls.LoadX509KeyPair(certFile, keyFile); err != nil {
		t.Fatalf("issued pair does not load: %v", err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(readCert(t, p.CACert))
	c := readCert(t, certFile)
	if _, err := c.Verify(x509.VerifyOptions{Roots: roots, DNSName: "planner.flotilla.svc",
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("issued certificate does not verify: %v", err)
	}
}

func runShell(script string) (string, error) {
	out, err := exec.Command("bash", "-c", script).Output()
	return strings.TrimRight(string(out), "\n"), err
}
