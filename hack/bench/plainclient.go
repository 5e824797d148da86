package main

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
	"github.com/tokensync/tokensync/providers"
	"github.com/tokensync/tokensync/providers/builtin"
)

// plainClient makes, with no operator, the API calls the operator needs for
// a new TokenRequest once it is created: get the credentials Secret, create
// the target Secret, update the status and, with event set, record the
// event the operator records. It is the limit the operator's figures are
// compared with: the same writes, with none of the operator's watching,
// caching, queueing or rate limiting.
type plainClient struct {
	c client.Client
	// event adds the operator's TokenRefreshed event to the writes.
	event bool
}

func (p plainClient) issue(ctx context.Context, tr *tokensyncv1alpha1.TokenRequest) error {
	creds := &corev1.Secret{}
	if err := p.c.Get(ctx, client.ObjectKey{Namespace: tr.Namespace, Name: tr.Spec.CredentialsSecretRef.Name}, creds); err != nil {
		return fmt.Errorf("get credentials Secret: %w", err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	expires := now.Add(time.Hour)
	token := fakeToken()
	sum := sha256.Sum256([]byte(token))
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name: tr.TargetSecretName(), Namespace: tr.Namespace,
			Labels: map[string]string{tokensyncv1alpha1.LabelManagedBy: tokensyncv1alpha1.ManagedByValue},
			Annotations: map[string]string{
				tokensyncv1alpha1.AnnotationExpiresAt: expires.Format(time.RFC3339),
				tokensyncv1alpha1.AnnotationProvider:  string(tr.Spec.Provider),
				"tokensync.io/obtained-at":            now.Format(time.RFC3339),
				"tokensync.io/credentials-version":    creds.ResourceVersion,
				"tokensync.io/token-sha256":           hex.EncodeToString(sum[:]),
			},
		},
		Type: corev1.SecretTypeOpaque,
		Data: map[string][]byte{
			tokensyncv1alpha1.SecretKeyToken:     []byte(token),
			tokensyncv1alpha1.SecretKeyExpiresAt: []byte(expires.Format(time.RFC3339)),
		},
	}
	if err := controllerutil.SetControllerReference(tr, s, scheme); err != nil {
		return err
	}
	if err := p.c.Create(ctx, s); err != nil {
		return fmt.Errorf("create Secret: %w", err)
	}
	tr.Status = tokensyncv1alpha1.TokenRequestStatus{TokenStatus: issuedStatus(tr.Generation, s.Name, tr.Spec.LoginSpec, creds.ResourceVersion,
		now, now, expires, fmt.Sprintf("Secret %s holds a valid token until %s", s.Name, expires.Format(time.RFC3339)))}
	if err := p.c.Status().Update(ctx, tr); err != nil {
		return fmt.Errorf("update status: %w", err)
	}
	if !p.event {
		return nil
	}
	ev := &eventsv1.Event{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s.%x", tr.Name, time.Now().UnixNano()), Namespace: tr.Namespace},
		EventTime:  metav1.NewMicroTime(time.Now()), ReportingController: "tokensync", ReportingInstance: "tokensync-bench",
		Action: "Refresh", Reason: "TokenRefreshed", Type: corev1.EventTypeNormal,
		Note: fmt.Sprintf("Wrote a new token to Secret %s; it expires at %s", s.Name, expires.Format(time.RFC3339)),
		Regarding: corev1.ObjectReference{
			APIVersion: tokensyncv1alpha1.GroupVersion.String(), Kind: "TokenRequest",
			Namespace: tr.Namespace, Name: tr.Name, UID: tr.UID, ResourceVersion: tr.ResourceVersion,
		},
	}
	if err := p.c.Create(ctx, ev); err != nil {
		return fmt.Errorf("record event: %w", err)
	}
	return nil
}

// fanOutWrites is how many Secrets the plain client writes at once for a
// ClusterTokenRequest: as many as the operator (fanOutWorkers in
// controllers/clustertokenrequest_controller.go).
const fanOutWrites = 16

