package localenv

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// PKI is the environment's certificate authority and the certificates and
// keys the control plane uses, as PEM files in one directory.
type PKI struct {
	Dir string
	// CACert and CAKey are the cluster CA; it signs every other certificate.
	CACert, CAKey string
	// ServerCert and ServerKey are the kube-apiserver's serving pair.
	ServerCert, ServerKey string
	// AdminCert and AdminKey are a client pair in group system:masters.
	AdminCert, AdminKey string
	// ServiceAccountKey and ServiceAccountPub are the RSA pair that signs
	// and verifies service account tokens.
	ServiceAccountKey, ServiceAccountPub string

	ca    *x509.Certificate
	caKey crypto.Signer
}

// CertSpec describes a certificate for Issue.
type CertSpec struct {
	CommonName   string
	Organization []string
	DNSNames     []string
	IPs          []net.IP
	// Server and Client select the extended key usages.
	Server, Client bool
	// Validity is one year when zero.
	Validity time.Duration
}

// apiserverSANs are the names the kube-apiserver is reached by, locally and
// from inside the cluster.
var apiserverSANs = CertSpec{
	CommonName: "kube-apiserver",
	DNSNames: []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
		"kubernetes.default.svc.cluster", "kubernetes.default.svc.cluster.local"},
	IPs:    []net.IP{net.IPv4(127, 0, 0, 1), net.IPv4(10, 96, 0, 1), net.IPv6loopback},
	Server: true,
}

func pkiPaths(dir string) *PKI {
	j := func(n string) string { return filepath.Join(dir, n) }
	return &PKI{
		Dir:    dir,
		CACert: j("ca.crt"), CAKey: j("ca.key"),
		ServerCert: j("apiserver.crt"), ServerKey: j("apiserver.key"),
		AdminCert: j("admin.crt"), AdminKey: j("admin.key"),
		ServiceAccountKey: j("sa.key"), ServiceAccountPub: j("sa.pub"),
	}
}

// LoadOrCreatePKI loads the PKI in dir when it is complete and valid for at
// least another day, and generates a new one otherwise.
func LoadOrCreatePKI(dir string) (*PKI, error) {
	p := pkiPaths(dir)
	if err := p.load(); err == nil {
		return p, nil
	}
	if err := p.generate(); err != nil {
		return nil, fmt.Errorf("generate pki in %s: %w", dir, err)
	}
	return p, nil
}

func (p *PKI) load() error {
	for _, f := range []string{p.ServerCert, p.ServerKey, p.AdminCert, p.AdminKey, p.ServiceAccountKey, p.ServiceAccountPub} {
		if _, err := os.Stat(f); err != nil {
			return err
		}
	}
	pair, err := tls.LoadX509KeyPair(p.CACert, p.CAKey)
	if err != nil {
		return err
	}
	ca, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return err
	}
	signer, ok := pair.PrivateKey.(crypto.Signer)
	if !ok {
		return errors.New("ca key is not a signer")
	}
	for _, f := range []string{p.ServerCert, p.AdminCert} {
		if err := checkCert(f, ca); err != nil {
			return err
		}
	}
	p.ca, p.caKey = ca, signer
	return nil
}

// checkCert verifies a certificate file against the CA and a day of validity.
func checkCert(path string, ca *x509.Certificate) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return fmt.Errorf("%s: no PEM", path)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return err
	}
	if time.Until(c.NotAfter) < 24*time.Hour {
		return fmt.Errorf("%s expires soon", path)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	_, err = c.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	return err
}

func (p *PKI) generate() error {
	if err := os.MkdirAll(p.Dir, 0o700); err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "flotilla-local-ca"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(5 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return err
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		return err
	}
	if err := writePEM(p.CAKey, key); err != nil {
		return err
	}
	if err := writeFile(p.CACert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return err
	}
	p.ca, p.caKey = ca, key

	if err := p.issueTo(p.ServerCert, p.ServerKey, apiserverSANs); err != nil {
		return err
	}
	admin := CertSpec{CommonName: "flotilla-admin", Organization: []string{"system:masters"}, Client: true}
	if err := p.issueTo(p.AdminCert, p.AdminKey, admin); err != nil {
		return err
	}
	saKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	if err := writePEM(p.ServiceAccountKey, saKey); err != nil {
		return err
	}
	pub, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		return err
	}
	return writeFile(p.ServiceAccountPub, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644)
}

// Issue signs a new certificate with the CA and writes it, with its key, as
// <dir>/<name>.crt and <dir>/<name>.key. It returns the two paths.
func (p *PKI) Issue(name string, spec CertSpec) (certFile, keyFile string, err error) {
	if p.ca == nil {
		if err := p.load(); err != nil {
			return "", "", fmt.Errorf("issue %s: %w", name, err)
		}
	}
	certFile, keyFile = filepath.Join(p.Dir, name+".crt"), filepath.Join(p.Dir, name+".key")
	if err := p.issueTo(certFile, keyFile, spec); err != nil {
		return "", "", fmt.Errorf("issue %s: %w", name, err)
	}
	return certFile, keyFile, nil
}

func (p *PKI) issueTo(certFile, keyFile string, spec CertSpec) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	validity := spec.Validity
	if validity <= 0 {
		validity = 365 * 24 * time.Hour
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: spec.CommonName, Organization: spec.Organization},
		DNSNames:     spec.DNSNames,
		IPAddresses:  spec.IPs,
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(validity),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
	}
	if spec.Server {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
	}
	if spec.Client {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageClientAuth)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, key.Public(), p.caKey)
	if err != nil {
		return err
	}
	if err := writePEM(keyFile, key); err != nil {
		return err
	}
	return writeFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

// AdminTLS returns a client TLS configuration that trusts the CA and
// presents the admin certificate.
func (p *PKI) AdminTLS() (*tls.Config, error) {
	pair, err := tls.LoadX509KeyPair(p.AdminCert, p.AdminKey)
	if err != nil {
		return nil, fmt.Errorf("load admin certificate: %w", err)
	}
	caPEM, err := os.ReadFile(p.CACert)
	if err != nil {
		return nil, fmt.Errorf("load ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("load ca: no certificate")
	}
	return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}, nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	if err != nil {
		return big.NewInt(time.Now().UnixNano())
	}
	return n
}

func writePEM(path string, key crypto.PrivateKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	return writeFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
}

func writeFile(path string, b []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
