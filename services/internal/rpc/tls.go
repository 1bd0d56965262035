package rpc

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"google.golang.org/grpc/credentials"
)

// TLSFiles names the PEM files of a service's mutual TLS: its own
// certificate and key, and the CA bundle that signs its peers'. Each is
// read again when it changes on disk, so a rotated certificate (a renewed
// Secret, say) is used by the next connection without a restart.
type TLSFiles struct {
	Cert, Key, CA string
}

// Enabled reports whether any file is named.
func (f TLSFiles) Enabled() bool { return f.Cert != "" || f.Key != "" || f.CA != "" }

// Validate checks that either all three files or none are named.
func (f TLSFiles) Validate() error {
	if f.Enabled() && (f.Cert == "" || f.Key == "" || f.CA == "") {
		return errors.New("--tls-cert, --tls-key and --tls-ca go together")
	}
	return nil
}

// ServerCredentials returns mutual-TLS server credentials: the server
// presents its certificate and refuses clients without a certificate signed
// by the CA. Files are read now (an error is returned if they are unusable)
// and again whenever one changes.
func (f TLSFiles) ServerCredentials() (credentials.TransportCredentials, error) {
	r, err := newReloader(f)
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			m, err := r.current()
			if err != nil {
				return nil, err
			}
			return &tls.Config{
				MinVersion:   tls.VersionTLS12,
				Certificates: []tls.Certificate{m.cert},
				ClientCAs:    m.pool,
				ClientAuth:   tls.RequireAndVerifyClientCert,
				NextProtos:   []string{"h2"},
			}, nil
		},
	}
	return credentials.NewTLS(cfg), nil
}

// ClientCredentials returns mutual-TLS client credentials: the client
// presents its certificate and verifies the server's against the CA and the
// name it dialled. Files are re-read when they change.
func (f TLSFiles) ClientCredentials() (credentials.TransportCredentials, error) {
	r, err := newReloader(f)
	if err != nil {
		return nil, err
	}
	return &reloadingClient{r: r}, nil
}

// material is one loaded generation of the files.
type material struct {
	cert tls.Certificate
	pool *x509.CertPool
}

// reloader keeps the files' content and reloads it when a file's size or
// modification time changes (checked at most once a second).
type reloader struct {
	files TLSFiles

	mu      sync.Mutex
	mat     *material
	stamp   string
	checked time.Time
}

func newReloader(f TLSFiles) (*reloader, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	if !f.Enabled() {
		return nil, errors.New("no TLS files named")
	}
	r := &reloader{files: f}
	if _, err := r.current(); err != nil {
		return nil, err
	}
	return r, nil
}

// current returns the loaded material, reloading it first when the files
// changed. A reload that fails (a half-written file) keeps the previous
// material and is tried again on the next call.
func (r *reloader) current() (*material, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.mat != nil && time.Since(r.checked) < time.Second {
		return r.mat, nil
	}
	r.checked = time.Now()
	stamp, err := r.fileStamp()
	if err != nil {
		if r.mat != nil {
			return r.mat, nil
		}
		return nil, err
	}
	if r.mat != nil && stamp == r.stamp {
		return r.mat, nil
	}
	m, err := load(r.files)
	if err != nil {
		if r.mat != nil {
			return r.mat, nil
		}
		return nil, err
	}
	r.mat, r.stamp = m, stamp
	return m, nil
}

func (r *reloader) fileStamp() (string, error) {
	var b bytes.Buffer
	for _, p := range []string{r.files.Cert, r.files.Key, r.files.CA} {
		st, err := os.Stat(p)
		if err != nil {
			return "", fmt.Errorf("tls file: %w", err)
		}
		fmt.Fprintf(&b, "%s:%d:%d;", p, st.Size(), st.ModTime().UnixNano())
	}
	return b.String(), nil
}

func load(f TLSFiles) (*material, error) {
	cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		return nil, fmt.Errorf("load tls certificate %s: %w", f.Cert, err)
	}
	caPEM, err := os.ReadFile(f.CA)
	if err != nil {
		return nil, fmt.Errorf("load tls ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("load tls ca %s: no certificate", f.CA)
	}
	return &material{cert: cert, pool: pool}, nil
}

// reloadingClient builds fresh TLS client credentials from the current
// material for every handshake.
type reloadingClient struct {
	r          *reloader
	serverName string
}

func (c *reloadingClient) creds() (credentials.TransportCredentials, error) {
	m, err := c.r.current()
	if err != nil {
		return nil, err
	}
	return credentials.NewTLS(&tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{m.cert},
		RootCAs:      m.pool,
		ServerName:   c.serverName,
	}), nil
}

// ClientHandshake implements credentials.TransportCredentials.
func (c *reloadingClient) ClientHandshake(ctx context.Context, authority string, conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	tc, err := c.creds()
	if err != nil {
		return nil, nil, err
	}
	return tc.ClientHandshake(ctx, authority, conn)
}

// ServerHandshake implements credentials.TransportCredentials; client
// credentials do not serve.
func (c *reloadingClient) ServerHandshake(net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errors.New("client credentials cannot serve")
}

// Info implements credentials.TransportCredentials.
func (c *reloadingClient) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "tls", SecurityVersion: "1.2", ServerName: c.serverName}
}

// Clone implements credentials.TransportCredentials.
func (c *reloadingClient) Clone() credentials.TransportCredentials {
	return &reloadingClient{r: c.r, serverName: c.serverName}
}

// OverrideServerName implements credentials.TransportCredentials.
func (c *reloadingClient) OverrideServerName(name string) error {
	c.serverName = name
	return nil
}

// RegisterFlags adds --tls-cert, --tls-key and --tls-ca to fs.
func (f *TLSFiles) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&f.Cert, "tls-cert", "", "PEM certificate this service presents (mutual TLS; reloaded when it changes)")
	fs.StringVar(&f.Key, "tls-key", "", "PEM private key of --tls-cert")
	fs.StringVar(&f.CA, "tls-ca", "", "PEM CA bundle that signs the certificates of the other services")
}
