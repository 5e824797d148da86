package providers

// Registration is one provider known to the operator.
type Registration struct {
	Provider Provider
	// DefaultEndpoint is used when a TokenRequest names no endpoint; empty
	// when the provider has no public default.
	DefaultEndpoint string
	// DisplayName names the provider in messages, e.g. "AML Watcher".
	DisplayName string
	// CredentialKeys lists the credentials Secret keys, for messages.
	CredentialKeys string
}

// Registry maps a provider name (the TokenRequest's spec.provider) to its registration.
type Registry map[string]Registration
