package controllers

import (
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/tokensync/tokensync/controllers/policy"

	corev1 "k8s.io/api/core/v1"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
	"github.com/tokensync/tokensync/providers"
)

// Bookkeeping annotations on the target Secret. They live on the Secret, not
// in the TokenRequest's status, so that the Secret alone tells whether its
// token is still good after a restart, a leader change or a status loss.
const (
	annotationObtainedAt             = "tokensync.io/obtained-at"
	annotationCredentialsVersion     = "tokensync.io/credentials-version"
	annotationCredentialsFingerprint = "tokensync.io/credentials-fingerprint"
	annotationTokenFingerprint       = "tokensync.io/token-fingerprint"
	// The template keys tokensync put on the Secret, so that a key removed
	// from spec.secretTemplate is removed from the Secret, and only such a key.
	annotationTemplateLabels      = "tokensync.io/template-labels"
	annotationTemplateAnnotations = "tokensync.io/template-annotations"
	annotationTemplateData        = "tokensync.io/template-data"
	// annotationTokenKeys lists the data keys written with the token (token,
	// expiresAt, the provider's extra values): the values data templates see.
	annotationTokenKeys = "tokensync.io/token-keys"
)

// heldTokenIn reads the bookkeeping of a target Secret; ok is false when the
// Secret holds no token tokensync can account for. tokenFingerprint is the
// fingerprint of the Secret's token as it is now.
func heldTokenIn(s *corev1.Secret, tokenFingerprint string) (policy.HeldToken, bool) {
	if s == nil {
		return policy.HeldToken{}, false
	}
	exp, err := time.Parse(time.RFC3339, s.Annotations[tokensyncv1alpha1.AnnotationExpiresAt])
	if err != nil {
		return policy.HeldToken{}, false
	}
	obtained, err := time.Parse(time.RFC3339, s.Annotations[annotationObtainedAt])
	if err != nil {
		return policy.HeldToken{}, false
	}
	return policy.HeldToken{
		ObtainedAt:             obtained,
		ExpiresAt:              exp,
		Provider:               s.Annotations[tokensyncv1alpha1.AnnotationProvider],
		Endpoint:               s.Annotations[tokensyncv1alpha1.AnnotationEndpoint],
		SettingsDigest:         s.Annotations[annotationSettingsDigest],
		CredentialsVersion:     s.Annotations[annotationCredentialsVersion],
		CredentialsFingerprint: s.Annotations[annotationCredentialsFingerprint],
		Intact:                 tokenIntact(s, tokenFingerprint),
	}, true
}

// tokenIntact compares the Secret's token with the fingerprint recorded when
// it was written. A fingerprint made with another key cannot be checked and
// counts as intact: losing the key must not cost a login per TokenRequest.
func tokenIntact(s *corev1.Secret, tokenFingerprint string) bool {
	tok := s.Data[tokensyncv1alpha1.SecretKeyToken]
	if len(tok) == 0 {
		return false
	}
	if recorded, ok := s.Annotations[annotationTokenFingerprint]; ok {
		same, known := policy.SameFingerprint(recorded, tokenFingerprint)
		return same || !known
	}
	return s.Annotations[annotationLegacyTokenSHA256] == legacyTokenSHA256(tok)
}

// secretData is the target Secret's data for a token.
func secretData(tok *providers.Token) map[string][]byte {
	data := map[string][]byte{
		tokensyncv1alpha1.SecretKeyToken:     []byte(tok.Value),
		tokensyncv1alpha1.SecretKeyExpiresAt: []byte(policy.FormatTime(tok.ExpiresAt)),
	}
	for k, v := range tok.Extra {
		if _, reserved := data[k]; !reserved {
			data[k] = []byte(v)
		}
	}
	return data
}

// tokenAnnotations are the annotations recording a token on its Secret.
func tokenAnnotations(is policy.Issued) map[string]string {
	a := map[string]string{
		tokensyncv1alpha1.AnnotationExpiresAt: policy.FormatTime(is.Token.ExpiresAt),
		tokensyncv1alpha1.AnnotationProvider:  is.Provider,
		tokensyncv1alpha1.AnnotationEndpoint:  is.Endpoint,
		annotationObtainedAt:                  policy.FormatTime(is.Token.ObtainedAt),
		annotationCredentialsVersion:          is.CredentialsVersion,
		annotationCredentialsFingerprint:      is.CredentialsFingerprint,
		annotationTokenFingerprint:            is.TokenFingerprint,
	}
	if is.SettingsDigest != "" {
		a[annotationSettingsDigest] = is.SettingsDigest
	}
	return a
}

// tokenBookkeeping lists the annotations that describe the token a Secret holds.
var tokenBookkeeping = []string{
	tokensyncv1alpha1.AnnotationExpiresAt, tokensyncv1alpha1.AnnotationProvider, tokensyncv1alpha1.AnnotationEndpoint,
	annotationObtainedAt, annotationCredentialsVersion, annotationCredentialsFingerprint, annotationTokenFingerprint,
	annotationSettingsDigest,
}

