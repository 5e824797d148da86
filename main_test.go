package main

import (
	"strings"
	"testing"
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
