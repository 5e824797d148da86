package cabundle

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"

	"github.com/tokensync/tokensync/internal/cabundle/cabundletest"
)

// logLines records a logger's lines.
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) logger() logr.Logger {
	return funcr.New(func(prefix, args string) {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.lines = append(l.lines, args)
	}, funcr.Options{})
}

// count is how many lines hold text.
func (l *logLines) count(text string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, line := range l.lines {
		if strings.Contains(line, text) {
			n++
		}
	}
	return n
}

// fakeClock is a clock the test moves.
type fakeClock struct{ now time.Time }

func (c *fakeClock) Now() time.Time                           { return c.now }
func (c *fakeClock) Step(d time.Duration)                     { c.now = c.now.Add(d) }
func newFakeClock() *fakeClock                                { return &fakeClock{now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)} }
func verifies(pool *x509.CertPool, cert tls.Certificate) bool { return verify(pool, cert) == nil }

func verify(pool *x509.CertPool, cert tls.Certificate) error {
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return err
	}
	_, err = leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "127.0.0.1"})
	return err
}

func TestLoadRefusesAnUnusableFile(t *testing.T) {
	dir := t.TempDir()
	ca := cabundletest.NewCA(t, "private CA")
	key := "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleS1ieXRlcw==\n-----END PRIVATE KEY-----\n"
	cases := []struct {
		name, content, want string
	}{
		{"missing", "", "no such file"},
		{"empty", "\n", "no PEM certificate in it"},
		{"not PEM", "ca.crt: see the wiki\n", "no PEM certificate in it"},
		{"a key after the certificate", string(ca.PEM) + key, `PEM block 2 is a "PRIVATE KEY", not a CERTIFICATE`},
		{"a broken certificate", "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n", "PEM block 1: x509:"},
		{"too large", string(ca.PEM) + strings.Repeat("#\n", MaxFileBytes/2), "larger than 4 MiB"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "-")+".pem")
			if c.name != "missing" {
				if err := os.WriteFile(path, []byte(c.content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			b, err := Load(path, Options{})
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), path) {
				t.Fatalf("Load = %v, %v; want an error naming the file and saying %q", b, err, c.want)
			}
			if strings.Contains(err.Error(), "c2VjcmV0") {
				t.Errorf("the error %q quotes the key", err)
			}
		})
	}
}

