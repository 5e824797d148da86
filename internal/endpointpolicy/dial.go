package endpointpolicy

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"syscall"

	"github.com/tokensync/tokensync/providers"
)

var (
	// Alibaba Cloud's metadata service sits outside 169.254.0.0/16.
	alibabaMetadata = netip.MustParseAddr("100.100.100.200")
	// AWS's IPv6 instance metadata service, and its EKS Pod Identity agent,
	// which hands out credentials just as readily.
	awsMetadataV6    = netip.MustParseAddr("fd00:ec2::254")
	awsPodIdentityV6 = netip.MustParseAddr("fd00:ec2::23")
	// Through a NAT64 gateway, 64:ff9b::a9fe:a9fe reaches 169.254.169.254.
	nat64 = netip.MustParsePrefix("64:ff9b::/96")
	// "This network": 0.0.0.0 connects to the local host on Linux.
	thisNetwork = netip.MustParsePrefix("0.0.0.0/8")
)

// privateRanges are where a cluster's Services, pods and nodes live: the
// RFC 1918 ranges, the shared address space of RFC 6598 (carrier-grade NAT,
// which some clouds use for pods), and IPv6 unique local addresses.
var privateRanges = []netip.Prefix{
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("fc00::/7"),
}

// privateRangesText lists privateRanges for messages.
const privateRangesText = "10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, 100.64.0.0/10, fc00::/7"

// reached is the address a connection to a reaches, as the refusals judge
// it: without a zone, an IPv4-mapped address as its IPv4 address, and a
// NAT64 address (64:ff9b::/96) as the IPv4 address the gateway forwards to.
func reached(a netip.Addr) netip.Addr {
	a = a.WithZone("").Unmap()
	if nat64.Contains(a) {
		b := a.As16()
		a = netip.AddrFrom4([4]byte(b[12:]))
	}
	return a
}

// refusedAddr reports whether a is link-local or a cloud metadata address,
// in any of its IPv6 spellings (IPv4-mapped, NAT64).
func refusedAddr(a netip.Addr) bool {
	a = reached(a)
	return a.IsLinkLocalUnicast() || a == alibabaMetadata || a == awsMetadataV6 || a == awsPodIdentityV6
}

// localAddr reports whether a connection to a reaches the local host: a
// loopback address (127.0.0.0/8, ::1), also IPv4-mapped, or an unspecified
// one (0.0.0.0/8, ::), which Linux connects to the local host.
func localAddr(a netip.Addr) bool {
	a = a.WithZone("").Unmap()
	return a.IsLoopback() || a.IsUnspecified() || thisNetwork.Contains(a)
}

// privateAddr reports whether a lies in one of privateRanges, in any of its
// IPv6 spellings (IPv4-mapped, NAT64).
func privateAddr(a netip.Addr) bool {
	a = reached(a)
	for _, r := range privateRanges {
		if r.Contains(a) {
			return true
		}
	}
	return false
}

// DialControl is DialControlContext without a request: name entries of
// Rules.PrivateEndpoints never match, since it cannot know which host the
// address was resolved from.
func (p *Policy) DialControl(network, address string, c syscall.RawConn) error {
	return p.DialControlContext(context.Background(), network, address, c)
}

// DialControlContext is a net.Dialer ControlContext function that refuses
// to connect to link-local and cloud metadata addresses, to loopback and
// unspecified addresses unless AllowLoopback, and to private addresses
// (privateRanges) unless AllowPrivate or PrivateEndpoints allows them. It
// runs after name resolution and before connect, so it also catches DNS
// names that resolve to such an address, and it refuses before any packet
// is sent, whether or not anything listens there. ctx is the context of
// the request the connection is dialed for; providers.DialHost(ctx) names
// the URL host the address was resolved from, which a host-name entry of
// PrivateEndpoints matches (the HTTP transport keys its pooled connections
// by that host, so a connection dialed for one host never serves
// another). The error it returns is a *providers.Error of kind
// EndpointNotAllowed; the dialer wraps it in a *net.OpError. A nil Policy
// refuses loopback and private addresses.
func (p *Policy) DialControlContext(ctx context.Context, network, address string, _ syscall.RawConn) error {
	if strings.HasPrefix(network, "unix") {
		return nil
	}
	host, port := address, ""
	if h, pt, err := net.SplitHostPort(address); err == nil {
		host, port = h, pt
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		// The dialer always passes a resolved IP; refuse what we cannot read.
		return providers.Errorf(providers.EndpointNotAllowed,
			"connection to %q refused by the operator's endpoint policy: not an IP address", address)
	}
	if refusedAddr(ip) {
		return providers.Errorf(providers.EndpointNotAllowed,
			"connection to %s refused by the operator's endpoint policy: link-local and cloud metadata addresses are always refused", address)
	}
	rules := p.rules()
	if localAddr(ip) && !rules.AllowLoopback {
		return providers.Errorf(providers.EndpointNotAllowed,
			"connection to %s refused by the operator's endpoint policy: the operator refuses loopback endpoints (it was started without %s)", address, loopbackFlagName)
	}
	if privateAddr(ip) {
		name := dialHostName(providers.DialHost(ctx))
		if !rules.privateAllowed(name, ip, parsePort(port)) {
			return providers.Errorf(providers.EndpointNotAllowed,
				"connection to %s refused by the operator's endpoint policy: %s", address, privateRefusal(ip, name))
		}
	}
	return nil
}

// dialHostName is the host name of a URL host (host or host:port) in the
// spelling entries use, or "" when host is empty, an IP address or not a
// valid DNS name: only a name can match a name entry.
func dialHostName(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if _, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		return ""
	}
	if checkHostname(host) != nil {
		return ""
	}
	return host
}
