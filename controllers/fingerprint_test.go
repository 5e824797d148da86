package controllers

import (
	"context"
	"strings"
	"testing"

	"github.com/tokensync/tokensync/controllers/policy"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/tokensync/tokensync/providers"
)

func TestSameFingerprint(t *testing.T) {
	tests := []struct {
		a, b        string
		same, known bool
	}{
		{"k1:x", "k1:x", true, true},
		{"k1:x", "k1:y", false, true},
		{"k1:x", "k2:x", false, false},
		{"", "k1:x", false, false},
		{"garbage", "garbage", false, false},
	}
	for _, tt := range tests {
		same, known := policy.SameFingerprint(tt.a, tt.b)
		if same != tt.same || known != tt.known {
			t.Errorf("sameFingerprint(%q, %q) = %v, %v", tt.a, tt.b, same, known)
		}
	}
}

// TestFingerprinterKey: the key Secret is created once, reused by a second
// replica, and fingerprints are keyed: the same credentials give another
// fingerprint under another key, and none holds a value.
func TestFingerprinterKey(t *testing.T) {
	c := fake.NewClientBuilder().WithScheme(testScheme).Build()
	key := types.NamespacedName{Namespace: "tokensync-system", Name: "tokensync-fingerprint-key"}
	a, b := newFingerprinter(c, c, key), newFingerprinter(c, c, key)
	creds := providers.Credentials{"email": []byte("ops@example.com"), "password": []byte("SENTINEL-PASSWORD")}
	const uid = types.UID("3f0c3a9e-0000-4000-8000-000000000001")
	fa, err := a.credentials(context.Background(), uid, creds)
	if err != nil {
		t.Fatal(err)
	}
	fb, err := b.credentials(context.Background(), uid, creds)
	if err != nil {
		t.Fatal(err)
	}
	if fa != fb {
		t.Fatalf("two replicas disagree: %s, %s", fa, fb)
	}
	s := &corev1.Secret{}
	if err := c.Get(context.Background(), key, s); err != nil || len(s.Data[fingerprintKeyData]) != fingerprintKeyBytes {
		t.Fatalf("key Secret %v: %v", s.Data, err)
	}
	if strings.Contains(fa, "SENTINEL") || strings.Contains(fa, "ops@") {
		t.Fatalf("fingerprint %q holds a value", fa)
	}
	changed := providers.Credentials{"email": []byte("ops@example.com"), "password": []byte("other")}
	if fc, _ := a.credentials(context.Background(), uid, changed); fc == fa {
		t.Fatal("different credentials, same fingerprint")
	}
	// Key and value boundaries are part of what is fingerprinted.
	split := providers.Credentials{"email": []byte("ops@example.compassword"), "": []byte("SENTINEL-PASSWORD")}
	if fs, _ := a.credentials(context.Background(), uid, split); fs == fa {
		t.Fatal("moving bytes between keys and values kept the fingerprint")
	}
	other := staticFingerprinter([]byte("another-key-another-key-another-"))
	fo, _ := other.credentials(context.Background(), uid, creds)
	if same, known := policy.SameFingerprint(fa, fo); known || same {
		t.Fatalf("fingerprints of two keys compared as known (%v)", same)
	}
}

// TestFingerprintsArePerObject: one password on two objects gives two
// fingerprints that do not compare (each object's key has its own key id),
// so no fingerprint copied from another object's Secret reads as changed,
// let alone as the same; a token likewise.
func TestFingerprintsArePerObject(t *testing.T) {
	f := staticFingerprinter([]byte("per-object-test-key-32-bytes-xyz"))
	ctx := context.Background()
	creds := providers.Credentials{"password": []byte("SENTINEL-PASSWORD")}
	one, err := f.credentials(ctx, "uid-one", creds)
	if err != nil {
		t.Fatal(err)
	}
	two, _ := f.credentials(ctx, "uid-two", creds)
	again, _ := f.credentials(ctx, "uid-one", creds)
	if one == two {
		t.Fatal("one password on two objects gave one fingerprint")
	}
	if one != again {
		t.Fatal("one object's fingerprint is not stable")
	}
	if same, known := policy.SameFingerprint(one, two); known || same {
		t.Fatalf("fingerprints of two objects compared as known (same %v)", same)
	}
	t1, _ := f.token(ctx, "uid-one", []byte("SENTINEL-TOKEN"))
	t2, _ := f.token(ctx, "uid-two", []byte("SENTINEL-TOKEN"))
	if same, known := policy.SameFingerprint(t1, t2); known || same {
		t.Fatalf("token fingerprints of two objects compared as known (same %v)", same)
	}
	// A token fingerprint is not a credentials fingerprint of the same bytes.
	if c, _ := f.credentials(ctx, "uid-one", providers.Credentials{"token": []byte("SENTINEL-TOKEN")}); c == t1 {
		t.Fatal("a token and credentials share a fingerprint")
	}
}
