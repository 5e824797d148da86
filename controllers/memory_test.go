package controllers

import (
	"testing"

	"k8s.io/apimachinery/pkg/types"
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
