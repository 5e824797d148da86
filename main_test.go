package main

import (
	"strings"
	"testing"

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
