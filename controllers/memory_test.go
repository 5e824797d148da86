package controllers

import (
	"strings"
	"testing"
	"time"

	"github.com/tokensync/tokensync/controllers/policy"

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
	m := newMemory(HeldTokenLimits{})
	k := types.NamespacedName{Namespace: "ns", Name: "tr"}
	m.with(k, "uid-1", func(e *remembered) { e.secretRV = "5" })
	m.with(k, "uid-2", func(e *remembered) {
		if e.secretRV != "" {
			t.Errorf("a new TokenRequest of the same name inherited %+v", e)
		}
	})
}

func TestMemorySweep(t *testing.T) {
	m := newMemory(HeldTokenLimits{})
	now := time.Now()
	k1, k2, k3 := types.NamespacedName{Namespace: "ns", Name: "a"}, types.NamespacedName{Namespace: "ns", Name: "b"}, types.NamespacedName{Namespace: "ns", Name: "c"}
	m.with(k1, "1", func(e *remembered) { e.secretRV = "5" })
	m.with(k2, "2", func(e *remembered) {
		e.pending = &policy.PendingToken{Issued: policy.Issued{Token: &providers.Token{ExpiresAt: now.Add(time.Hour)}}}
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

// TestHeldTokenLimits: tokens kept for refused writes count against their
// namespace's bound and everyone's; one that would pass either is dropped
// with a message naming the flag; releasing a token (written, replaced,
// expired, forgotten, or its TokenRequest re-created) gives its bytes back.
func TestHeldTokenLimits(t *testing.T) {
	m := newMemory(HeldTokenLimits{PerNamespace: 100, Total: 150})
	token := func(n int) *policy.PendingToken {
		return &policy.PendingToken{Issued: policy.Issued{Token: &providers.Token{Value: strings.Repeat("t", n), ExpiresAt: time.Now().Add(time.Hour),
			Extra: map[string]string{"u": "12"}}}}
	}
	hold := func(ns, name string, uid types.UID, size int) string {
		t.Helper()
		k := types.NamespacedName{Namespace: ns, Name: name}
		var dropped string
		m.with(k, uid, func(e *remembered) {
			m.setPending(k, e, token(size))
			dropped = m.holdRefused(k, e)
			if dropped == "" && e.pending == nil || dropped != "" && e.pending != nil {
				t.Errorf("%s/%s: dropped %q with pending %v", ns, name, dropped, e.pending)
			}
		})
		return dropped
	}
	if d := hold("a", "one", "1", 57); d != "" { // 57 + "u" + "12" = 60 bytes
		t.Fatalf("first token dropped: %s", d)
	}
	if d := hold("a", "two", "2", 57); !strings.Contains(d, "--max-held-token-bytes-per-namespace") {
		t.Errorf("second token of namespace a: %q, want it dropped for the namespace's bound", d)
	}
	if d := hold("b", "one", "3", 57); d != "" {
		t.Fatalf("namespace b's token dropped: %s", d)
	}
	if d := hold("c", "one", "4", 37); !strings.Contains(d, "--max-held-token-bytes") || strings.Contains(d, "per-namespace") {
		t.Errorf("third namespace: %q, want it dropped for the bound of all namespaces", d)
	}
	if m.heldTotal != 120 || m.held["a"] != 60 || m.held["b"] != 60 {
		t.Fatalf("held %d in all, %v by namespace", m.heldTotal, m.held)
	}
	// Holding the same token again counts nothing more.
	ka := types.NamespacedName{Namespace: "a", Name: "one"}
	m.with(ka, "1", func(e *remembered) { m.holdRefused(ka, e) })
	if m.heldTotal != 120 {
		t.Fatalf("held twice: %d", m.heldTotal)
	}
	// Written: released.
	m.with(ka, "1", func(e *remembered) { m.setPending(ka, e, nil) })
	// Re-created under the same name: the old entry's token is released.
	kb := types.NamespacedName{Namespace: "b", Name: "one"}
	m.with(kb, "3-new", func(*remembered) {})
	if m.heldTotal != 0 || len(m.held) != 0 {
		t.Fatalf("after release: %d in all, %v", m.heldTotal, m.held)
	}
	// Expired (sweep) and forgotten (deleted) both release.
	hold("a", "x", "5", 10)
	hold("a", "y", "6", 10)
	kx := types.NamespacedName{Namespace: "a", Name: "x"}
	m.with(kx, "5", func(e *remembered) { e.pending.Issued.Token.ExpiresAt = time.Now().Add(-time.Second) })
	m.sweep(time.Now())
	m.forget(types.NamespacedName{Namespace: "a", Name: "y"})
	if m.heldTotal != 0 || len(m.held) != 0 {
		t.Fatalf("after sweep and forget: %d in all, %v", m.heldTotal, m.held)
	}
}
