package controllers

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"

	"github.com/tokensync/tokensync/controllers/policy"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
	"github.com/tokensync/tokensync/providers"
)

// Providers whose login the TokenRequest describes (spec.oauth2,
// spec.http) are providers.Configurable: the reconciler hands them the
// block's JSON and logs in with the provider they return. A change of the
// block counts like a change of issuer: the target Secret and
// status.lastAttempt record a digest of the settings a token was obtained
// with, and the decision compares it with the spec's.

// annotationSettingsDigest on the target Secret: the digest of the provider
// settings the token was obtained with; absent for providers without any.
const annotationSettingsDigest = "tokensync.io/settings-digest"

// providerSettings returns the JSON of the spec's provider settings block
// and its digest, or nil and "" when its provider has none. The digest is a
// plain SHA-256: settings come from the spec and hold no secret (the
// credentials stay in their Secret). encoding/json writes struct fields in
// order and map keys sorted, so equal settings give equal digests.
func providerSettings(spec *tokensyncv1alpha1.LoginSpec) ([]byte, string) {
	block := spec.ProviderSettings()
	if block == nil {
		return nil, ""
	}
	data, err := json.Marshal(block)
	if err != nil {
		return nil, "" // not possible for the API's types
	}
	sum := sha256.Sum256(data)
	return data, "sha256:" + hex.EncodeToString(sum[:])
}

// configure sets o.provider, the provider to log in with: the registered
// one, or the one a Configurable provider makes of the settings. Settings
// it cannot use leave o.settingsErr, an InvalidTemplate error; the login
// then fails with it before anything is read or sent.
func configure(o *snapshot, settings []byte) {
	o.provider, o.settingsErr = o.reg.Provider, nil
	c, ok := o.reg.Provider.(providers.Configurable)
	if !ok {
		return
	}
	p, err := c.WithSettings(settings)
	if err != nil {
		o.settingsErr = err
		return
	}
	o.provider = p
}

// keys answers which credential keys the login uses and how to name them:
// the configured provider when its settings decide (the http login's
// templates), else the registration.
func (o *snapshot) keys() providers.CredentialUser {
	if u, ok := o.provider.(providers.CredentialUser); ok && o.settingsErr == nil {
		return u
	}
	return o.reg.Registration
}

// settingsFailure is the failure of a login whose settings cannot be used.
func settingsFailure(err error) policy.Failure {
	return policy.Failure{Reason: tokensyncv1alpha1.ReasonInvalidTemplate, Message: err.Error()}
}
