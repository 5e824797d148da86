// Package builtin is the one list of the providers tokensync ships. main.go
// and the controller's tests build their registry from it (the demo and the
// benchmarks run main.go), and the API's admission rules are tested against
// it, so a new provider is registered here and nowhere else.
package builtin

import (
	"github.com/tokensync/tokensync/providers"
	"github.com/tokensync/tokensync/providers/aml"
	"github.com/tokensync/tokensync/providers/amplifi"
	"github.com/tokensync/tokensync/providers/httplogin"
	"github.com/tokensync/tokensync/providers/internal/login"
	"github.com/tokensync/tokensync/providers/oauth2"
	"github.com/tokensync/tokensync/providers/partner"
)

// Registrations returns the built-in providers' registrations.
func Registrations() []providers.Registration {
	return []providers.Registration{
		aml.Registration,
		amplifi.Registration,
		partner.Registration,
		oauth2.Registration,
		httplogin.Registration,
	}
}

// NewRegistry builds every built-in provider with opts. Unless
// opts.HTTPClient is set, they share one HTTP client built from opts, and
// so one pool of connections.
//
// It panics if the list above is malformed (an empty or duplicate name),
// which this package's tests rule out.
func NewRegistry(opts providers.Options) providers.Registry {
	if opts.HTTPClient == nil {
		opts.HTTPClient = login.NewHTTPClient(opts)
	}
	registry, err := providers.NewRegistry(opts, Registrations()...)
	if err != nil {
		panic("builtin: " + err.Error())
	}
	return registry
}
