package endpointpolicy

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// The flags and Helm values that open private addresses; refusals name
// them so users know what an operator would have to change.
const (
	privateFlagName      = "--allowed-private-endpoints"
	allowPrivateFlagName = "--allow-private-endpoints"
	privateValueName     = "allowedPrivateEndpoints"
	allowPrivateValue    = "allowPrivateEndpoints"
)

// PrivateEndpoints lists the private addresses (privateRanges) a login may
// connect to: the operator's --allowed-private-endpoints. An entry lifts
// only the private-address refusal and restricts nothing else: a host it
// does not name is still judged by the allowlist and the other Rules. A
// nil *PrivateEndpoints lists nothing. It is not changed after it is built.
type PrivateEndpoints struct {
	entries []privateEntry
}

// privateEntry is one entry: a host name, or an address range (one address
// is a /32 or /128), with a port or for every port.
type privateEntry struct {
	name   string       // lowercase DNS name without a trailing dot; "" for a range
	prefix netip.Prefix // valid for a range: masked, IPv4 ranges in IPv4 form
	port   uint16       // 0: every port
}

func (e privateEntry) String() string {
	host := e.name
	if host == "" {
		host = e.prefix.String()
		if e.prefix.IsSingleIP() {
			host = e.prefix.Addr().String()
		}
	}
	if e.port == 0 {
		return host
	}
	return net.JoinHostPort(host, strconv.Itoa(int(e.port)))
}

// allows reports whether e lets a connection made for URL host name (""
// when unknown or an IP address) reach ip at port.
func (e privateEntry) allows(name string, ip netip.Addr, port uint16) bool {
	if e.port != 0 && e.port != port {
		return false
	}
	if e.name != "" {
		return name == e.name
	}
	return e.prefix.Contains(reached(ip))
}

// ParsePrivateEndpoints reads --allowed-private-endpoints: comma-separated
// entries, each a host name, an IP address or a CIDR range, a name or an
// address optionally with :port ([v6]:port for IPv6). A host name lets
// connections made for a URL with that host reach the private addresses it
// resolves to; an address or a range lets any connection reach it. An
// entry that could never open anything is an error: an address outside
// the private ranges (it needs no entry), a loopback host (see
// --allow-loopback-endpoints), or a link-local or metadata address (always
// refused). An empty spec gives nil.
func ParsePrivateEndpoints(spec string) (*PrivateEndpoints, error) {
	var p *PrivateEndpoints
	for _, item := range strings.Split(spec, ",") {
		if item = strings.TrimSpace(item); item == "" {
			continue
		}
		e, err := parsePrivateEntry(item)
		if err != nil {
			return nil, fmt.Errorf("entry %q: %w", item, err)
		}
		p = p.with(e)
	}
	return p, nil
}

func parsePrivateEntry(item string) (privateEntry, error) {
	if strings.Contains(item, "://") {
		return privateEntry{}, errors.New("write a host, host:port or CIDR range, not a URL")
	}
	if strings.Contains(item, "/") {
		prefix, err := netip.ParsePrefix(item)
		if err != nil {
			return privateEntry{}, errors.New("not a valid CIDR range (write e.g. 10.20.0.0/16 or fd00:10::/64)")
		}
		if prefix.Addr().Is4In6() {
			return privateEntry{}, errors.New("write an IPv4 range in IPv4 form (e.g. 10.20.0.0/16)")
		}
		prefix = prefix.Masked()
		if !slices.ContainsFunc(privateRanges, prefix.Overlaps) {
			return privateEntry{}, fmt.Errorf("%s lies outside the private ranges (%s), which are the only ones that need an entry", prefix, privateRangesText)
		}
		return privateEntry{prefix: prefix}, nil
	}

	host, port := item, uint16(0)
	if h, p, err := net.SplitHostPort(item); err == nil {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return privateEntry{}, fmt.Errorf("port %q is out of range", p)
		}
		host, port = h, uint16(n)
	} else if strings.HasPrefix(item, "[") && strings.HasSuffix(item, "]") {
		host = item[1 : len(item)-1]
	}

	if ip, err := netip.ParseAddr(host); err == nil {
		switch {
		case ip.Zone() != "":
			return privateEntry{}, errors.New("IPv6 zones are not allowed")
		case refusedAddr(ip):
			return privateEntry{}, fmt.Errorf("%s is a link-local or cloud metadata address, which is always refused", ip)
		case localAddr(ip):
			return privateEntry{}, fmt.Errorf("%s is a loopback address: loopback endpoints are allowed by %s", ip, loopbackFlagName)
		case !privateAddr(ip):
			return privateEntry{}, fmt.Errorf("%s is not in the private ranges (%s), which are the only ones that need an entry", ip, privateRangesText)
		}
		a := reached(ip)
		return privateEntry{prefix: netip.PrefixFrom(a, a.BitLen()), port: port}, nil
	}
	name := strings.TrimSuffix(strings.ToLower(host), ".")
	if err := checkHostname(name); err != nil {
		return privateEntry{}, err
	}
	if name == "localhost" || strings.HasSuffix(name, ".localhost") {
		return privateEntry{}, fmt.Errorf("%s is a loopback host: loopback endpoints are allowed by %s", name, loopbackFlagName)
	}
	return privateEntry{name: name, port: port}, nil
}

// with returns p with e added, unless it holds e already.
func (p *PrivateEndpoints) with(e privateEntry) *PrivateEndpoints {
	if p == nil {
		return &PrivateEndpoints{entries: []privateEntry{e}}
	}
	if slices.Contains(p.entries, e) {
		return p
	}
	return &PrivateEndpoints{entries: append(slices.Clip(p.entries), e)}
}

// merge returns the entries of both p and other; either may be nil.
func (p *PrivateEndpoints) merge(other *PrivateEndpoints) *PrivateEndpoints {
	if other == nil {
		return p
	}
	for _, e := range other.entries {
		p = p.with(e)
	}
	return p
}

func (p *PrivateEndpoints) allows(name string, ip netip.Addr, port uint16) bool {
	if p == nil {
		return false
	}
	for _, e := range p.entries {
		if e.allows(name, ip, port) {
			return true
		}
	}
	return false
}

// String lists the entries in the flag's syntax.
func (p *PrivateEndpoints) String() string {
	if p == nil {
		return ""
	}
	s := make([]string, len(p.entries))
	for i, e := range p.entries {
		s[i] = e.String()
	}
	return strings.Join(s, ",")
}

// privateAllowed reports whether the rules let a connection made for URL
// host name ("" when unknown or an IP address) reach private address ip at
// port.
func (r Rules) privateAllowed(name string, ip netip.Addr, port uint16) bool {
	return r.AllowPrivate || r.PrivateEndpoints.allows(name, ip, port)
}

// privateRefusal says why private address ip is refused and what the
// operator would set to allow it: an entry for name, the URL's host, when
// known, else for the address.
func privateRefusal(ip netip.Addr, name string) string {
	entry := name
	if entry == "" {
		entry = reached(ip).String()
	}
	return fmt.Sprintf("%s is a private address (where cluster Services and pods live), which the operator refuses unless started with %s=%s or %s (Helm values %s, %s)",
		reached(ip), privateFlagName, entry, allowPrivateFlagName, privateValueName, allowPrivateValue)
}

// parsePort reads a port number, 0 when it is not one.
func parsePort(s string) uint16 {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil {
		return 0
	}
	return uint16(n)
}