// TestPoolKeepsTheSystemRoots: the bundle is trusted besides the system's
// roots, not instead of them; comments between the blocks are allowed.
func TestPoolKeepsTheSystemRoots(t *testing.T) {
	a, b := cabundletest.NewCA(t, "a"), cabundletest.NewCA(t, "b")
	path := filepath.Join(t.TempDir(), "ca.crt")
	content := "# Issuer: a\n" + string(a.PEM) + "\n# Issuer: b\n" + string(b.PEM)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	bundle, err := Load(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	pool := bundle.Pool()
	for name, ca := range map[string]*cabundletest.CA{"a": a, "b": b} {
		if err := verify(pool, ca.ServerCertificate(t, "127.0.0.1")); err != nil {
			t.Errorf("a certificate of %s is not trusted: %v", name, err)
		}
	}
	system, err := x509.SystemCertPool()
	if err != nil {
		t.Fatalf("this machine has no system roots to compare with: %v", err)
	}
	// Subjects is deprecated for pools of a platform verifier (macOS,
	// Windows); on Linux the system's roots are read from files.
	got, want := subjects(pool.Subjects()), system.Subjects()
	for _, s := range want {
		if !got[string(s)] {
			t.Fatalf("a system root is missing from the pool (%d roots, %d in the pool)", len(want), len(got))
		}
	}
	if len(got) != len(subjects(want))+2 {
		t.Errorf("the pool has %d subjects, want the system's %d and the bundle's 2", len(got), len(subjects(want)))
	}
}

func subjects(raw [][]byte) map[string]bool {
	m := map[string]bool{}
	for _, s := range raw {
		m[string(s)] = true
	}
	return m
}

// TestPoolFollowsTheFile: a file the kubelet updates (a new directory swapped
// in) or one edited in place is read again at the first look after
// CheckInterval, and its certificates replace the old ones; within the
// interval nothing is looked at.
func TestPoolFollowsTheFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ca.crt")
	clock := newFakeClock()
	var logs logLines
	first, second := cabundletest.NewCA(t, "first"), cabundletest.NewCA(t, "second")
	cabundletest.WriteLikeKubelet(t, dir, map[string][]byte{"ca.crt": first.PEM})
	b, err := Load(path, Options{Log: logs.logger(), Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	p1 := b.Pool()
	if !verifies(p1, first.ServerCertificate(t, "127.0.0.1")) || verifies(p1, second.ServerCertificate(t, "127.0.0.1")) {
		t.Fatal("the pool does not trust the first CA alone")
	}

	cabundletest.WriteLikeKubelet(t, dir, map[string][]byte{"ca.crt": second.PEM})
	clock.Step(CheckInterval - time.Millisecond)
	if b.Pool() != p1 {
		t.Fatal("the file was read again within CheckInterval")
	}
	clock.Step(time.Millisecond)
	p2 := b.Pool()
	if p2 == p1 {
		t.Fatal("the file swapped in by the kubelet was not read again after CheckInterval")
	}
	if !verifies(p2, second.ServerCertificate(t, "127.0.0.1")) || verifies(p2, first.ServerCertificate(t, "127.0.0.1")) {
		t.Error("the new pool does not trust the second CA alone")
	}
	if logs.count(`"msg"="The CA bundle changed: the next connections`) != 1 {
		t.Errorf("the reload is not logged once: %q", logs.lines)
	}
	clock.Step(CheckInterval)
	if b.Pool() != p2 {
		t.Error("an unchanged file gave a new pool")
	}

	// Edited in place, with the same size: its modification time tells.
	third := cabundletest.NewCA(t, "third")
	plain := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(plain, first.PEM, 0o644); err != nil {
		t.Fatal(err)
	}
	b, err = Load(plain, Options{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	p1 = b.Pool()
	if err := os.WriteFile(plain, third.PEM, 0o644); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Minute) // a coarse file system may keep the old time
	if err := os.Chtimes(plain, later, later); err != nil {
		t.Fatal(err)
	}
	clock.Step(CheckInterval)
	if p := b.Pool(); p == p1 || !verifies(p, third.ServerCertificate(t, "127.0.0.1")) {
		t.Error("a file edited in place was not read again")
	}
}

// TestPoolKeepsTheLastGoodCertificates: a changed file that cannot be used
// (no certificate, removed) leaves the pool as it was and is logged once,
// however often logins look; a good file after it is used.
func TestPoolKeepsTheLastGoodCertificates(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ca.crt")
	clock := newFakeClock()
	var logs logLines
	good, next := cabundletest.NewCA(t, "good"), cabundletest.NewCA(t, "next")
	cabundletest.WriteLikeKubelet(t, dir, map[string][]byte{"ca.crt": good.PEM})
	b, err := Load(path, Options{Log: logs.logger(), Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	p := b.Pool()
	const failed = `"msg"="The CA bundle changed and cannot be used`

	cabundletest.WriteLikeKubelet(t, dir, map[string][]byte{"ca.crt": []byte("not a certificate\n")})
	for range 3 {
		clock.Step(CheckInterval)
		if b.Pool() != p {
			t.Fatal("a file without certificates replaced the pool")
		}
	}
	if n := logs.count(failed); n != 1 || logs.count("no PEM certificate in it") != 1 {
		t.Errorf("the bad file is logged %d times, want once saying why: %q", n, logs.lines)
	}

	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		clock.Step(CheckInterval)
		if b.Pool() != p {
			t.Fatal("a removed file replaced the pool")
		}
	}
	if n := logs.count(failed); n != 2 || logs.count("no such file") != 1 {
		t.Errorf("the removed file is not logged once: %q", logs.lines)
	}
	if !verifies(b.Pool(), good.ServerCertificate(t, "127.0.0.1")) {
		t.Error("the last good certificates are no longer trusted")
	}

	cabundletest.WriteLikeKubelet(t, dir, map[string][]byte{"ca.crt": next.PEM})
	clock.Step(CheckInterval)
	if got := b.Pool(); got == p || !verifies(got, next.ServerCertificate(t, "127.0.0.1")) {
		t.Error("a good file after bad ones is not used")
	}
	if n := logs.count(failed); n != 2 {
		t.Errorf("errors logged %d times, want 2: %q", n, logs.lines)
	}
}
