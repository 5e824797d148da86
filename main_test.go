package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tokensync/tokensync/internal/cabundle/cabundletest"
	"github.com/tokensync/tokensync/internal/endpointpolicy"
)

func TestMemoryLimit(t *testing.T) {
	tests := []struct {
		env  string
		want int64
		ok   bool
	}{
		{"536870912", 483183819, true}, // 512Mi from the downward API
		{"", 0, false},
		{"400MiB", 0, false}, // set by hand: the runtime reads it as it is
		{"0", 0, false},
		{"-5", 0, false},
	}
	for _, tt := range tests {
		got, ok := memoryLimit(tt.env)
		if got != tt.want || ok != tt.ok {
			t.Errorf("memoryLimit(%q) = %d, %v; want %d, %v", tt.env, got, ok, tt.want, tt.ok)
		}
	}
}

// TestClusterOnlyRefusesNamespaces: the manager that serves
// ClusterTokenRequests beside sharded managers must watch every namespace;
// the two flags together are refused before anything starts.
func TestClusterOnlyRefusesNamespaces(t *testing.T) {
	err := run(runConfig{namespaces: []string{"team-a"}, clusterTokenRequestsOnly: true})
	if err == nil || !strings.Contains(err.Error(), "--cluster-token-requests-only") || !strings.Contains(err.Error(), "--namespaces") {
		t.Fatalf("run = %v, want an error naming both flags", err)
	}
}

// TestEndpointPolicyFlags: the private-address flags reach the endpoint
// policy, and a malformed entry stops the manager before it starts, with a
// message naming the flag and the entry.
func TestEndpointPolicyFlags(t *testing.T) {
	tests := []struct {
		name    string
		config  runConfig
		want    string // in the policy's description
		wantErr string
	}{
		{name: "default: private addresses refused", want: "private addresses: refused;"},
		{name: "allow all", config: runConfig{endpointRules: endpointpolicy.Rules{AllowPrivate: true}}, want: "private addresses: allowed (--allow-private-endpoints)"},
		{name: "entries", config: runConfig{allowedPrivateEndpoints: "idp.internal, 10.20.0.0/16,[fd00::1]:8443"},
			want: "private addresses: refused but for idp.internal,10.20.0.0/16,[fd00::1]:8443"},
		{name: "an allowlisted private address with its entry", config: runConfig{allowedPrivateEndpoints: "10.0.0.5", allowedEndpoints: "partner=https://10.0.0.5"},
			want: "partner: https://10.0.0.5"},

		{name: "bad CIDR", config: runConfig{allowedPrivateEndpoints: "10.0.0.0/33"}, wantErr: `--allowed-private-endpoints: entry "10.0.0.0/33": not a valid CIDR range`},
		{name: "public address", config: runConfig{allowedPrivateEndpoints: "idp.internal,8.8.8.8"}, wantErr: `--allowed-private-endpoints: entry "8.8.8.8": 8.8.8.8 is not in the private ranges`},
		{name: "metadata address", config: runConfig{allowedPrivateEndpoints: "100.100.100.200"}, wantErr: "always refused"},
		{name: "a URL", config: runConfig{allowedPrivateEndpoints: "https://idp.internal"}, wantErr: "not a URL"},
		{name: "bad port", config: runConfig{allowedPrivateEndpoints: "idp.internal:70000"}, wantErr: `port "70000" is out of range`},
		{name: "an allowlisted private address without its entry", config: runConfig{allowedEndpoints: "partner=https://10.0.0.5"},
			wantErr: "10.0.0.5 is a private address, refused unless --allowed-private-endpoints lists it or --allow-private-endpoints is set"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			policy, err := tt.config.endpointPolicy()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("endpointPolicy() error = %v, want one containing %q", err, tt.wantErr)
				}
				// run stops with it before anything starts.
				if err := run(tt.config); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("run() = %v, want the same error", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("endpointPolicy(): %v", err)
			}
			if !strings.Contains(policy.String(), tt.want) {
				t.Errorf("policy %q does not say %q", policy, tt.want)
			}
		})
	}
}

// TestCABundleFlag: --ca-bundle-file adds its certificates to the roots
// providers are verified with; a file that cannot be used stops the
// manager before it starts, with a message naming the flag and the cause.
func TestCABundleFlag(t *testing.T) {
	dir := t.TempDir()
	ca := cabundletest.NewCA(t, "private CA")
	good, empty := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "empty.crt")
	if err := os.WriteFile(good, ca.PEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}

	if roots, err := (runConfig{}).rootCAs(); roots != nil || err != nil {
		t.Errorf("without the flag: a pool (%t), %v; want the system's roots (nil)", roots != nil, err)
	}
	roots, err := runConfig{caBundleFile: good}.rootCAs()
	if err != nil || roots == nil {
		t.Fatalf("rootCAs() = a pool (%t), %v", roots != nil, err)
	}
	if err := verifyWith(roots(), ca.ServerCertificate(t, "127.0.0.1")); err != nil {
		t.Errorf("a certificate of the bundle's CA: %v", err)
	}

	for file, want := range map[string]string{
		filepath.Join(dir, "missing.crt"): "--ca-bundle-file: open " + filepath.Join(dir, "missing.crt") + ": no such file or directory",
		empty:                             "--ca-bundle-file: " + empty + ": no PEM certificate in it",
	} {
		if err := run(runConfig{caBundleFile: file}); err == nil || err.Error() != want {
			t.Errorf("run() = %v, want %q", err, want)
		}
	}
}

func verifyWith(pool *x509.CertPool, cert tls.Certificate) error {
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return err
	}
	_, err = leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "127.0.0.1"})
	return err
}

// TestCABundleKeepsTheBuiltInRoots: in an image without certificate files,
// the roots built into the manager (golang.org/x/crypto/x509roots/fallback)
// are the system's, and --ca-bundle-file adds to them rather than replace
// them. A process of its own, whose system has no roots.
func TestCABundleKeepsTheBuiltInRoots(t *testing.T) {
	const child = "TOKENSYNC_TEST_NO_SYSTEM_ROOTS"
	if os.Getenv(child) == "" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCABundleKeepsTheBuiltInRoots$", "-test.count=1")
		cmd.Env = append(os.Environ(), child+"=1",
			"SSL_CERT_FILE="+filepath.Join(t.TempDir(), "none.pem"), "SSL_CERT_DIR="+t.TempDir())
		if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "built-in roots kept") {
			t.Fatalf("the process without system roots: %v\n%s", err, out)
		}
		return
	}
	ca := cabundletest.NewCA(t, "private CA")
	file := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(file, ca.PEM, 0o644); err != nil {
		t.Fatal(err)
	}
	roots, err := runConfig{caBundleFile: file}.rootCAs()
	if err != nil {
		t.Fatal(err)
	}
	pool := roots()
	if err := verifyWith(pool, ca.ServerCertificate(t, "127.0.0.1")); err != nil {
		t.Errorf("a certificate of the bundle's CA: %v", err)
	}
	// A public root every bundle has, by the Common Name in its subject.
	// (Subjects lists a pool that is not the platform verifier's, as here.)
	subjects := pool.Subjects()
	var isrg bool
	for _, s := range subjects {
		isrg = isrg || strings.Contains(string(s), "ISRG Root X1")
	}
	if len(subjects) < 100 || !isrg {
		t.Fatalf("the pool has %d subjects (ISRG Root X1: %v), want the built-in roots and the bundle's", len(subjects), isrg)
	}
	fmt.Printf("built-in roots kept: %d subjects\n", len(subjects))
}
