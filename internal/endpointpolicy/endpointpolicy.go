// Package endpointpolicy decides which provider endpoints the operator may
// call. Whoever can create a TokenRequest chooses its endpoint, so without a
// guard they could make the operator send requests from inside the cluster to
// internal services or to a cloud metadata address.
//
// The guard has two layers:
//   - Policy.Check looks at the endpoint URL before any request: the
//     operator's allowlist, https only (plain http only to loopback unless
//     AllowInsecureHTTP), and never a literal link-local or metadata address.
//   - DialControl looks at the address actually dialed, so a DNS name that
//     resolves to a link-local or metadata address is refused too.
//
// Check cannot see redirects and DialControl cannot see through an HTTP
// proxy: the HTTP client should re-run Check on every redirect and should not
// use a proxy taken from the environment.
//
// It lives in the module's internal/ rather than under providers/ because it
// is the operator's policy on its own egress, not a provider: main.go builds
// it from flags, the controller asks Check before every login, and providers
// only ever see DialControl as an opaque function in providers.Options. No
// provider imports it, and nothing outside this module needs it.
package endpointpolicy

import (
	"bufio"
	"fmt"
	"maps"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/tokensync/tokensync/providers"
)

// flagName is how main.go exposes the allowlist; messages name it so users
// know what an operator would have to change.
const flagName = "--allowed-endpoints"

// Policy is the operator's endpoint allowlist. A provider with no entries may
// use any endpoint that passes the scheme and address rules. A nil *Policy
// has no entries and refuses plain http to non-loopback hosts. A Policy is
// not changed after it is built, so Check is safe for concurrent use.
type Policy struct {
	// AllowInsecureHTTP allows plain http:// to any host. Link-local and
	// metadata addresses stay refused.
	AllowInsecureHTTP bool

	allowed map[string][]prefix
}

// prefix is one allowlist entry, normalised so that comparing strings is enough.
type prefix struct {
	scheme string
	host   string // lowercase name or canonical IP, with ":port" unless it is the scheme's default
	path   string // escaped; "" allows the whole host, otherwise no trailing "/"
}

func (e prefix) String() string { return e.scheme + "://" + e.host + e.path }

// covers reports whether endpoint t lies under e. Paths match on segment
// boundaries: "/base" covers "/base" and "/base/v2" but not "/basement".
func (e prefix) covers(t target) bool {
	if e.scheme != t.scheme || e.host != t.host {
		return false
	}
	return e.path == "" || t.path == e.path || strings.HasPrefix(t.path, e.path+"/")
}

// Parse reads the flag syntax: comma-separated provider=entry items, where an
// entry is a URL prefix (https://host[:port][/path]) or a bare host[:port]
// meaning any https URL on that host. A provider may appear several times.
func Parse(spec string, allowInsecureHTTP bool) (*Policy, error) {
	p := &Policy{AllowInsecureHTTP: allowInsecureHTTP}
	for _, item := range strings.Split(spec, ",") {
		if item = strings.TrimSpace(item); item == "" {
			continue
		}
		if err := p.addItem(item); err != nil {
			return nil, fmt.Errorf("%s: %w", flagName, err)
		}
	}
	return p, nil
}

// ParseFile reads one provider=entry per line, in the same entry syntax as
// Parse. Blank lines are skipped and "#" starts a comment (an entry can never
// contain "#", since fragments are refused).
func ParseFile(path string, allowInsecureHTTP bool) (*Policy, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read endpoint policy: %w", err)
	}
	defer f.Close()

	p := &Policy{AllowInsecureHTTP: allowInsecureHTTP}
	lines := bufio.NewScanner(f)
	for n := 1; lines.Scan(); n++ {
		line, _, _ := strings.Cut(lines.Text(), "#")
		if line = strings.TrimSpace(line); line == "" {
			continue
		}
		if err := p.addItem(line); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, n, err)
		}
	}
	if err := lines.Err(); err != nil {
		return nil, fmt.Errorf("read endpoint policy %s: %w", path, err)
	}
	return p, nil
}

// addItem adds one "provider=entry" item.
func (p *Policy) addItem(item string) error {
	provider, value, ok := strings.Cut(item, "=")
	provider, value = strings.ToLower(strings.TrimSpace(provider)), strings.TrimSpace(value)
	if !ok || provider == "" || value == "" {
		return fmt.Errorf("entry %s: want provider=https://host/path or provider=host", display(item))
	}
	if !validProviderName(provider) {
		return fmt.Errorf("entry %s: provider name %q may hold only letters, digits, '.', '-' and '_'", display(item), provider)
	}
	e, err := parseEntry(value, p.AllowInsecureHTTP)
	if err != nil {
		return fmt.Errorf("entry %s=%s: %w", provider, display(value), err)
	}
	p.add(provider, e)
	return nil
}

