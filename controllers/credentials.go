package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
	"github.com/tokensync/tokensync/providers"
)

// Credentials: their Secret's values are read only when needed (a login,
// or a version of them not fingerprinted yet), straight from the API
// server, and only from a Secret labelled as credentials.

// readCredentials reads the credentials Secret straight from the API server,
// only when its values are needed: to log in, or to fingerprint a version
// of it not seen before. allowed is false, and no value returned, when the
// Secret may not be used as credentials (credentialsAllowed).
func (r *TokenRequestReconciler) readCredentials(ctx context.Context, key types.NamespacedName) (creds providers.Credentials, version string, allowed bool, err error) {
	s := &corev1.Secret{}
	if err := r.APIReader.Get(ctx, key, s); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, "", false, err
		}
		return nil, "", false, fmt.Errorf("read credentials Secret %q: %w", key.Name, err)
	}
	if !r.credentialsAllowed(s) {
		return nil, s.ResourceVersion, false, nil
	}
	creds = make(providers.Credentials, len(s.Data))
	for k, v := range s.Data {
		creds[k] = v
	}
	return creds, s.ResourceVersion, true, nil
}

// credentialsAllowed reports whether a Secret may be used as credentials:
// whoever may write it labelled it tokensync.io/credentials: "true" (unless
// the operator allows any Secret). Creating a TokenRequest needs no right to
// read Secrets; without the label, it could send any Secret of its namespace
// to an endpoint of its author's choosing.
func (r *TokenRequestReconciler) credentialsAllowed(s metav1.Object) bool {
	return r.AllowUnlabelledCredentials || s.GetLabels()[tokensyncv1alpha1.LabelCredentials] == "true"
}

// observeCredentials fills in the credentials' version and fingerprint. The
// fingerprint is taken from a record of the same version when there is one
// (the target Secret's, the last attempt's, memory's); otherwise the values
// are read, once, from the API server.
func (r *TokenRequestReconciler) observeCredentials(ctx context.Context, o *snapshot) error {
	name := o.credentialsRef.Name
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	err := r.Credentials.Get(ctx, o.credentialsRef, m)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("get credentials Secret %q metadata: %w", name, err)
	}
	c := &o.Credentials
	c.Found, c.Version = true, m.ResourceVersion
	c.Allowed = r.credentialsAllowed(m)
	if !c.Allowed {
		// Never read: the Secret is not offered as credentials.
		return nil
	}
	// A record counts only if made with the same settings: they decide
	// which keys are fingerprinted (the http login's templates).
	switch last := o.Status.LastAttempt; {
	case o.Target.Holds && o.Target.Held.CredentialsVersion == c.Version && o.Target.Held.CredentialsFingerprint != "" &&
		o.Target.Held.SettingsDigest == o.SettingsDigest:
		c.Fingerprint = o.Target.Held.CredentialsFingerprint
	case last != nil && last.CredentialsVersion == c.Version && last.CredentialsFingerprint != "" && last.SettingsDigest == o.SettingsDigest:
		c.Fingerprint = last.CredentialsFingerprint
	case o.Pending != nil && o.Pending.Issued.CredentialsVersion == c.Version && o.Pending.Issued.SettingsDigest == o.SettingsDigest:
		c.Fingerprint = o.Pending.Issued.CredentialsFingerprint
	}
	if c.Fingerprint != "" {
		return nil
	}
	ck := credentialsKey{NamespacedName: o.credentialsRef, uid: o.owner.obj.GetUID(), provider: o.Provider, settings: o.SettingsDigest}
	if fp, ok := r.memory.credentialsFingerprint(ck, c.Version); ok {
		c.Fingerprint = fp
		return nil
	}
	if !o.ProviderKnown || !o.needsFingerprint() {
		// Nothing to compare it with (a new TokenRequest): the login, if
		// one is due, reads the credentials anyway.
		return nil
	}
	creds, version, allowed, err := r.readCredentials(ctx, o.credentialsRef)
	if apierrors.IsNotFound(err) {
		c.Found, c.Version = false, ""
		return nil
	}
	if err != nil {
		return err
	}
	if !allowed {
		c.Allowed = false
		return nil
	}
	fp, err := r.fingerprints.credentials(ctx, o.owner.obj.GetUID(), o.keys().UsedCredentials(creds))
	if err != nil {
		return err
	}
	o.creds = creds
	c.Version, c.Fingerprint = version, fp
	r.memory.setCredentialsFingerprint(ck, version, fp)
	return nil
}

// needsFingerprint reports whether a decision may compare the credentials'
// fingerprint with one recorded: the token held, a pending token, the
// previous Secret's token, or a failed attempt.
func (o *snapshot) needsFingerprint() bool {
	return o.Target.Holds || o.Pending != nil || o.Previous != nil ||
		(o.Status.LastAttempt != nil && o.Status.FailedAttempts > 0)
}
