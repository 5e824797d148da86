package endpointpolicy

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tokensync/tokensync/providers"
	"github.com/tokensync/tokensync/providers/builtin"
	"github.com/tokensync/tokensync/providers/providertest"
)

// TestDialControlAddresses: metadata and link-local addresses are refused by
// every policy; loopback and unspecified addresses (local) unless the
// policy has AllowLoopback; private addresses unless it has AllowPrivate
// (see TestDialControlPrivate for the entries).
func TestDialControlAddresses(t *testing.T) {
	tests := []struct {
		network, address string
		refused          bool
		local            bool
		private          bool
	}{
		{network: "tcp4", address: "169.254.169.254:80", refused: true},
		{network: "tcp4", address: "169.254.0.1:443", refused: true},
		{network: "tcp4", address: "169.254.255.255:443", refused: true},
		{network: "tcp4", address: "100.100.100.200:80", refused: true},
		{network: "tcp6", address: "[fd00:ec2::254]:80", refused: true},
		{network: "tcp6", address: "[fd00:ec2::23]:80", refused: true},
		{network: "tcp6", address: "[fe80::1%eth0]:443", refused: true},
		{network: "tcp6", address: "[::ffff:169.254.169.254]:80", refused: true},
		{network: "tcp6", address: "[::ffff:100.100.100.200]:80", refused: true},
		{network: "tcp6", address: "[64:ff9b::a9fe:a9fe]:80", refused: true},
		{network: "udp4", address: "169.254.169.254:53", refused: true},
		{network: "tcp", address: "169.254.169.254", refused: true},
		{network: "tcp", address: "not-an-ip:80", refused: true},

		{network: "tcp4", address: "127.0.0.1:8080", local: true},
		{network: "tcp4", address: "127.0.0.1:15000", local: true},
		{network: "tcp4", address: "127.1.2.3:80", local: true},
		{network: "tcp6", address: "[::1]:8080", local: true},
		{network: "tcp6", address: "[::ffff:127.0.0.1]:15000", local: true},
		{network: "tcp4", address: "0.0.0.0:15000", local: true},
		{network: "tcp4", address: "0.1.2.3:80", local: true},
		{network: "tcp6", address: "[::]:15000", local: true},
		{network: "tcp6", address: "[::ffff:0.0.0.0]:15000", local: true},
		{network: "udp4", address: "127.0.0.53:53", local: true},

		{network: "tcp4", address: "100.100.100.201:443", private: true},
		{network: "tcp4", address: "10.0.0.1:443", private: true},
		{network: "tcp6", address: "[fd00:ec2::253]:443", private: true},

		{network: "tcp4", address: "169.253.255.255:443"},
		{network: "tcp4", address: "169.255.0.0:443"},
		{network: "tcp4", address: "128.0.0.1:443"},
		{network: "tcp4", address: "1.0.0.0:443"},
		{network: "tcp6", address: "[2001:db8::1]:443"},
		{network: "unix", address: "/var/run/socket"},
	}
	loopback := &Policy{Rules: Rules{AllowLoopback: true}}
	private := &Policy{Rules: Rules{AllowPrivate: true}}
	for _, tt := range tests {
		t.Run(tt.network+" "+tt.address, func(t *testing.T) {
			for _, p := range []*Policy{nil, {}, {Rules: Rules{AllowInsecureHTTP: true}}, loopback, private} {
				err := p.DialControl(tt.network, tt.address, nil)
				refused := tt.refused || tt.local && p != loopback || tt.private && p != private
				if !refused {
					if err != nil {
						t.Fatalf("policy %v: DialControl(%q, %q) = %v, want nil", p, tt.network, tt.address, err)
					}
					continue
				}
				pe := wantNotAllowed(t, err)
				if tt.local {
					if want := "connection to " + tt.address + " refused by the operator's endpoint policy: the operator refuses loopback endpoints (it was started without --allow-loopback-endpoints)"; pe.Message != want {
						t.Errorf("message %q, want %q", pe.Message, want)
					}
				}
			}
		})
	}
}

