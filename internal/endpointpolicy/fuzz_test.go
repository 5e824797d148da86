package endpointpolicy

import (
	"errors"
	"net/netip"
	"net/url"
	"testing"

	"github.com/tokensync/tokensync/internal/urlpath"
	"github.com/tokensync/tokensync/providers"
)

// FuzzCheck feeds arbitrary policies and endpoints to Parse and Check. Check
// must not panic, must refuse only with EndpointNotAllowed, and must never
// accept a literal link-local or metadata address, a literal loopback
// address without AllowLoopback, a literal private address (the fuzzed
// rules never allow one), or a path urlpath refuses.
func FuzzCheck(f *testing.F) {
	f.Add("aml=https://api.amlwatcher.com", "aml", "https://api.amlwatcher.com/v1", false, false)
	f.Add("partner=https://other.example/base", "partner", "https://other.example/basement", false, false)
	f.Add("", "aml", "https://[::ffff:169.254.169.254]/", true, false)
	f.Add("amplifi=api.amplifi.example", "amplifi", "http://localhost:8080", false, true)
	f.Add("http=https://gw.example.com/tenant-a", "http", "https://gw.example.com/tenant-a/%2e%2e/admin", false, false)
	f.Add("", "http", "https://[64:ff9b::a00:1]:8443/", true, true)
	f.Fuzz(func(t *testing.T, spec, provider, endpoint string, insecure, loopback bool) {
		p, err := Parse(spec, Rules{AllowInsecureHTTP: insecure, AllowLoopback: loopback})
		if err != nil {
			p = nil
		}
		_ = p.String()
		err = p.Check(provider, endpoint)
		if err != nil {
			var pe *providers.Error
			if !errors.As(err, &pe) || pe.Kind != providers.EndpointNotAllowed {
				t.Fatalf("Check(%q, %q) = %v, want kind EndpointNotAllowed", provider, endpoint, err)
			}
			return
		}
		u, err := url.Parse(endpoint)
		if err != nil {
			t.Fatalf("Check accepted %q, which url.Parse refuses: %v", endpoint, err)
		}
		if ip, err := netip.ParseAddr(u.Hostname()); err == nil && refusedAddr(ip) {
			t.Fatalf("Check accepted %q, a metadata or link-local address", endpoint)
		}
		if ip, err := netip.ParseAddr(u.Hostname()); err == nil && localAddr(ip) && !loopback {
			t.Fatalf("Check accepted %q, a loopback address, without AllowLoopback", endpoint)
		}
		if ip, err := netip.ParseAddr(u.Hostname()); err == nil && privateAddr(ip) {
			t.Fatalf("Check accepted %q, a private address, without AllowPrivate", endpoint)
		}
		if err := urlpath.Check(u.EscapedPath()); err != nil {
			t.Fatalf("Check accepted %q, whose path %v", endpoint, err)
		}
		if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			t.Fatalf("Check accepted %q with user-info, query or fragment", endpoint)
		}
	})
}
