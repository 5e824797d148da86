// Package endpointpolicy decides which provider endpoints the operator may
// call. Whoever can create a TokenRequest chooses its endpoint, so without a
// guard they could make the operator send requests from inside the cluster to
// internal services or to a cloud metadata address.
//
// The guard has three layers:
//   - Policy.Check judges the URL a login is sent to (the endpoint with the
//     provider's login path joined), before any request: the operator's
//     allowlist, https only (plain http only to loopback, and only with
//     AllowLoopback, unless AllowInsecureHTTP), no loopback host unless
//     AllowLoopback, no literal private address unless the Rules allow it,
//     never a literal link-local or metadata address, and no path a
//     server could read as leaving its prefix (see urlpath).
//   - Policy.CheckURL is the same judgement for the HTTP transport, which
//     asks it for every request any provider sends, so no provider code
//     path can reach a URL Check would refuse.
//   - Policy.DialControlContext looks at the address actually dialed, so
//     a DNS name that resolves to a link-local, metadata, loopback (unless
//     AllowLoopback) or private address (unless the Rules allow it) is
//     refused too.
//
// The dial check cannot see through an HTTP proxy: the address dialed is
// then the proxy's, which the providers' client exempts (the operator chose
// it).
// Redirects are never followed.
//
// It lives in the module's internal/ rather than under providers/ because it
// is the operator's policy on its own egress, not a provider: main.go builds
// it from flags, the controller asks Check before every login, and providers
// only ever see CheckURL and the dial controls as opaque functions in
// providers.Options. No provider imports it, and nothing outside this
// module needs it.
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

	"github.com/tokensync/tokensync/internal/urlpath"
	"github.com/tokensync/tokensync/providers"
)

// The flags main.go exposes the policy with; messages name them so users
// know what an operator would have to change.
const (
	flagName         = "--allowed-endpoints"
	loopbackFlagName = "--allow-loopback-endpoints"
)

// Rules are the operator's settings that hold for every provider, whatever
// the allowlist says.
type Rules struct {
	// AllowInsecureHTTP allows plain http:// to any host
	// (--allow-insecure-http). Link-local and metadata addresses stay
	// refused, and loopback hosts unless AllowLoopback.
	AllowInsecureHTTP bool
	// AllowLoopback allows loopback hosts (127.0.0.0/8, ::1, localhost and
	// *.localhost, and the unspecified addresses, which connect to the
	// local host), plain http included (--allow-loopback-endpoints). Off,
	// a TokenRequest cannot reach the operator's own pod: a sidecar's
	// admin port, the metrics or probe listeners.
	AllowLoopback bool
	// AllowPrivate allows every private address (10.0.0.0/8,
	// 172.16.0.0/12, 192.168.0.0/16, 100.64.0.0/10, fc00::/7)
	// (--allow-private-endpoints). Off, a TokenRequest cannot reach the
	// cluster's Services, pods or nodes, unless PrivateEndpoints lists them.
	AllowPrivate bool
	// PrivateEndpoints lists the private hosts, host:ports and ranges
	// allowed without AllowPrivate (--allowed-private-endpoints).
	PrivateEndpoints *PrivateEndpoints
}

