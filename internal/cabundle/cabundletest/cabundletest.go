// Package cabundletest makes what tests of a private CA need: an authority
// of their own, server certificates it signs, a TLS server whose
// certificate can be swapped, and a CA bundle file updated as the kubelet
// updates a mounted ConfigMap.
package cabundletest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// CA is a certificate authority no system trusts.
type CA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	// PEM is the authority's certificate, as a CA bundle holds it.
	PEM []byte
}

var serials atomic.Int64

// NewCA makes an authority named name.
func NewCA(tb testing.TB, name string) *CA {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	template := &x509.Certificate{
		SerialNumber:          big.NewInt(serials.Add(1)),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	return &CA{cert: cert, key: key, PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// ServerCertificate is a certificate the authority signs for hosts (names
// or IP addresses), with its key.
func (ca *CA) ServerCertificate(tb testing.TB, hosts ...string) tls.Certificate {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	template := &x509.Certificate{
		SerialNumber: big.NewInt(serials.Add(1)),
		Subject:      pkix.Name{CommonName: hosts[0]},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			template.IPAddresses = append(template.IPAddresses, ip)
		} else {
			template.DNSNames = append(template.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, template, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		tb.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// Server is an HTTPS server on 127.0.0.1 whose certificate a test swaps.
type Server struct {
	*httptest.Server
	mu   sync.Mutex
	cert tls.Certificate
}

// StartServer serves handler over TLS (HTTP/2 offered) with a certificate
// of ca for 127.0.0.1, until the test ends: an identity provider behind a
// private CA, rather than httptest's built-in certificate.
func StartServer(tb testing.TB, ca *CA, handler http.Handler) *Server {
	tb.Helper()
	s := &Server{Server: httptest.NewUnstartedServer(handler), cert: ca.ServerCertificate(tb, "127.0.0.1")}
	s.EnableHTTP2 = true
	// The handshakes the tests expect to fail are not news.
	s.Config.ErrorLog = log.New(io.Discard, "", 0)
	// Per connection, and not GetCertificate: a client that dials an IP
	// address sends no server name, and the server would present
	// httptest's own certificate, which StartTLS puts in Certificates.
	s.TLS = &tls.Config{GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		return &tls.Config{Certificates: []tls.Certificate{s.cert}, NextProtos: []string{"h2", "http/1.1"}}, nil
	}}
	s.StartTLS()
	tb.Cleanup(s.Close)
	return s
}

// ServeCertificateOf makes the server present a certificate of ca from now
// on, and closes the connections made with the last one, so that no client
// goes on with a connection it verified before.
func (s *Server) ServeCertificateOf(tb testing.TB, ca *CA) {
	tb.Helper()
	cert := ca.ServerCertificate(tb, "127.0.0.1")
	s.mu.Lock()
	s.cert = cert
	s.mu.Unlock()
	s.CloseClientConnections()
}

// WriteLikeKubelet writes files (path: content) into dir as the kubelet
// writes a ConfigMap or Secret volume (its AtomicWriter): into a new
// timestamped directory, which the symbolic link dir/..data is then swapped
// to by a rename; each top-level name in dir is a link into ..data. A
// reader sees the old files or the new ones, never a mix, and a new file is
// another file (another inode), even with the same size and modification
// time. Files left out of a later call are not removed.
func WriteLikeKubelet(tb testing.TB, dir string, files map[string][]byte) {
	tb.Helper()
	version, err := os.MkdirTemp(dir, "..tmp_")
	if err != nil {
		tb.Fatal(err)
	}
	for path, data := range files {
		full := filepath.Join(version, filepath.FromSlash(path))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(full, data, 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	tmpLink := filepath.Join(dir, fmt.Sprintf("..data_tmp_%d", serials.Add(1)))
	if err := os.Symlink(filepath.Base(version), tmpLink); err != nil {
		tb.Fatal(err)
	}
	if err := os.Rename(tmpLink, filepath.Join(dir, "..data")); err != nil {
		tb.Fatal(err)
	}
	for path := range files {
		top, _, _ := strings.Cut(path, "/")
		link := filepath.Join(dir, top)
		if _, err := os.Lstat(link); os.IsNotExist(err) {
			if err := os.Symlink(filepath.Join("..data", top), link); err != nil {
				tb.Fatal(err)
			}
		}
	}
}
