package localenv

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
)

// TLSFiles are PEM files of a certificate, its key and the CA that signs
// it and its peers.
type TLSFiles struct {
	Cert, Key, CA string
}

// serviceCertSpec is a Flotilla service's certificate: it serves and calls
// the other services on 127.0.0.1.
func serviceCertSpec(service string) CertSpec {
	return CertSpec{
		CommonName: "flotilla-" + service,
		DNSNames:   []string{"localhost", "flotilla-" + service},
		IPs:        []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		Server:     true,
		Client:     true,
	}
}

// IssueServiceCert issues (again: a new key each time, which is a
// rotation for a running service) the mutual-TLS certificate of one
// Flotilla service, signed by the environment's CA, into
// <dir>/pki/flotilla-<service>.{crt,key}.
func (e *Env) IssueServiceCert(service string) (TLSFiles, error) {
	cert, key, err := e.PKI.Issue("flotilla-"+service, serviceCertSpec(service))
	if err != nil {
		return TLSFiles{}, err
	}
	return TLSFiles{Cert: cert, Key: key, CA: e.PKI.CACert}, nil
}

// ClientTLSFiles issues a client certificate for calling the services
// (grpcurl, tests) into <dir>/pki/flotilla-client.{crt,key}.
func (e *Env) ClientTLSFiles() (TLSFiles, error) {
	cert, key, err := e.PKI.Issue("flotilla-client", CertSpec{CommonName: "flotilla-client", Client: true})
	if err != nil {
		return TLSFiles{}, err
	}
	return TLSFiles{Cert: cert, Key: key, CA: e.PKI.CACert}, nil
}

// Config returns a client TLS configuration presenting the certificate and
// trusting the CA.
func (f TLSFiles) Config() (*tls.Config, error) {
	pair, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		return nil, fmt.Errorf("load client certificate: %w", err)
	}
	caPEM, err := os.ReadFile(f.CA)
	if err != nil {
		return nil, fmt.Errorf("load ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("load ca: no certificate")
	}
	return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}, nil
}
