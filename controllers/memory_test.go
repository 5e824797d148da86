package controllers

import (
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
	"github.com/tokensync/tokensync/providers"
)

func TestCacheBehind(t *testing.T) {
	tests := []struct {
		cached, written string
		behind          bool
	}{
		{"10", "", false},   // nothing written
		{"10", "10", false}, // caught up
		{"9", "10", true},
		{"11", "10", false}, // someone wrote after us
		{"abc", "10", true}, // not numbers: any difference counts
		{"abc", "abc", false},
	}
	for _, tt := range tests {
		if got := cacheBehind(tt.cached, tt.written); got != tt.behind {
			t.Errorf("cacheBehind(%q, %q) = %v, want %v", tt.cached, tt.written, got, tt.behind)
		}
	}
}

func TestMemoryForgetsAnEarlierTokenRequestOfTheSameName(t *testing.T) {
	m := newMemory()
	k := types.NamespacedName{Namespace: "ns", Name: "tr"}
	m.with(k, "uid-1", func(e *remembered) { e.secretRV = "5" })
	m.with(k, "uid-2", func(e *remembered) {
		if e.secretRV != "" {
			t.Errorf("a new TokenRequest of the same name inherited %+v", e)
		}
	})
}

func TestMemorySweep(t *testing.T) {
	m := newMemory()
	now := time.Now()
	k1, k2, k3 := types.NamespacedName{Namespace: "ns", Name: "a"}, types.NamespacedName{Namespace: "ns", Name: "b"}, types.NamespacedName{Namespace: "ns", Name: "c"}
	m.with(k1, "1", func(e *remembered) { e.secretRV = "5" })
	m.with(k2, "2", func(e *remembered) {
		e.pending = &pendingToken{issued: issued{Token: &providers.Token{ExpiresAt: now.Add(time.Hour)}}}
	})
	m.with(k3, "3", func(e *remembered) { e.unwrittenStatus = &tokensyncv1alpha1.TokenRequestStatus{} })
	m.setCredentialsFingerprint(credentialsKey{NamespacedName: k1}, "7", "k:f")
	m.sweep(now.Add(time.Minute))
	if len(m.requests) != 3 || len(m.credentials) != 1 {
		t.Fatalf("swept before settleAfter: %d entries, %d fingerprints", len(m.requests), len(m.credentials))
	}
	m.sweep(now.Add(settleAfter + time.Second))
	if _, ok := m.requests[k1]; ok || len(m.requests) != 2 || len(m.credentials) != 0 {
		t.Fatalf("after settleAfter: entries %v, fingerprints %d; want only the pending token and the unwritten status kept", m.requests, len(m.credentials))
	}
	// A pending token is dropped once it has expired: no use, and a token
	// held for nothing.
	m.sweep(now.Add(time.Hour))
	if _, ok := m.requests[k2]; ok || len(m.requests) != 1 {
		t.Fatalf("after the pending token expired: entries %v, want only the unwritten status kept", m.requests)
	}
}
