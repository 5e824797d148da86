package endpointpolicy

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokensync/tokensync/providers"
	"github.com/tokensync/tokensync/providers/builtin"
	"github.com/tokensync/tokensync/providers/providertest"
)

// TestDialControlAddresses: metadata and link-local addresses are refused by
// every policy; loopback and unspecified addresses (local) unless the
// policy has AllowLoopback.
func TestDialControlAddresses(t *testing.T) {
	tests := []struct {
		network, address string
		refused          bool
		local            bool
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

		{network: "tcp4", address: "169.253.255.255:443"},
		{network: "tcp4", address: "169.255.0.0:443"},
		{network: "tcp4", address: "100.100.100.201:443"},
		{network: "tcp4", address: "10.0.0.1:443"},
		{network: "tcp4", address: "128.0.0.1:443"},
		{network: "tcp4", address: "1.0.0.0:443"},
		{network: "tcp6", address: "[fd00:ec2::253]:443"},
		{network: "tcp6", address: "[2001:db8::1]:443"},
		{network: "unix", address: "/var/run/socket"},
	}
	loopback := &Policy{Rules: Rules{AllowLoopback: true}}
	for _, tt := range tests {
		t.Run(tt.network+" "+tt.address, func(t *testing.T) {
			for _, p := range []*Policy{nil, {}, {Rules: Rules{AllowInsecureHTTP: true}}, loopback} {
				err := p.DialControl(tt.network, tt.address, nil)
				refused := tt.refused || tt.local && p != loopback
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
