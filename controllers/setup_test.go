package controllers

import (
	"strings"
	"testing"
	"time"
	"unsafe"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/event"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
	"github.com/tokensync/tokensync/providers"
)

// TestTargetSecretTampered: the operator's own writes do not come back as
// reconciles; deletions, hand edits and metadata edits by others do.
func TestTargetSecretTampered(t *testing.T) {
	ours := func(value, fp string) *corev1.Secret {
		s := &corev1.Secret{}
		applyToken(s, issued{Token: &providers.Token{Value: value, ObtainedAt: time.Unix(0, 0), ExpiresAt: time.Unix(3600, 0)}, TokenFingerprint: fp})
		applyTemplate(s, nil)
		return s
	}
	p := targetSecretTampered()
	old := ours("tok-1", "k:1")
	tests := []struct {
		name string
		new  *corev1.Secret
		want bool
	}{
		{"a refresh by the operator", ours("tok-2", "k:2"), false},
		{"only tokensync annotations changed", func() *corev1.Secret {
			s := ours("tok-1", "k:1")
			s.Annotations["tokensync.io/credentials-version"] = "9"
			return s
		}(), false},
		{"token edited by hand", func() *corev1.Secret { s := ours("tok-1", "k:1"); s.Data["token"] = []byte("x"); return s }(), true},
		{"token removed", func() *corev1.Secret { s := ours("tok-1", "k:1"); delete(s.Data, "token"); return s }(), true},
		{"a label added by someone", func() *corev1.Secret { s := ours("tok-1", "k:1"); s.Labels["x"] = "y"; return s }(), true},
		{"an annotation added by someone", func() *corev1.Secret { s := ours("tok-1", "k:1"); s.Annotations["a/b"] = "c"; return s }(), true},
		{"bookkeeping stripped", &corev1.Secret{Data: map[string][]byte{"token": []byte("tok-1")}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := p.Update(event.UpdateEvent{ObjectOld: old, ObjectNew: tt.new}); got != tt.want {
				t.Errorf("passes = %v, want %v", got, tt.want)
			}
		})
	}
	if p.Create(event.CreateEvent{Object: ours("tok", "k:t")}) {
		t.Error("the operator's own create came back as a reconcile")
	}
	if !p.Delete(event.DeleteEvent{Object: old}) {
		t.Error("a deletion did not reconcile")
	}
}

// TestStripForCache: cached TokenRequests lose kubectl's copy of themselves
// and managedFields; Secrets keep their annotations, which the operator
// writes back.
func TestStripForCache(t *testing.T) {
	tr := &tokensyncv1alpha1.TokenRequest{ObjectMeta: metav1.ObjectMeta{
		Annotations:   map[string]string{corev1.LastAppliedConfigAnnotation: `{"spec":{}}`, tokensyncv1alpha1.AnnotationForceRefresh: "1"},
		ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}},
	}}
	if _, err := newInterner().stripForCache(tr); err != nil {
		t.Fatal(err)
	}
	if _, ok := tr.Annotations[corev1.LastAppliedConfigAnnotation]; ok || tr.ManagedFields != nil || tr.Annotations[tokensyncv1alpha1.AnnotationForceRefresh] != "1" {
		t.Errorf("TokenRequest after stripping: %v %v", tr.Annotations, tr.ManagedFields)
	}
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{corev1.LastAppliedConfigAnnotation: "{}"}}}
	if _, err := newInterner().stripForCache(s); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Annotations[corev1.LastAppliedConfigAnnotation]; !ok {
		t.Error("a Secret's annotation was stripped: the operator would write it away")
	}
}

// TestStripForCacheSharesRepeatedStrings: two cached Secrets decoded apart
// share one copy of the strings they repeat, keep every key and value, and
// the values that differ from object to object are not kept in the table.
func TestStripForCacheSharesRepeatedStrings(t *testing.T) {
	secret := func(fingerprint string) *corev1.Secret {
		c := strings.Clone // as decoded: each object has strings of its own
		return &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{
				Namespace: c("team-a"), Name: c("token-" + fingerprint),
				Labels: map[string]string{c(tokensyncv1alpha1.LabelManagedBy): c(tokensyncv1alpha1.ManagedByValue)},
				Annotations: map[string]string{
					c(tokensyncv1alpha1.AnnotationProvider):  c("partner"),
					c(annotationTokenFingerprint):            c(fingerprint),
					c(tokensyncv1alpha1.AnnotationExpiresAt): c("2026-12-01T10:00:00Z"),
				},
			},
			Type: corev1.SecretType(c("Opaque")),
			Data: map[string][]byte{c("token"): []byte(fingerprint)},
		}
	}
	a, b := secret("fp-a-3c1e"), secret("fp-b-77d0")
	interned := newInterner()
	for _, s := range []*corev1.Secret{a, b} {
		if _, err := interned.stripForCache(s); err != nil {
			t.Fatal(err)
		}
	}
	same := func(what, x, y string) {
		t.Helper()
		if x != y || unsafe.StringData(x) != unsafe.StringData(y) {
			t.Errorf("%s: %q and %q are not one copy", what, x, y)
		}
	}
	same("namespace", a.Namespace, b.Namespace)
	same("type", string(a.Type), string(b.Type))
	same("provider annotation", a.Annotations[tokensyncv1alpha1.AnnotationProvider], b.Annotations[tokensyncv1alpha1.AnnotationProvider])
	same("label value", a.Labels[tokensyncv1alpha1.LabelManagedBy], b.Labels[tokensyncv1alpha1.LabelManagedBy])
	keyOf := func(m map[string]string, want string) string {
		for k := range m {
			if k == want {
				return k
			}
		}
		t.Fatalf("key %q missing from %v", want, m)
		return ""
	}
	same("annotation key", keyOf(a.Annotations, annotationTokenFingerprint), keyOf(b.Annotations, annotationTokenFingerprint))
	if a.Annotations[annotationTokenFingerprint] != "fp-a-3c1e" || string(b.Data["token"]) != "fp-b-77d0" || len(a.Annotations) != 3 {
		t.Errorf("content changed: %v %v", a.Annotations, b.Data)
	}
	interned.mu.Lock()
	defer interned.mu.Unlock()
	for _, v := range []string{"fp-a-3c1e", "fp-b-77d0", "2026-12-01T10:00:00Z", "token-fp-a-3c1e"} {
		if _, ok := interned.m[v]; ok {
			t.Errorf("%q, which differs from object to object, is kept in the table", v)
		}
	}
}

// TestInternerIsBounded: once full, the table keeps no more strings and
// gives each back as it came.
func TestInternerIsBounded(t *testing.T) {
	in := &interner{max: 2}
	in.s("a")
	in.s("b")
	c := strings.Clone("c")
	if got := in.s(c); got != "c" || unsafe.StringData(got) != unsafe.StringData(c) || len(in.m) != 2 {
		t.Errorf("full table: got %q, %d entries", got, len(in.m))
	}
}