// fanOut makes, with no operator, the calls a new ClusterTokenRequest
// needs once it is created: get the credentials Secret, log in once at the
// provider (the bench's fake, which counts it), create the Secret
// spec.secretName in every namespace given, fanOutWrites at a time, with
// the labels, annotations and controller owner reference the operator
// writes, then write the status once. The namespaces are the ones the
// operator would select: the plain client lists nothing.
func (p plainClient) fanOut(ctx context.Context, ctr *tokensyncv1alpha1.ClusterTokenRequest, namespaces []string) error {
	ref := ctr.Spec.CredentialsSecretRef
	creds := &corev1.Secret{}
	if err := p.c.Get(ctx, client.ObjectKey{Namespace: ref.Namespace, Name: ref.Name}, creds); err != nil {
		return fmt.Errorf("get credentials Secret: %w", err)
	}
	registry := builtin.NewRegistry(providers.Options{})
	provider, ok := registry[string(ctr.Spec.Provider)]
	if !ok {
		return fmt.Errorf("no provider %q", ctr.Spec.Provider)
	}
	tok, err := provider.Provider.Login(ctx, ctr.Spec.Endpoint, providers.Credentials(creds.Data))
	if err != nil {
		return fmt.Errorf("log in: %w", err)
	}
	obtained, expires := tok.ObtainedAt.UTC().Truncate(time.Second), tok.ExpiresAt.UTC().Truncate(time.Second)
	// The operator's fingerprints are keyed with its own key; these have
	// the same form and length.
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	fingerprint := func(parts ...string) string {
		h := hmac.New(sha256.New, key)
		for _, part := range parts {
			h.Write([]byte(part))
		}
		return hex.EncodeToString(key[:4]) + ":" + base64.RawURLEncoding.EncodeToString(h.Sum(nil))
	}
	data := map[string][]byte{
		tokensyncv1alpha1.SecretKeyToken:     []byte(tok.Value),
		tokensyncv1alpha1.SecretKeyExpiresAt: []byte(expires.Format(time.RFC3339)),
	}
	base := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name:   ctr.Spec.SecretName,
			Labels: map[string]string{tokensyncv1alpha1.LabelManagedBy: tokensyncv1alpha1.ManagedByValue},
			Annotations: map[string]string{
				tokensyncv1alpha1.AnnotationExpiresAt:  expires.Format(time.RFC3339),
				tokensyncv1alpha1.AnnotationProvider:   string(ctr.Spec.Provider),
				tokensyncv1alpha1.AnnotationEndpoint:   ctr.Spec.Endpoint,
				"tokensync.io/obtained-at":             obtained.Format(time.RFC3339),
				"tokensync.io/credentials-version":     creds.ResourceVersion,
				"tokensync.io/credentials-fingerprint": fingerprint(credentialParts(creds)...),
				"tokensync.io/token-fingerprint":       fingerprint("token", tok.Value),
				"tokensync.io/token-keys":              strings.Join(slices.Sorted(maps.Keys(data)), ","),
			},
		},
		Type: corev1.SecretTypeOpaque,
		Data: data,
	}
	if err := controllerutil.SetControllerReference(ctr, base, scheme); err != nil {
		return err
	}
	err = parallel(ctx, len(namespaces), fanOutWrites, func(ctx context.Context, i int) error {
		s := base.DeepCopy()
		s.Namespace = namespaces[i]
		if err := p.c.Create(ctx, s); err != nil {
			return fmt.Errorf("create Secret %s/%s: %w", s.Namespace, s.Name, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	now := time.Now().UTC().Truncate(time.Second)
	n := int32(len(namespaces))
	ctr.Status = tokensyncv1alpha1.ClusterTokenRequestStatus{
		TokenStatus: issuedStatus(ctr.Generation, ctr.Spec.SecretName, ctr.Spec.LoginSpec, creds.ResourceVersion, obtained, now, expires,
			fmt.Sprintf("Secret %s holds a valid token until %s in %d namespaces", ctr.Spec.SecretName, expires.Format(time.RFC3339), n)),
		Namespaces: tokensyncv1alpha1.NamespaceCounts{Selected: n, Written: n},
	}
	if err := p.c.Status().Update(ctx, ctr); err != nil {
		return fmt.Errorf("update status: %w", err)
	}
	return nil
}

// credentialParts are what the operator fingerprints of a credentials
// Secret: its keys and values, in key order.
func credentialParts(creds *corev1.Secret) []string {
	parts := []string{"credentials"}
	for _, k := range slices.Sorted(maps.Keys(creds.Data)) {
		parts = append(parts, k, string(creds.Data[k]))
	}
	return parts
}

// fakeToken is a random token the size of the fake partner API's JWTs.
func fakeToken() string {
	b := make([]byte, 300)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// issuedStatus is the status the operator writes with a new token: Ready,
// the token's times, the login that got it.
func issuedStatus(generation int64, secretName string, spec tokensyncv1alpha1.LoginSpec, credsVersion string, obtained, now, expires time.Time, message string) tokensyncv1alpha1.TokenStatus {
	next := metav1.NewTime(expires.Add(-5 * time.Minute))
	return tokensyncv1alpha1.TokenStatus{
		ObservedGeneration: generation,
		SecretName:         secretName,
		ExpiresAt:          &metav1.Time{Time: expires},
		LastRefreshTime:    &metav1.Time{Time: obtained},
		NextRefreshTime:    &next,
		LastAttempt: &tokensyncv1alpha1.LoginAttempt{
			Time: metav1.NewTime(obtained), Provider: string(spec.Provider), Endpoint: spec.Endpoint,
			CredentialsVersion: credsVersion, Result: tokensyncv1alpha1.ReasonSucceeded,
		},
		Conditions: []metav1.Condition{{
			Type: tokensyncv1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: tokensyncv1alpha1.ReasonTokenIssued,
			Message: message, ObservedGeneration: generation, LastTransitionTime: metav1.NewTime(now),
		}},
	}
}