func (p *Policy) add(provider string, e prefix) {
	if p.allowed == nil {
		p.allowed = make(map[string][]prefix)
	}
	for _, have := range p.allowed[provider] {
		if have == e {
			return
		}
	}
	p.allowed[provider] = append(p.allowed[provider], e)
}

func parseEntry(value string, allowInsecureHTTP bool) (prefix, error) {
	bare := !strings.Contains(value, "://")
	if bare {
		value = "https://" + value
	}
	t, err := parseTarget(value)
	if err != nil {
		return prefix{}, err
	}
	path := strings.TrimRight(t.path, "/")
	if bare && path != "" {
		return prefix{}, fmt.Errorf("a bare host cannot carry a path; write https://host/path for a path prefix")
	}
	if t.ip.IsValid() && refusedAddr(t.ip) {
		return prefix{}, fmt.Errorf("%s is a link-local or cloud metadata address, which is always refused", t.ip)
	}
	if t.scheme == "http" && !t.loopback() && !allowInsecureHTTP {
		return prefix{}, fmt.Errorf("plain http:// is refused for non-loopback hosts unless insecure HTTP is allowed; use https://")
	}
	return prefix{scheme: t.scheme, host: t.host, path: path}, nil
}

// Merge returns a policy holding the entries of both p and other, as when
// entries come from both the flag and a file. Either may be nil. Insecure
// HTTP is allowed if either allows it: both come from the operator's own
// configuration, and each side's http entries were accepted under its setting.
func (p *Policy) Merge(other *Policy) *Policy {
	merged := &Policy{AllowInsecureHTTP: p.insecure() || other.insecure()}
	for _, src := range []*Policy{p, other} {
		if src == nil {
			continue
		}
		for _, provider := range src.providers() {
			for _, e := range src.allowed[provider] {
				merged.add(provider, e)
			}
		}
	}
	return merged
}

func (p *Policy) insecure() bool { return p != nil && p.AllowInsecureHTTP }

func (p *Policy) entries(provider string) []prefix {
	if p == nil {
		return nil
	}
	return p.allowed[strings.ToLower(provider)]
}

func (p *Policy) providers() []string {
	if p == nil {
		return nil
	}
	return slices.Sorted(maps.Keys(p.allowed))
}

// Check reports whether provider may be called at endpoint, before any
// request is made. A refusal is a *providers.Error of kind EndpointNotAllowed
// whose message says what to change.
func (p *Policy) Check(provider, endpoint string) error {
	t, err := parseTarget(endpoint)
	if err != nil {
		return refuse(provider, endpoint, err.Error())
	}
	if t.ip.IsValid() && refusedAddr(t.ip) {
		return refuse(provider, endpoint, "link-local and cloud metadata addresses are always refused")
	}
	if t.scheme == "http" && !t.loopback() && !p.insecure() {
		return refuse(provider, endpoint, "plain http:// is only allowed to loopback hosts; use https://")
	}
	allowed := p.entries(provider)
	if len(allowed) == 0 {
		return nil
	}
	for _, e := range allowed {
		if e.covers(t) {
			return nil
		}
	}
	return providers.Errorf(providers.EndpointNotAllowed,
		"endpoint %s is not allowed for provider %q by the operator's %s policy; allowed: %s",
		display(endpoint), provider, flagName, joinPrefixes(allowed))
}

func refuse(provider, endpoint, reason string) error {
	return providers.Errorf(providers.EndpointNotAllowed,
		"endpoint %s is not allowed for provider %q: %s", display(endpoint), provider, reason)
}

// String describes the policy for the startup log.
func (p *Policy) String() string {
	var b strings.Builder
	for _, provider := range p.providers() {
		fmt.Fprintf(&b, "%s: %s; ", provider, joinPrefixes(p.allowed[provider]))
	}
	if b.Len() == 0 {
		b.WriteString("any endpoint for every provider; ")
	} else {
		b.WriteString("other providers: any endpoint; ")
	}
	if p.insecure() {
		b.WriteString("plain http: allowed (insecure); ")
	} else {
		b.WriteString("plain http: loopback only; ")
	}
	b.WriteString("link-local and metadata addresses: always refused")
	return b.String()
}

func joinPrefixes(entries []prefix) string {
	s := make([]string, len(entries))
	for i, e := range entries {
		s[i] = e.String()
	}
	return strings.Join(s, ", ")
}

// target is an endpoint or allowlist URL broken into the parts we compare.
type target struct {
	scheme string
	host   string     // as in prefix.host
	name   string     // lowercase host name without port
	ip     netip.Addr // valid when the host is an IP literal
	path   string     // escaped path, as sent on the wire
}

func (t target) loopback() bool {
	if t.ip.IsValid() {
		return t.ip.Unmap().IsLoopback()
	}
	return t.name == "localhost"
}

