package endpointpolicy

import (
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

// refusedAddr reports whether a is link-local or a cloud metadata address,
// in any of its IPv6 spellings (IPv4-mapped, NAT64).
func refusedAddr(a netip.Addr) bool {
	a = a.WithZone("").Unmap()
	if nat64.Contains(a) {
		b := a.As16()
		a = netip.AddrFrom4([4]byte(b[12:]))
	}
	return a.IsLinkLocalUnicast() || a == alibabaMetadata || a == awsMetadataV6 || a == awsPodIdentityV6
}

// localAddr reports whether a connection to a reaches the local host: a
// loopback address (127.0.0.0/8, ::1), also IPv4-mapped, or an unspecified
// one (0.0.0.0/8, ::), which Linux connects to the local host.
func localAddr(a netip.Addr) bool {
	a = a.WithZone("").Unmap()
	return a.IsLoopback() || a.IsUnspecified() || thisNetwork.Contains(a)
}

// DialControl is a net.Dialer Control function that refuses to connect to
// link-local and cloud metadata addresses, and to loopback and unspecified
// addresses unless AllowLoopback. It runs after name resolution and before
// connect, so it also catches DNS names that resolve to such an address,
// and it refuses before any packet is sent, whether or not anything
// listens there. The error it returns is a *providers.Error of kind
// EndpointNotAllowed; the dialer wraps it in a *net.OpError. A nil Policy
// refuses loopback.
func (p *Policy) DialControl(network, address string, _ syscall.RawConn) error {
	if strings.HasPrefix(network, "unix") {
		return nil
	}
	host := address
	if h, _, err := net.SplitHostPort(address); err == nil {
		host = h
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
	if localAddr(ip) && !p.rules().AllowLoopback {
		return providers.Errorf(providers.EndpointNotAllowed,
			"connection to %s refused by the operator's endpoint policy: the operator refuses loopback endpoints (it was started without %s)", address, loopbackFlagName)
	}
	return nil
}
