// Package cabundle reads the file of --ca-bundle-file: PEM certificates of
// authorities the operator trusts for providers' TLS besides its own roots
// (the system's, else those built into the manager), such as the private CA
// of an identity provider inside a corporate network. The file is looked at
// again when logins are made, so that a ConfigMap or Secret the kubelet
// updates in the pod is used from the next login on, without a restart.
package cabundle

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/go-logr/logr"
)

// CheckInterval is the least time between two looks at the file: within it,
// Pool answers from memory, so a burst of logins costs one stat. The
// kubelet takes a minute or so to bring a changed ConfigMap into a pod; a
// few seconds more are nothing beside it.
const CheckInterval = 5 * time.Second

// MaxFileBytes bounds the file read. Every public root of Mozilla's program
// together is about 220 KiB.
const MaxFileBytes = 4 << 20

// Options tune a Bundle; the zero value is ready to use.
type Options struct {
	// Log receives a line when a changed file is used, and an error when a
	// changed file cannot be (the certificates read last stay in use).
	Log logr.Logger
	// Now is the clock CheckInterval is counted with; nil means time.Now.
	Now func() time.Time
}

// Bundle is the pool of roots the providers' HTTP client verifies servers
// with: the system's roots and the file's certificates, re-read when the
// file changes. Its methods are safe for concurrent use.
type Bundle struct {
	path string
	log  logr.Logger
	now  func() time.Time

	mu   sync.Mutex
	pool *x509.CertPool
	// seen is the file last read, good or bad, so that a file that has not
	// changed is neither read again nor reported twice; nil when it could
	// not be looked at.
	seen    os.FileInfo
	checked time.Time
	// failure is the error last logged, so that a file that stays missing
	// is reported once.
	failure string
}

// Load reads path and returns its Bundle. A file that cannot be read, or
// holds anything but PEM certificates, or none, is an error: the manager
// stops at start rather than run without the roots it was given.
func Load(path string, o Options) (*Bundle, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	info, certs, err := read(path)
	if err != nil {
		return nil, err
	}
	b := &Bundle{path: path, log: o.Log, now: o.Now, pool: newPool(certs), seen: info, checked: o.Now()}
	b.log.Info("Trusting a CA bundle for provider TLS besides the system's roots", "file", path, "certificates", len(certs))
	return b, nil
}

// Pool returns the roots to verify a provider's certificate with. It looks
// at the file at most once per CheckInterval, and reads it again only when
// it is another file than the one read last (the kubelet swaps a new
// directory in for every update) or was modified. A changed file that
// cannot be used leaves the pool as it was, and is logged once. A pool
// other than the last one returned means the file changed.
func (b *Bundle) Pool() *x509.CertPool {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	if since := now.Sub(b.checked); since >= 0 && since < CheckInterval {
		return b.pool
	}
	b.checked = now
	info, err := os.Stat(b.path)
	if err == nil && sameFile(info, b.seen) {
		return b.pool
	}
	var certs []*x509.Certificate
	if err == nil {
		info, certs, err = read(b.path)
	}
	b.seen = info
	if err != nil {
		if err.Error() != b.failure {
			b.failure = err.Error()
			b.log.Error(err, "The CA bundle changed and cannot be used: the certificates read before stay in use", "file", b.path)
		}
		return b.pool
	}
	b.failure = ""
	b.pool = newPool(certs)
	b.log.Info("The CA bundle changed: the next connections to providers trust its new certificates", "file", b.path, "certificates", len(certs))
	return b.pool
}

// sameFile tells whether the file looked at is the one read last, unchanged.
func sameFile(info, seen os.FileInfo) bool {
	return seen != nil && os.SameFile(info, seen) && info.Size() == seen.Size() && info.ModTime().Equal(seen.ModTime())
}

// read reads the certificates of path, and what the file was when read.
func read(path string) (os.FileInfo, []*x509.Certificate, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return info, nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(data) > MaxFileBytes {
		return info, nil, fmt.Errorf("%s is larger than %d MiB, the most read", path, MaxFileBytes>>20)
	}
	certs, err := parse(data)
	if err != nil {
		return info, nil, fmt.Errorf("%s: %w", path, err)
	}
	return info, certs, nil
}

// parse reads every PEM block of data, each of which must be a
// certificate. Anything else is refused rather than skipped: a private key
// or a file of another format is a file given by mistake, and a bundle
// half read would fail later and further from its cause. Text between the
// blocks (the comments of a distribution's bundle) is allowed.
func parse(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for n := 1; ; n++ {
		var block *pem.Block
		if block, data = pem.Decode(data); block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			// The type only: the block may be a key.
			return nil, fmt.Errorf("PEM block %d is a %q, not a CERTIFICATE", n, block.Type)
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("PEM block %d: %w", n, err)
		}
		certs = append(certs, cert)
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM certificate in it")
	}
	return certs, nil
}

// newPool returns the system's roots with certs added. In the manager the
// system's roots are those of the image when it has any, else those built
// in (golang.org/x/crypto/x509roots/fallback); a process with neither
// trusts certs alone.
func newPool(certs []*x509.Certificate) *x509.CertPool {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool
}
