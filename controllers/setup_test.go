package controllers

import (
	"testing"
	"time"

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
	if _, err := stripForCache(tr); err != nil {
		t.Fatal(err)
	}
	if _, ok := tr.Annotations[corev1.LastAppliedConfigAnnotation]; ok || tr.ManagedFields != nil || tr.Annotations[tokensyncv1alpha1.AnnotationForceRefresh] != "1" {
		t.Errorf("TokenRequest after stripping: %v %v", tr.Annotations, tr.ManagedFields)
	}
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{corev1.LastAppliedConfigAnnotation: "{}"}}}
	if _, err := stripForCache(s); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Annotations[corev1.LastAppliedConfigAnnotation]; !ok {
		t.Error("a Secret's annotation was stripped: the operator would write it away")
	}
}