// parseTarget parses and normalises a URL, refusing everything that could
// make two spellings of one URL compare differently or hide where a request
// really goes. Its errors are reasons written for users.
func parseTarget(raw string) (target, error) {
	if raw == "" {
		return target{}, fmt.Errorf("the endpoint is empty")
	}
	// url.Parse keeps no trace of an empty query or fragment ("https://h#"),
	// so look at the raw string.
	if strings.ContainsAny(raw, "?#") {
		return target{}, fmt.Errorf("queries and fragments are not allowed in an endpoint")
	}
	u, err := url.Parse(raw)
	if err != nil {
		if ue, ok := err.(*url.Error); ok {
			err = ue.Err
		}
		return target{}, fmt.Errorf("not a valid URL: %v", err)
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return target{}, fmt.Errorf("the scheme must be https://")
	}
	if u.User != nil {
		return target{}, fmt.Errorf("user-info (user@ or user:password@) is not allowed in an endpoint; put credentials in the credentials Secret")
	}
	if u.Opaque != "" || u.Host == "" {
		return target{}, fmt.Errorf("the URL has no host; write https://host/path")
	}

	t := target{scheme: u.Scheme, name: strings.ToLower(u.Hostname())}
	if strings.HasPrefix(u.Host, "[") {
		ip, err := netip.ParseAddr(t.name)
		if err != nil || !ip.Is6() {
			return target{}, fmt.Errorf("%q is not a valid IPv6 address", t.name)
		}
		if ip.Zone() != "" {
			return target{}, fmt.Errorf("IPv6 zones are not allowed in an endpoint")
		}
		t.ip, t.name = ip, ip.String()
		t.host = "[" + t.name + "]"
	} else if ip, err := netip.ParseAddr(t.name); err == nil && ip.Is4() {
		t.ip, t.name = ip, ip.String()
		t.host = t.name
	} else if err := checkHostname(t.name); err != nil {
		return target{}, err
	} else {
		t.host = t.name
	}

	if port := u.Port(); port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return target{}, fmt.Errorf("port %q is out of range", port)
		}
		if !(t.scheme == "https" && n == 443 || t.scheme == "http" && n == 80) {
			t.host += ":" + strconv.Itoa(n)
		}
	}

	if err := checkPath(u.Path); err != nil {
		return target{}, err
	}
	// Compare the escaped path, as the server receives it: "/base%2Fx" is one
	// segment there, not "/base" followed by "x".
	t.path = u.EscapedPath()
	return t, nil
}

// checkPath refuses paths a server might resolve to somewhere above the
// allowed prefix: dot segments (also percent-encoded, and Tomcat's "..;"),
// and backslashes, which some servers treat as "/".
func checkPath(path string) error {
	if strings.Contains(path, `\`) {
		return fmt.Errorf(`backslashes are not allowed in an endpoint path`)
	}
	for _, seg := range strings.Split(path, "/") {
		seg, _, _ = strings.Cut(seg, ";")
		if seg == "." || seg == ".." {
			return fmt.Errorf(`"." and ".." segments are not allowed in an endpoint path`)
		}
	}
	return nil
}

// checkHostname accepts ASCII DNS names only (IDNs must be written in
// punycode). It refuses names whose last label is numeric: no top-level
// domain is, and resolvers that accept inet_aton forms read "2130706433",
// "127.1" or "0x7f.0.0.1" as IP addresses that the literal-IP checks would miss.
func checkHostname(name string) error {
	n := strings.TrimSuffix(name, ".")
	if n == "" || len(n) > 253 {
		return fmt.Errorf("host %q is not a valid DNS name or IP address", name)
	}
	labels := strings.Split(n, ".")
	for _, label := range labels {
		if len(label) == 0 || len(label) > 63 {
			return fmt.Errorf("host %q is not a valid DNS name or IP address", name)
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return fmt.Errorf("host %q is not a valid DNS name or IP address", name)
			}
		}
	}
	if last := labels[len(labels)-1]; strings.HasPrefix(last, "0x") || strings.Trim(last, "0123456789") == "" {
		return fmt.Errorf("host %q looks like an IP address in a non-standard form; write a dotted-quad IPv4 or a bracketed IPv6 address", name)
	}
	return nil
}

func validProviderName(name string) bool {
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return name != ""
}

// display renders an endpoint for a message. Endpoints are not secrets, but
// user-info and queries may hold some, so those parts are never shown.
func display(raw string) string {
	const maxLen = 200
	if u, err := url.Parse(raw); err == nil {
		if u.User != nil {
			u.User = url.User("REDACTED")
		}
		if u.RawQuery != "" {
			u.RawQuery = "REDACTED"
		}
		if u.Fragment != "" {
			u.Fragment = "REDACTED"
		}
		raw = u.String()
	} else if strings.ContainsAny(raw, "@?#") {
		return "(not shown: it may carry credentials)"
	}
	if len(raw) > maxLen {
		raw = raw[:maxLen] + "..."
	}
	return strconv.Quote(raw)
}
