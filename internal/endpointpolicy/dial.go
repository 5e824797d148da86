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

// DialControl is a net.Dialer Control function that refuses to connect to
// link-local and cloud metadata addresses. It runs after name resolution and
// before connect, so it also catches DNS names that resolve to such an
// address. The error it returns is a *providers.Error of kind
// EndpointNotAllowed; the dialer wraps it in a *net.OpError.
func DialControl(network, address string, _ syscall.RawConn) error {
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
	return nil
}
