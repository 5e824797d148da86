package controllers

import (
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
	"github.com/tokensync/tokensync/providers"
)

// Bookkeeping annotations on the target Secret. They live on the Secret, not
// in the TokenRequest's status, so that the Secret alone tells whether its
// token is still good after a restart, a leader change or a status loss.
const (
	annotationObtainedAt         = "tokensync.io/obtained-at"
	annotationCredentialsVersion = "tokensync.io/credentials-version"
	annotationTokenSHA256        = "tokensync.io/token-sha256"
)

// heldToken is what a target Secret says about the token it holds.
type heldToken struct {
	ObtainedAt         time.Time
	ExpiresAt          time.Time
	CredentialsVersion string
	// Intact is false when the token was edited or removed by hand.
	Intact bool
}

// heldTokenIn reads the bookkeeping of a target Secret; ok is false when the
// Secret holds no token tokensync can account for.
func heldTokenIn(s *corev1.Secret) (heldToken, bool) {
	if s == nil {
		return heldToken{}, false
	}
	exp, err := time.Parse(time.RFC3339, s.Annotations[tokensyncv1alpha1.AnnotationExpiresAt])
	if err != nil {
		return heldToken{}, false
	}
	obtained, err := time.Parse(time.RFC3339, s.Annotations[annotationObtainedAt])
	if err != nil {
		return heldToken{}, false
	}
	tok := s.Data[tokensyncv1alpha1.SecretKeyToken]
	return heldToken{
		ObtainedAt:         obtained,
		ExpiresAt:          exp,
		CredentialsVersion: s.Annotations[annotationCredentialsVersion],
		Intact:             len(tok) > 0 && s.Annotations[annotationTokenSHA256] == tokenSHA256(tok),
	}, true
}

// secretContent is what tokensync writes into a target Secret.
type secretContent struct {
	Data        map[string][]byte
	Labels      map[string]string
	Annotations map[string]string
}

// secretData decides the target Secret's data, labels and annotations for a
// token. Template labels and annotations come first so tokensync's own keys
// always win.
func secretData(tr *tokensyncv1alpha1.TokenRequest, tok *providers.Token, credentialsVersion string) secretContent {
	data := map[string][]byte{
		tokensyncv1alpha1.SecretKeyToken:     []byte(tok.Value),
		tokensyncv1alpha1.SecretKeyExpiresAt: []byte(formatTime(tok.ExpiresAt)),
	}
	for k, v := range tok.Extra {
		if _, reserved := data[k]; !reserved {
			data[k] = []byte(v)
		}
	}
	labels, annotations := map[string]string{}, map[string]string{}
	if t := tr.Spec.SecretTemplate; t != nil {
		for k, v := range t.Labels {
			labels[k] = string(v)
		}
		maps.Copy(annotations, t.Annotations)
	}
	labels[tokensyncv1alpha1.LabelManagedBy] = tokensyncv1alpha1.ManagedByValue
	annotations[tokensyncv1alpha1.AnnotationExpiresAt] = formatTime(tok.ExpiresAt)
	annotations[tokensyncv1alpha1.AnnotationProvider] = string(tr.Spec.Provider)
	annotations[annotationObtainedAt] = formatTime(tok.ObtainedAt)
	annotations[annotationCredentialsVersion] = credentialsVersion
	annotations[annotationTokenSHA256] = tokenSHA256(data[tokensyncv1alpha1.SecretKeyToken])
	return secretContent{Data: data, Labels: labels, Annotations: annotations}
}

// templateApplied reports whether s carries the TokenRequest's template
// labels and annotations, so a template edit updates the Secret without a login.
func templateApplied(tr *tokensyncv1alpha1.TokenRequest, s *corev1.Secret) bool {
	t := tr.Spec.SecretTemplate
	if t == nil {
		return true
	}
	for k, v := range t.Labels {
		if s.Labels[k] != string(v) {
			return false
		}
	}
	for k, v := range t.Annotations {
		if s.Annotations[k] != v {
			return false
		}
	}
	return true
}

// applyTemplate copies the template's labels and annotations onto s.
func applyTemplate(tr *tokensyncv1alpha1.TokenRequest, s *corev1.Secret) {
	t := tr.Spec.SecretTemplate
	if t == nil {
		return
	}
	if s.Labels == nil {
		s.Labels = map[string]string{}
	}
	if s.Annotations == nil {
		s.Annotations = map[string]string{}
	}
	for k, v := range t.Labels {
		s.Labels[k] = string(v)
	}
	maps.Copy(s.Annotations, t.Annotations)
	s.Labels[tokensyncv1alpha1.LabelManagedBy] = tokensyncv1alpha1.ManagedByValue
}

func tokenSHA256(tok []byte) string {
	sum := sha256.Sum256(tok)
	return hex.EncodeToString(sum[:])
}

// formatTime is RFC 3339 in UTC at second precision, as written to Secrets.
func formatTime(t time.Time) string { return t.UTC().Truncate(time.Second).Format(time.RFC3339) }

func metaTime(t time.Time) *metav1.Time {
	mt := metav1.NewTime(t.UTC().Truncate(time.Second))
	return &mt
}