// TestDialerRefusesMetadata dials through a real net.Dialer: Control runs
// after the socket exists and before connect, so nothing is sent.
func TestDialerRefusesMetadata(t *testing.T) {
	for _, address := range []string{"169.254.169.254:80", "100.100.100.200:80", "[fd00:ec2::254]:80"} {
		t.Run(address, func(t *testing.T) {
			d := net.Dialer{Control: (*Policy)(nil).DialControl, Timeout: 2 * time.Second}
			start := time.Now()
			_, err := d.Dial("tcp", address)
			if err != nil && strings.Contains(err.Error(), "address family not supported") {
				t.Skip("no IPv6 sockets here")
			}
			wantNotAllowed(t, err)
			if elapsed := time.Since(start); elapsed > time.Second {
				t.Errorf("refusal took %v; Control should refuse before connecting", elapsed)
			}
		})
	}
}

// listenLoopback listens on 127.0.0.1 and counts the connections accepted.
func listenLoopback(t *testing.T) (port string, accepted *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	accepted = &atomic.Int32{}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	_, port, _ = net.SplitHostPort(ln.Addr().String())
	return port, accepted
}

func TestDialerAllowsLoopbackWhenAllowed(t *testing.T) {
	port, accepted := listenLoopback(t)
	p := &Policy{Rules: Rules{AllowLoopback: true}}
	d := net.Dialer{Control: p.DialControl, Timeout: 2 * time.Second}
	// "localhost" goes through the system resolver and may yield ::1 first,
	// where nothing listens; the dialer then falls back to 127.0.0.1.
	for _, address := range []string{net.JoinHostPort("127.0.0.1", port), net.JoinHostPort("localhost", port)} {
		c, err := d.Dial("tcp", address)
		if err != nil {
			t.Fatalf("Dial(%q) = %v, want a connection", address, err)
		}
		c.Close()
	}
	if accepted.Load() == 0 {
		t.Error("the listener accepted nothing")
	}
}

// TestDialerRefusesLoopback: without AllowLoopback, a dial to a loopback
// listener fails before connecting, whichever spelling reaches it, and the
// listener never sees a connection.
func TestDialerRefusesLoopback(t *testing.T) {
	port, accepted := listenLoopback(t)
	for _, p := range []*Policy{nil, {Rules: Rules{AllowInsecureHTTP: true}}} {
		d := net.Dialer{Control: p.DialControl, Timeout: 2 * time.Second}
		for _, host := range []string{"127.0.0.1", "localhost", "0.0.0.0"} {
			_, err := d.Dial("tcp4", net.JoinHostPort(host, port))
			wantNotAllowed(t, err)
		}
	}
	time.Sleep(50 * time.Millisecond)
	if n := accepted.Load(); n != 0 {
		t.Errorf("the loopback listener accepted %d connections, want none", n)
	}
}

