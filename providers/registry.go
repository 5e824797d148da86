package providers

import (
	"fmt"
	"sort"
	"strings"
)

// Registration describes one provider. Each provider package exports its
// own (aml.Registration, ...); providers/builtin lists them.
type Registration struct {
	// Name is the provider's name in TokenRequests (spec.provider):
	// lowercase letters and digits, starting with a letter. It is also the
	// JSON name of the settings block of a provider its TokenRequest
	// configures (spec.oauth2).
	Name string
	// Title names the provider for users, as the API's documentation of
	// spec.provider lists it: "AML Watcher", "the partner API", "a login
	// described by spec.http".
	Title string
	// DefaultEndpoint is used when a TokenRequest names no endpoint; empty
	// when the provider has no public default, and admission then requires
	// spec.endpoint. See Endpoint.
	DefaultEndpoint string
	// EndpointIs says what spec.endpoint is when it is not the base URL the
	// provider joins its login path to (oauth2: "the token URL"); the
	// admission message that requires an endpoint quotes it.
	EndpointIs string
	// SettingsHint, for a provider its TokenRequest configures
	// (Configurable), says in a few words what its settings block,
	// spec.<Name>, holds or what an empty one means; the admission message
	// that requires the block quotes it. Empty for the other providers.
	SettingsHint string
	// CredentialKeys are the keys of a credentials Secret, for messages and
	// documentation. Unless SelectCredentials says otherwise, they are also
	// the keys the provider sends.
	CredentialKeys []CredentialKey
	// SelectCredentials, when set, returns the part of a credentials Secret
	// the provider would send (see UsedCredentials). Nil means the
	// CredentialKeys present in the Secret.
	SelectCredentials func(Credentials) Credentials
	// New builds the provider.
	New func(Options) Provider
}

// A Registration answers for the keys of its providers that are not
// configured otherwise.
var _ CredentialUser = Registration{}

// CredentialKey is one key of a credentials Secret.
type CredentialKey struct {
	Name        string
	Description string
	// Alternative marks a key that stands instead of the keys listed before
	// it (AmpliFi's channel, with that channel's fields, instead of
	// credentials.json): CredentialKeyNames joins it with "or".
	Alternative bool
}

// Endpoint resolves a TokenRequest's spec.endpoint: the default endpoint
// when it is empty, otherwise spec unchanged. Providers get the result and
// never default it themselves.
func (r Registration) Endpoint(spec string) string {
	if strings.TrimSpace(spec) == "" {
		return r.DefaultEndpoint
	}
	return spec
}

// CredentialKeyNames names the credentials Secret's keys for a message,
// e.g. "email, password", or "credentials.json, or channel".
func (r Registration) CredentialKeyNames() string {
	var b strings.Builder
	for i, k := range r.CredentialKeys {
		if i > 0 {
			b.WriteString(", ")
			if k.Alternative {
				b.WriteString("or ")
			}
		}
		b.WriteString(k.Name)
	}
	return b.String()
}

// UsedCredentials returns the part of creds the provider would send in a
// login: SelectCredentials(creds), or the CredentialKeys present in creds.
// Keys outside it cannot change a login, so a controller that notices
// credentials changes needs to look at this part only. The result shares
// its values with creds.
func (r Registration) UsedCredentials(creds Credentials) Credentials {
	if r.SelectCredentials != nil {
		return r.SelectCredentials(creds)
	}
	used := Credentials{}
	for _, k := range r.CredentialKeys {
		if v, ok := creds[k.Name]; ok {
			used[k.Name] = v
		}
	}
	return used
}

// Registry holds the providers the operator logs in with, by name
// (spec.provider). Build it with NewRegistry.
type Registry map[string]Entry

// Entry is a provider built from its Registration.
type Entry struct {
	Registration
	Provider Provider
}

// NewRegistry builds each registration's provider with opts, its Name set
// to the registration's. Names must be unique and not empty, and every
// registration must have New.
func NewRegistry(opts Options, regs ...Registration) (Registry, error) {
	registry := make(Registry, len(regs))
	for _, r := range regs {
		switch {
		case r.Name == "":
			return nil, fmt.Errorf("a provider registration has no name")
		case r.New == nil:
			return nil, fmt.Errorf("provider %q has no constructor", r.Name)
		}
		if _, dup := registry[r.Name]; dup {
			return nil, fmt.Errorf("provider %q is registered twice", r.Name)
		}
		o := opts
		o.Name = r.Name
		p := r.New(o)
		if p == nil {
			return nil, fmt.Errorf("provider %q: New returned nil", r.Name)
		}
		registry[r.Name] = Entry{Registration: r, Provider: p}
	}
	return registry, nil
}

// Names returns the registered provider names, sorted.
func (r Registry) Names() []string {
	names := make([]string, 0, len(r))
	for name := range r {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// UsedCredentials returns the part of creds that provider would send (see
// Registration.UsedCredentials); nothing for an unknown provider.
func (r Registry) UsedCredentials(provider string, creds Credentials) Credentials {
	e, ok := r[provider]
	if !ok {
		return Credentials{}
	}
	return e.UsedCredentials(creds)
}
