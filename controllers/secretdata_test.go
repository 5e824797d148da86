package controllers

import (
	"maps"
	"testing"
	"time"

	"github.com/tokensync/tokensync/controllers/policy"

	corev1 "k8s.io/api/core/v1"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
	"github.com/tokensync/tokensync/providers"
)

func TestSecretData(t *testing.T) {
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 500, time.UTC)
	tests := []struct {
		name string
		tok  providers.Token
		want map[string]string
	}{
		{"token and expiry", providers.Token{Value: "tok", ExpiresAt: t0}, map[string]string{"token": "tok", "expiresAt": "2026-11-22T10:00:00Z"}},
		{"extra values", providers.Token{Value: "tok", ExpiresAt: t0, Extra: map[string]string{"userId": "u1", "AFiUserId": "a1"}},
			map[string]string{"token": "tok", "expiresAt": "2026-11-22T10:00:00Z", "userId": "u1", "AFiUserId": "a1"}},
		{"extra values never replace the token", providers.Token{Value: "tok", ExpiresAt: t0, Extra: map[string]string{"token": "evil", "expiresAt": "never"}},
			map[string]string{"token": "tok", "expiresAt": "2026-11-22T10:00:00Z"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := map[string]string{}
			for k, v := range secretData(&tt.tok) {
				got[k] = string(v)
			}
			if !maps.Equal(got, tt.want) {
				t.Errorf("secretData = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestHeldTokenIn(t *testing.T) {
	fp := staticFingerprinter([]byte("test-key-test-key-test-key-12345"))
	tokenFP := func(v string) string {
		s, err := fp.token(t.Context(), "uid", []byte(v))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	otherKey := staticFingerprinter([]byte("another-key-another-key-another-"))
	otherFP, _ := otherKey.token(t.Context(), "uid", []byte("tok"))
	written := func(mut func(*corev1.Secret)) *corev1.Secret {
		s := &corev1.Secret{}
		applyToken(s, policy.Issued{
			Token:    &providers.Token{Value: "tok", ObtainedAt: time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC), ExpiresAt: time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)},
			Provider: "partner", Endpoint: "https://p.example", CredentialsVersion: "7", CredentialsFingerprint: "k:c",
			TokenFingerprint: tokenFP("tok"),
		})
		if mut != nil {
			mut(s)
		}
		return s
	}
	tests := []struct {
		name          string
		secret        *corev1.Secret
		holds, intact bool
	}{
		{"as written", written(nil), true, true},
		{"no Secret", nil, false, false},
		{"no bookkeeping", &corev1.Secret{Data: map[string][]byte{"token": []byte("x")}}, false, false},
		{"garbled expiry", written(func(s *corev1.Secret) { s.Annotations[tokensyncv1alpha1.AnnotationExpiresAt] = "soon" }), false, false},
		{"token edited by hand", written(func(s *corev1.Secret) { s.Data["token"] = []byte("edited") }), true, false},
		{"token removed", written(func(s *corev1.Secret) { delete(s.Data, "token") }), true, false},
		{"fingerprint of another key: cannot tell, intact", written(func(s *corev1.Secret) { s.Annotations[annotationTokenFingerprint] = otherFP }), true, true},
		{"older tokensync: plain SHA-256 still recognised", written(func(s *corev1.Secret) {
			delete(s.Annotations, annotationTokenFingerprint)
			s.Annotations[annotationLegacyTokenSHA256] = legacyTokenSHA256([]byte("tok"))
		}), true, true},
		{"older tokensync, edited", written(func(s *corev1.Secret) {
			delete(s.Annotations, annotationTokenFingerprint)
			s.Annotations[annotationLegacyTokenSHA256] = legacyTokenSHA256([]byte("other"))
		}), true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var current string
			if tt.secret != nil {
				current = tokenFP(string(tt.secret.Data["token"]))
			}
			held, holds := heldTokenIn(tt.secret, current)
			if holds != tt.holds || held.Intact != tt.intact {
				t.Fatalf("holds %v intact %v, want %v %v", holds, held.Intact, tt.holds, tt.intact)
			}
			if tt.name == "as written" && (held.Provider != "partner" || held.Endpoint != "https://p.example" || held.CredentialsVersion != "7" || held.CredentialsFingerprint != "k:c") {
				t.Errorf("bookkeeping read back as %+v", held)
			}
		})
	}
}

func TestApplyTemplate(t *testing.T) {
	tmpl := func(labels map[string]tokensyncv1alpha1.LabelValue, annotations map[string]string) *tokensyncv1alpha1.SecretTemplate {
		return &tokensyncv1alpha1.SecretTemplate{Labels: labels, Annotations: annotations}
	}
	tests := []struct {
		name                      string
		steps                     []*tokensyncv1alpha1.SecretTemplate
		foreignLabels             map[string]string
		wantLabels, wantAnnotated map[string]string
	}{
		{name: "no template: only tokensync's label", steps: []*tokensyncv1alpha1.SecretTemplate{nil},
			wantLabels: map[string]string{"app.kubernetes.io/managed-by": "tokensync"}, wantAnnotated: map[string]string{}},
		{name: "template keys applied and recorded",
			steps:      []*tokensyncv1alpha1.SecretTemplate{tmpl(map[string]tokensyncv1alpha1.LabelValue{"tier": "gold"}, map[string]string{"example.com/owner": "payments"})},
			wantLabels: map[string]string{"app.kubernetes.io/managed-by": "tokensync", "tier": "gold"},
			wantAnnotated: map[string]string{"example.com/owner": "payments",
				annotationTemplateLabels: "tier", annotationTemplateAnnotations: "example.com/owner"}},
		{name: "removed keys leave, someone else's stay",
			steps: []*tokensyncv1alpha1.SecretTemplate{
				tmpl(map[string]tokensyncv1alpha1.LabelValue{"tier": "gold", "team": "payments"}, map[string]string{"example.com/owner": "payments"}),
				tmpl(map[string]tokensyncv1alpha1.LabelValue{"tier": "silver"}, nil),
			},
			foreignLabels: map[string]string{"added-by-someone": "x"},
			wantLabels:    map[string]string{"app.kubernetes.io/managed-by": "tokensync", "tier": "silver", "added-by-someone": "x"},
			wantAnnotated: map[string]string{annotationTemplateLabels: "tier"}},
		{name: "template removed entirely",
			steps:         []*tokensyncv1alpha1.SecretTemplate{tmpl(map[string]tokensyncv1alpha1.LabelValue{"tier": "gold"}, nil), nil},
			wantLabels:    map[string]string{"app.kubernetes.io/managed-by": "tokensync"},
			wantAnnotated: map[string]string{}},
		{name: "a template cannot take tokensync's label",
			steps:         []*tokensyncv1alpha1.SecretTemplate{tmpl(map[string]tokensyncv1alpha1.LabelValue{"app.kubernetes.io/managed-by": "helm"}, nil), nil},
			wantLabels:    map[string]string{"app.kubernetes.io/managed-by": "tokensync"},
			wantAnnotated: map[string]string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &corev1.Secret{}
			for i, step := range tt.steps {
				applyTemplate(s, step)
				if i == 0 {
					maps.Copy(s.Labels, tt.foreignLabels)
				}
			}
			if !maps.Equal(s.Labels, tt.wantLabels) || !maps.Equal(s.Annotations, tt.wantAnnotated) {
				t.Errorf("labels %v annotations %v, want %v %v", s.Labels, s.Annotations, tt.wantLabels, tt.wantAnnotated)
			}
		})
	}
}

func TestCopyToken(t *testing.T) {
	from := &corev1.Secret{Data: map[string][]byte{"token": []byte("tok"), "expiresAt": []byte("x")}}
	applyToken(from, policy.Issued{Token: &providers.Token{Value: "tok"}, Provider: "aml", TokenFingerprint: "k:t"})
	from.Annotations["example.com/theirs"] = "not copied"
	to := &corev1.Secret{}
	copyToken(to, from)
	if string(to.Data["token"]) != "tok" || to.Annotations[annotationTokenFingerprint] != "k:t" || to.Annotations[tokensyncv1alpha1.AnnotationProvider] != "aml" {
		t.Errorf("copied %v %v", to.Data, to.Annotations)
	}
	if _, ok := to.Annotations["example.com/theirs"]; ok {
		t.Error("an annotation that is not bookkeeping was copied")
	}
	to.Data["token"][0] = 'X'
	if string(from.Data["token"]) != "tok" {
		t.Error("the copy shares the source's data")
	}
}