// Policy is the operator's endpoint allowlist and Rules. A provider with no
// entries may use any endpoint that passes the rules. A nil *Policy has no
// entries and the zero Rules: https only, no loopback. A Policy is not
// changed after it is built, so its methods are safe for concurrent use.
type Policy struct {
	Rules

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
// An entry the rules would refuse (plain http, a loopback host) is an error.
func Parse(spec string, rules Rules) (*Policy, error) {
	p := &Policy{Rules: rules}
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
func ParseFile(path string, rules Rules) (*Policy, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read endpoint policy: %w", err)
	}
	defer f.Close()

	p := &Policy{Rules: rules}
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
	e, err := parseEntry(value, p.Rules)
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

func parseEntry(value string, rules Rules) (prefix, error) {
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
	if t.loopback() && !rules.AllowLoopback {
		return prefix{}, fmt.Errorf("loopback hosts are refused unless %s is set", loopbackFlagName)
	}
	if t.ip.IsValid() && privateAddr(t.ip) && !rules.privateAllowed("", t.ip, t.port) {
		return prefix{}, fmt.Errorf("%s is a private address, refused unless %s lists it or %s is set", t.ip, privateFlagName, allowPrivateFlagName)
	}
	if t.scheme == "http" && !t.httpLoopback() && !rules.AllowInsecureHTTP {
		return prefix{}, fmt.Errorf("plain http:// is refused for non-loopback hosts unless insecure HTTP is allowed; use https://")
	}
	return prefix{scheme: t.scheme, host: t.host, path: path}, nil
}

// Merge returns a policy holding the entries of both p and other, as when
// entries come from both the flag and a file. Either may be nil. A rule
// allows what either side allows: both come from the operator's own
// configuration, and each side's entries were accepted under its rules.
func (p *Policy) Merge(other *Policy) *Policy {
	a, b := p.rules(), other.rules()
	merged := &Policy{Rules: Rules{
		AllowInsecureHTTP: a.AllowInsecureHTTP || b.AllowInsecureHTTP,
		AllowLoopback:     a.AllowLoopback || b.AllowLoopback,
		AllowPrivate:      a.AllowPrivate || b.AllowPrivate,
		PrivateEndpoints:  a.PrivateEndpoints.merge(b.PrivateEndpoints),
	}}
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

// rules returns p's Rules; a nil Policy has the zero Rules.
func (p *Policy) rules() Rules {
	if p == nil {
		return Rules{}
	}
	return p.Rules
}

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

// Check reports whether provider may send a login to rawURL, before any
// request is made. rawURL is the URL the login is sent to, the endpoint with
// the provider's login path joined (providers.LoginURL), so that a path
// cannot lead out of an allowed prefix. A refusal is a *providers.Error of
// kind EndpointNotAllowed whose message says what to change.
func (p *Policy) Check(provider, rawURL string) error {
	t, err := parseTarget(rawURL)
	if err != nil {
		return refuse(provider, rawURL, err.Error())
	}
	rules := p.rules()
	if t.ip.IsValid() && refusedAddr(t.ip) {
		return refuse(provider, rawURL, "link-local and cloud metadata addresses are always refused")
	}
	// Said the same for every port, and before anything is dialed: the
	// answer must not tell which of the pod's ports listen.
	if t.loopback() && !rules.AllowLoopback {
		return refuse(provider, rawURL, "the operator refuses loopback endpoints (it was started without "+loopbackFlagName+")")
	}
	// Like loopback, said before anything is dialed; a name resolving to a
	// private address is refused at the dial.
	if t.ip.IsValid() && privateAddr(t.ip) && !rules.privateAllowed("", t.ip, t.port) {
		return refuse(provider, rawURL, privateRefusal(t.ip, ""))
	}
	if t.scheme == "http" && !t.httpLoopback() && !rules.AllowInsecureHTTP {
		if rules.AllowLoopback {
			return refuse(provider, rawURL, "plain http:// is only allowed to loopback hosts; use https://")
		}
		return refuse(provider, rawURL, "plain http:// is refused; use https://")
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
		display(rawURL), provider, flagName, joinPrefixes(allowed))
}

// CheckURL is Check for a request about to be sent: the HTTP transport of
// every provider asks it (providers.Options.CheckURL), so that no request
// reaches a URL Check refuses, whichever code path built it.
func (p *Policy) CheckURL(provider string, u *url.URL) error {
	if u == nil {
		return refuse(provider, "", "the request has no URL")
	}
	return p.Check(provider, u.String())
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
	rules := p.rules()
	switch {
	case rules.AllowInsecureHTTP:
		b.WriteString("plain http: allowed (insecure); ")
	case rules.AllowLoopback:
		b.WriteString("plain http: loopback only; ")
	default:
		b.WriteString("plain http: refused; ")
	}
	if rules.AllowLoopback {
		b.WriteString("loopback: allowed (" + loopbackFlagName + "); ")
	} else {
		b.WriteString("loopback: refused; ")
	}
	switch {
	case rules.AllowPrivate:
		b.WriteString("private addresses: allowed (" + allowPrivateFlagName + "); ")
	case rules.PrivateEndpoints != nil:
		b.WriteString("private addresses: refused but for " + rules.PrivateEndpoints.String() + " (" + privateFlagName + "); ")
	default:
		b.WriteString("private addresses: refused; ")
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
	port   uint16     // the port connected to, the scheme's default when none is written
	path   string     // escaped path, as sent on the wire, in urlpath.Normalize's spelling
}

// loopback reports whether t names the local host: see localAddr, and the
// names localhost and *.localhost, which resolvers answer with loopback
// addresses (RFC 6761) without asking DNS.
func (t target) loopback() bool {
	if t.ip.IsValid() {
		return localAddr(t.ip)
	}
	name := strings.TrimSuffix(t.name, ".")
	return name == "localhost" || strings.HasSuffix(name, ".localhost")
}

// httpLoopback reports whether plain http to t stays on the local host, as
// AllowLoopback allows: a local IP address, or the name localhost, which the
// system resolves from its hosts file. Other *.localhost names are refused
// as loopback but not trusted to be one: a resolver need not answer them.
func (t target) httpLoopback() bool {
	if t.ip.IsValid() {
		return localAddr(t.ip)
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

	t.port = 443
	if t.scheme == "http" {
		t.port = 80
	}
	if port := u.Port(); port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return target{}, fmt.Errorf("port %q is out of range", port)
		}
		if n != int(t.port) {
			t.host += ":" + strconv.Itoa(n)
		}
		t.port = uint16(n)
	}

	// Judge and compare the escaped path, as the server receives it, in
	// one spelling ("%7E" and "~" alike). A path a server could read as
	// leaving its prefix (a dot segment, an encoded slash) is refused
	// rather than resolved.
	escaped := u.EscapedPath()
	if strings.Contains(raw, `\`) {
		// url.Parse escapes a backslash, so look at the raw string too.
		return target{}, urlpath.ErrSeparator
	}
	if err := urlpath.Check(escaped); err != nil {
		return target{}, err
	}
	t.path = urlpath.Normalize(escaped)
	return t, nil
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
