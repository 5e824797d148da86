// Package httplogintest is the test registration of provider http, which
// has no wire format of its own: tests configure it, with Settings, to log in
// to AML Watcher's fake as the README's example does.
package httplogintest

import (
	"github.com/tokensync/tokensync/providers/aml/amltest"
	"github.com/tokensync/tokensync/providers/providertest/fake"
)

// Name is the provider's name.
const Name = "http"

// AMLSettings is spec.http for AML Watcher's login, as the README gives it.
const AMLSettings = `{
	"method": "POST", "path": "` + amltest.Path + `",
	"headers": {"Accept": "application/json"},
	"body": {"format": "json", "fields": {"email": "{{ .email }}", "password": "{{ .password }}"}},
	"token": {"jsonPointer": "/data/access_token"},
	"expiry": {"fromJWT": true, "lifetime": "3h0m0s"},
	"success": {"jsonPointer": "/status", "equals": "SUCCESS"}
}`

// Fake logs in to AML Watcher's fake.
var Fake = fake.Provider{
	Name:                Name,
	Via:                 amltest.Name,
	Settings:            AMLSettings,
	Credentials:         amltest.Fake.Credentials,
	SentinelCredentials: amltest.Fake.SentinelCredentials,
}