// TestDialerRefusesNameResolvingToMetadata resolves names through an
// in-memory DNS server, so a harmless-looking name can point at the
// metadata address without any packet leaving the process.
func TestDialerRefusesNameResolvingToMetadata(t *testing.T) {
	port, accepted := listenLoopback(t)
	loopback := &Policy{Rules: Rules{AllowLoopback: true}}
	d := net.Dialer{
		Control: loopback.DialControl,
		Timeout: 2 * time.Second,
		Resolver: &net.Resolver{PreferGo: true, Dial: fakeDNS(t, map[string]netip.Addr{
			"metadata.tokensync.test.": netip.MustParseAddr("169.254.169.254"),
			"alibaba.tokensync.test.":  netip.MustParseAddr("100.100.100.200"),
			"169.254.169.254.nip.io.":  netip.MustParseAddr("169.254.169.254"),
			"mapped.tokensync.test.":   netip.MustParseAddr("::ffff:169.254.169.254"),
			"aws6.tokensync.test.":     netip.MustParseAddr("fd00:ec2::254"),
			"loopback.tokensync.test.": netip.MustParseAddr("127.0.0.1"),
		})},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	names := []string{"metadata.tokensync.test.", "alibaba.tokensync.test.", "169.254.169.254.nip.io.", "mapped.tokensync.test."}
	if haveIPv6() {
		names = append(names, "aws6.tokensync.test.")
	}
	for _, name := range names {
		_, err := d.DialContext(ctx, "tcp", net.JoinHostPort(name, "80"))
		wantNotAllowed(t, err)
	}

	c, err := d.DialContext(ctx, "tcp4", net.JoinHostPort("loopback.tokensync.test.", port))
	if err != nil {
		t.Fatalf("dial a name resolving to loopback: %v", err)
	}
	c.Close()
	for deadline := time.Now().Add(2 * time.Second); accepted.Load() == 0 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	before := accepted.Load()

	// Without AllowLoopback the same name is refused at the dial.
	d.Control = (*Policy)(nil).DialControl
	_, err = d.DialContext(ctx, "tcp4", net.JoinHostPort("loopback.tokensync.test.", port))
	if pe := wantNotAllowed(t, err); !strings.Contains(pe.Message, "--allow-loopback-endpoints") {
		t.Errorf("message %q does not name --allow-loopback-endpoints", pe.Message)
	}
	time.Sleep(50 * time.Millisecond)
	if accepted.Load() != before {
		t.Error("the refused dial reached the listener")
	}
}

// haveIPv6 reports whether this machine can open IPv6 sockets; without
// them a dial fails before DialControl runs.
func haveIPv6() bool {
	l, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// TestProvidersRefuseMetadataAtDial: the second layer on its own. Without
// any Check, every built-in provider, built as main.go builds them (with
// DialControl in providers.Options), refuses to connect to a metadata
// address and says so in a message naming the address.
func TestProvidersRefuseMetadataAtDial(t *testing.T) {
	registry := builtin.NewRegistry(providers.Options{Timeout: 5 * time.Second, DialControl: (*Policy)(nil).DialControl})
	addresses := []string{"169.254.169.254:443"}
	if haveIPv6() {
		addresses = append(addresses, "[fd00:ec2::254]:443")
	}
	for name, e := range registry {
		for _, address := range addresses {
			t.Run(name+" "+address, func(t *testing.T) {
				// Credentials and settings as the provider's fake takes them.
				f, ok := providertest.FakeOf(name)
				if !ok {
					t.Fatalf("provider %s has no test registration (providertest.FakeOf)", name)
				}
				c := providers.Credentials{}
				for k, v := range f.Credentials {
					c[k] = []byte(v)
				}
				p := e.Provider
				if configurable, ok := p.(providers.Configurable); ok {
					var err error
					if p, err = configurable.WithSettings([]byte(f.Settings)); err != nil {
						t.Fatalf("settings of %s: %v", name, err)
					}
				}
				start := time.Now()
				_, err := p.Login(context.Background(), f.Endpoint("https://"+address), c)
				pe := wantNotAllowed(t, err)
				if want := "connection to " + address + " refused by the operator's endpoint policy"; !strings.Contains(pe.Message, want) {
					t.Errorf("message %q does not contain %q", pe.Message, want)
				}
				if elapsed := time.Since(start); elapsed > 2*time.Second {
					t.Errorf("refusal took %v; DialControl should refuse before connecting", elapsed)
				}
			})
		}
	}
}

// fakeDNS returns a net.Resolver Dial function answering A and AAAA
// queries from names over an in-memory stream connection (DNS over TCP
// framing).
func fakeDNS(t *testing.T, names map[string]netip.Addr) func(ctx context.Context, network, address string) (net.Conn, error) {
	return func(ctx context.Context, network, address string) (net.Conn, error) {
		client, server := net.Pipe()
		go func() {
			defer server.Close()
			server.SetDeadline(time.Now().Add(5 * time.Second))
			var size [2]byte
			if _, err := readFull(server, size[:]); err != nil {
				return
			}
			query := make([]byte, binary.BigEndian.Uint16(size[:]))
			if _, err := readFull(server, query); err != nil {
				return
			}
			answer, err := dnsAnswer(query, names)
			if err != nil {
				t.Errorf("fake DNS: %v", err)
				return
			}
			binary.BigEndian.PutUint16(size[:], uint16(len(answer)))
			server.Write(append(size[:], answer...))
		}()
		return client, nil
	}
}

func readFull(c net.Conn, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := c.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// dnsAnswer builds the reply to a one-question query: an A record (for an
// IPv4 address) or an AAAA record (for an IPv6 one, IPv4-mapped included)
// when the name is known and the type fits, otherwise an authoritative
// empty answer.
func dnsAnswer(query []byte, names map[string]netip.Addr) ([]byte, error) {
	if len(query) < 12 {
		return nil, errors.New("short query")
	}
	// The question: labels up to the root, then type and class.
	var name strings.Builder
	i := 12
	for {
		if i >= len(query) {
			return nil, errors.New("truncated question")
		}
		n := int(query[i])
		i++
		if n == 0 {
			break
		}
		if i+n > len(query) {
			return nil, errors.New("truncated label")
		}
		name.WriteString(strings.ToLower(string(query[i:i+n])) + ".")
		i += n
	}
	if i+4 > len(query) {
		return nil, errors.New("truncated question")
	}
	qtype := binary.BigEndian.Uint16(query[i:])
	question := query[12 : i+4]

	addr, known := names[name.String()]
	answers := uint16(0)
	if known && (qtype == 1 && addr.Is4() || qtype == 28 && addr.Is6()) {
		answers = 1
	}
	reply := make([]byte, 12, 12+len(question)+16)
	copy(reply, query[:2])                         // ID
	binary.BigEndian.PutUint16(reply[2:], 0x8580)  // response, authoritative, recursion desired and available
	binary.BigEndian.PutUint16(reply[4:], 1)       // questions
	binary.BigEndian.PutUint16(reply[6:], answers) // answers
	reply = append(reply, question...)
	if answers == 1 {
		rdata := addr.AsSlice()
		reply = append(reply, 0xc0, 12) // name: pointer to the question's
		reply = binary.BigEndian.AppendUint16(reply, qtype)
		reply = append(reply,
			0, 1, // class IN
			0, 0, 0, 60, // TTL
			0, byte(len(rdata)))
		reply = append(reply, rdata...)
	}
	return reply, nil
}

// privateAddresses are one address of each private range, also in their
// IPv4-mapped and NAT64 spellings, as DialControl is asked about them.
var privateAddresses = []string{
	"10.0.0.1:443",
	"10.255.255.254:8443",
	"172.16.0.1:443",
	"172.31.255.255:443",
	"192.168.1.1:443",
	"100.64.0.1:443",
	"100.127.255.254:443",
	"[fd00::1]:443",
	"[fc00::1]:443",
	"[fdff:ffff::1]:443",
	"[::ffff:10.0.0.1]:443",
	"[::ffff:ac10:1]:443",   // 172.16.0.1
	"[::ffff:c0a8:101]:443", // 192.168.1.1
	"[64:ff9b::a00:1]:443",  // NAT64, 10.0.0.1
	"[64:ff9b::100.64.0.1]:443",
}

// TestDialControlPrivate: every private address is refused by default,
// with a message naming both flags and their Helm values; AllowPrivate
// opens them all, and an entry of PrivateEndpoints what it lists. Their
// neighbours outside the ranges are allowed by every policy.
func TestDialControlPrivate(t *testing.T) {
	for _, address := range privateAddresses {
		t.Run(address, func(t *testing.T) {
			for _, p := range []*Policy{nil, {}, {Rules: Rules{AllowInsecureHTTP: true, AllowLoopback: true}}} {
				pe := wantNotAllowed(t, p.DialControlContext(context.Background(), "tcp", address, nil))
				for _, want := range []string{"connection to " + address + " refused by the operator's endpoint policy: ",
					"is a private address", "--allowed-private-endpoints=", "--allow-private-endpoints", "allowedPrivateEndpoints", "allowPrivateEndpoints"} {
					if !strings.Contains(pe.Message, want) {
						t.Errorf("message %q does not contain %q", pe.Message, want)
					}
				}
			}
			if err := (&Policy{Rules: Rules{AllowPrivate: true}}).DialControlContext(context.Background(), "tcp", address, nil); err != nil {
				t.Errorf("with AllowPrivate: %v", err)
			}
		})
	}
	for _, address := range []string{"9.255.255.255:443", "11.0.0.0:443", "172.15.255.255:443", "172.32.0.0:443", "192.167.255.255:443",
		"192.169.0.0:443", "100.63.255.255:443", "100.128.0.0:443", "[fbff::1]:443", "[fe00::1]:443", "[::ffff:b00:1]:443", "[64:ff9b::b00:1]:443"} {
		if err := (*Policy)(nil).DialControlContext(context.Background(), "tcp", address, nil); err != nil {
			t.Errorf("DialControl(%q) = %v, want allowed: not a private address", address, err)
		}
	}
}

// TestDialControlPrivateEntries: what each kind of --allowed-private-endpoints
// entry lets a connection reach. A host-name entry matches the URL host the
// connection is dialed for (providers.DialHost), never the address alone.
func TestDialControlPrivateEntries(t *testing.T) {
	tests := []struct {
		name    string
		entries string
		host    string // the URL host dialed for, "" when unknown
		address string
		allowed bool
	}{
		{name: "ip", entries: "10.0.0.1", address: "10.0.0.1:443", allowed: true},
		{name: "ip, other port", entries: "10.0.0.1", address: "10.0.0.1:8443", allowed: true},
		{name: "ip, mapped", entries: "10.0.0.1", address: "[::ffff:10.0.0.1]:443", allowed: true},
		{name: "ip, nat64", entries: "10.0.0.1", address: "[64:ff9b::a00:1]:443", allowed: true},
		{name: "ip, another address", entries: "10.0.0.1", address: "10.0.0.2:443"},
		{name: "ip, whatever the host", entries: "10.0.0.1", host: "anything.example:443", address: "10.0.0.1:443", allowed: true},
		{name: "ip:port", entries: "10.0.0.1:443", address: "10.0.0.1:443", allowed: true},
		{name: "ip:port, other port", entries: "10.0.0.1:443", address: "10.0.0.1:8443"},
		{name: "ipv6", entries: "fd00::1", address: "[fd00::1]:443", allowed: true},
		{name: "ipv6:port", entries: "[fd00::1]:8443", address: "[fd00::1]:8443", allowed: true},
		{name: "ipv6:port, other port", entries: "[fd00::1]:8443", address: "[fd00::1]:443"},
		{name: "cidr", entries: "10.20.0.0/16", address: "10.20.3.4:443", allowed: true},
		{name: "cidr, outside", entries: "10.20.0.0/16", address: "10.21.0.1:443"},
		{name: "cidr, mapped", entries: "192.168.0.0/16", address: "[::ffff:c0a8:101]:443", allowed: true},
		{name: "cidr 100.64/10", entries: "100.64.0.0/10", address: "100.64.0.1:443", allowed: true},
		{name: "cidr v6", entries: "fd00::/8", address: "[fd00::1]:443", allowed: true},
		{name: "cidr v6, other range", entries: "fd00::/8", address: "[fc00::1]:443"},
		{name: "name", entries: "idp.tokensync.test", host: "idp.tokensync.test", address: "10.0.0.1:443", allowed: true},
		{name: "name, with the URL's port", entries: "idp.tokensync.test", host: "idp.tokensync.test:8443", address: "10.0.0.1:8443", allowed: true},
		{name: "name, case and trailing dot", entries: "idp.tokensync.test", host: "IDP.Tokensync.Test.:443", address: "192.168.1.1:443", allowed: true},
		{name: "name, any private address it resolves to", entries: "idp.tokensync.test", host: "idp.tokensync.test", address: "[fd00::1]:443", allowed: true},
		{name: "name, another host", entries: "idp.tokensync.test", host: "other.tokensync.test", address: "10.0.0.1:443"},
		{name: "name, a subdomain", entries: "idp.tokensync.test", host: "x.idp.tokensync.test", address: "10.0.0.1:443"},
		{name: "name, host unknown", entries: "idp.tokensync.test", address: "10.0.0.1:443"},
		{name: "name, an IP host", entries: "idp.tokensync.test", host: "10.0.0.1", address: "10.0.0.1:443"},
		{name: "name:port", entries: "idp.tokensync.test:8443", host: "idp.tokensync.test:8443", address: "10.0.0.1:8443", allowed: true},
		{name: "name:port, other port", entries: "idp.tokensync.test:8443", host: "idp.tokensync.test", address: "10.0.0.1:443"},
		{name: "several", entries: "idp.tokensync.test,10.20.0.0/16", host: "other.tokensync.test", address: "10.20.0.9:443", allowed: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &Policy{Rules: Rules{PrivateEndpoints: mustPrivate(t, tt.entries)}}
			ctx := context.Background()
			if tt.host != "" {
				ctx = providers.WithDialHost(ctx, tt.host)
			}
			err := p.DialControlContext(ctx, "tcp", tt.address, nil)
			if tt.allowed {
				if err != nil {
					t.Fatalf("entries %q, host %q: DialControl(%q) = %v, want allowed", tt.entries, tt.host, tt.address, err)
				}
				return
			}
			pe := wantNotAllowed(t, err)
			// The message suggests an entry for the URL's host name when
			// there is one, else for the address.
			want := "--allowed-private-endpoints=" + strings.Trim(tt.address[:strings.LastIndex(tt.address, ":")], "[]")
			if name := dialHostName(tt.host); name != "" {
				want = "--allowed-private-endpoints=" + name + " "
			}
			if !strings.Contains(pe.Message, want) {
				t.Errorf("message %q does not contain %q", pe.Message, want)
			}
		})
	}
}

// TestDialControlPrivateKeepsOtherRefusals: opening private addresses,
// all or by entries, opens nothing else: link-local and metadata addresses
// (some of which lie in 100.64.0.0/10 and fc00::/7) stay refused, and
// loopback stays refused without AllowLoopback.
func TestDialControlPrivateKeepsOtherRefusals(t *testing.T) {
	entries := mustPrivate(t, "100.64.0.0/10,fd00::/8,fc00::/7,10.0.0.0/8,metadata.tokensync.test")
	policies := []*Policy{
		{Rules: Rules{AllowPrivate: true}},
		{Rules: Rules{PrivateEndpoints: entries}},
		{Rules: Rules{AllowPrivate: true, PrivateEndpoints: entries, AllowInsecureHTTP: true}},
	}
	ctx := providers.WithDialHost(context.Background(), "metadata.tokensync.test")
	for _, address := range []string{"169.254.169.254:80", "100.100.100.200:80", "[fd00:ec2::254]:80", "[fd00:ec2::23]:80",
		"[fe80::1]:443", "[::ffff:100.100.100.200]:80", "[64:ff9b::a9fe:a9fe]:80", "[64:ff9b::6464:64c8]:80"} {
		for _, p := range policies {
			pe := wantNotAllowed(t, p.DialControlContext(ctx, "tcp", address, nil))
			if !strings.Contains(pe.Message, "always refused") {
				t.Errorf("policy %v: %s: message %q, want the metadata refusal", p, address, pe.Message)
			}
		}
	}
	for _, address := range []string{"127.0.0.1:15000", "[::1]:15000", "0.0.0.0:15000"} {
		for _, p := range policies {
			pe := wantNotAllowed(t, p.DialControlContext(ctx, "tcp", address, nil))
			if !strings.Contains(pe.Message, "--allow-loopback-endpoints") {
				t.Errorf("policy %v: %s: message %q, want the loopback refusal", p, address, pe.Message)
			}
		}
	}
}

// TestPrivateHostNameThroughTransport: a host-name entry works through
// net/http as the providers' client uses it: the client names each
// request's URL host in its context (providers.WithDialHost), the transport
// resolves the name and dials with the request's context values, and
// DialControlContext sees the resolved address beside the host. A name
// the entry does not list, resolving to the same private address, is
// refused. Nothing listens at the private address, so the test's control
// stops a dial the policy allowed with errDialAllowed.
func TestPrivateHostNameThroughTransport(t *testing.T) {
	errDialAllowed := errors.New("the policy allowed the dial")
	p := &Policy{Rules: Rules{PrivateEndpoints: mustPrivate(t, "idp.tokensync.test")}}
	var seen []string
	dialer := &net.Dialer{
		Timeout: 2 * time.Second,
		Resolver: &net.Resolver{PreferGo: true, Dial: fakeDNS(t, map[string]netip.Addr{
			"idp.tokensync.test.":   netip.MustParseAddr("10.0.0.1"),
			"other.tokensync.test.": netip.MustParseAddr("10.0.0.1"),
		})},
		ControlContext: func(ctx context.Context, network, address string, c syscall.RawConn) error {
			seen = append(seen, providers.DialHost(ctx)+" "+address)
			if err := p.DialControlContext(ctx, network, address, c); err != nil {
				return err
			}
			return errDialAllowed
		},
	}
	client := &http.Client{Transport: dialHostTransport{&http.Transport{DialContext: dialer.DialContext}}}

	_, err := client.Get("http://idp.tokensync.test:8080/login")
	if !errors.Is(err, errDialAllowed) {
		t.Errorf("a listed name resolving to 10.0.0.1: %v, want the dial allowed", err)
	}
	_, err = client.Get("http://other.tokensync.test:8080/login")
	if pe := wantNotAllowed(t, err); !strings.Contains(pe.Message, "--allowed-private-endpoints=other.tokensync.test ") {
		t.Errorf("message %q does not suggest an entry for other.tokensync.test", pe.Message)
	}
	want := []string{"idp.tokensync.test:8080 10.0.0.1:8080", "other.tokensync.test:8080 10.0.0.1:8080"}
	if strings.Join(seen, ", ") != strings.Join(want, ", ") {
		t.Errorf("dials seen %q, want %q", seen, want)
	}
}

// dialHostTransport names each request's URL host in its context, as the
// providers' client does (providers/internal/login, userAgentTransport).
type dialHostTransport struct{ base http.RoundTripper }

func (t dialHostTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	return t.base.RoundTrip(r.Clone(providers.WithDialHost(r.Context(), r.URL.Host)))
}