// applyToken puts a token and its bookkeeping on s. Data templates are
// rendered afterwards by applyTemplate, from the values recorded here.
func applyToken(s *corev1.Secret, is policy.Issued) {
	s.Data = secretData(is.Token)
	if s.Annotations == nil {
		s.Annotations = map[string]string{}
	}
	maps.Copy(s.Annotations, tokenAnnotations(is))
	if is.SettingsDigest == "" {
		// A digest left by the previous token would count as a settings change.
		delete(s.Annotations, annotationSettingsDigest)
	}
	delete(s.Annotations, annotationLegacyTokenSHA256)
	s.Annotations[annotationTokenKeys] = strings.Join(slices.Sorted(maps.Keys(s.Data)), ",")
	// The template keys of the data just replaced are gone.
	delete(s.Annotations, annotationTemplateData)
}

// tokenValues are the values data templates are rendered with: the data
// keys written with the token.
func tokenValues(s *corev1.Secret) map[string]string {
	values := map[string]string{}
	if keys, ok := s.Annotations[annotationTokenKeys]; ok {
		for _, k := range keyList(keys) {
			if v, ok := s.Data[k]; ok {
				values[k] = string(v)
			}
		}
		return values
	}
	// A Secret written by an older tokensync: everything but template keys.
	templated := map[string]bool{}
	for _, k := range keyList(s.Annotations[annotationTemplateData]) {
		templated[k] = true
	}
	for k, v := range s.Data {
		if !templated[k] {
			values[k] = string(v)
		}
	}
	return values
}

// copyToken puts the token held by from on s (a secretName change): its data
// and bookkeeping, so that no login is spent on the move.
func copyToken(s, from *corev1.Secret) {
	s.Data = make(map[string][]byte, len(from.Data))
	for k, v := range from.Data {
		s.Data[k] = slices.Clone(v)
	}
	if s.Annotations == nil {
		s.Annotations = map[string]string{}
	}
	for _, k := range append(slices.Clone(tokenBookkeeping), annotationLegacyTokenSHA256, annotationTokenKeys, annotationTemplateData) {
		if v, ok := from.Annotations[k]; ok {
			s.Annotations[k] = v
		} else {
			delete(s.Annotations, k)
		}
	}
}

// applyTemplate puts spec.secretTemplate on s: its data templates rendered
// with the token's values, its labels and annotations; and removes the keys
// tokensync put there before that the template no longer has. Keys someone
// else added are never touched. tokensync's own label and annotations always
// win over the template's. A template that does not parse or render is a
// *templateError and leaves s unchanged.
func applyTemplate(s *corev1.Secret, t *tokensyncv1alpha1.SecretTemplate) error {
	labels, annotations := map[string]string{}, map[string]string{}
	var dataTemplates map[string]tokensyncv1alpha1.DataTemplate
	if t != nil {
		for k, v := range t.Labels {
			labels[k] = string(v)
		}
		maps.Copy(annotations, t.Annotations)
		dataTemplates = t.Data
	}
	var rendered map[string][]byte
	if len(s.Data) > 0 || len(dataTemplates) > 0 {
		var err error
		if rendered, err = renderData(dataTemplates, tokenValues(s)); err != nil {
			return err
		}
	}
	if s.Labels == nil {
		s.Labels = map[string]string{}
	}
	if s.Annotations == nil {
		s.Annotations = map[string]string{}
	}
	for _, k := range keyList(s.Annotations[annotationTemplateLabels]) {
		if _, keep := labels[k]; !keep && k != tokensyncv1alpha1.LabelManagedBy {
			delete(s.Labels, k)
		}
	}
	for _, k := range keyList(s.Annotations[annotationTemplateAnnotations]) {
		if _, keep := annotations[k]; !keep && !strings.HasPrefix(k, "tokensync.io/") {
			delete(s.Annotations, k)
		}
	}
	values := tokenValues(s)
	for _, k := range keyList(s.Annotations[annotationTemplateData]) {
		if _, keep := rendered[k]; !keep {
			if _, token := values[k]; !token {
				delete(s.Data, k)
			}
		}
	}
	if len(rendered) > 0 && s.Data == nil {
		s.Data = map[string][]byte{}
	}
	maps.Copy(s.Data, rendered)
	maps.Copy(s.Labels, labels)
	maps.Copy(s.Annotations, annotations)
	setKeyList(s.Annotations, annotationTemplateLabels, labels)
	setKeyList(s.Annotations, annotationTemplateAnnotations, annotations)
	setKeyList(s.Annotations, annotationTemplateData, rendered)
	s.Labels[tokensyncv1alpha1.LabelManagedBy] = tokensyncv1alpha1.ManagedByValue
	return nil
}

// keyList reads a comma-separated list of keys.
func keyList(v string) []string {
	if v == "" {
		return nil
	}
	return strings.Split(v, ",")
}

// setKeyList records m's keys, sorted, under annotation key; none removes it.
func setKeyList[V any](annotations map[string]string, key string, m map[string]V) {
	if len(m) == 0 {
		delete(annotations, key)
		return
	}
	annotations[key] = strings.Join(slices.Sorted(maps.Keys(m)), ",")
}
