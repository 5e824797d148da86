package controllers

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
	"github.com/tokensync/tokensync/internal/endpointpolicy"
	"github.com/tokensync/tokensync/providers"
	"github.com/tokensync/tokensync/providers/providertest"
)

// Shared by the hardening tests: faults, hostile input, endpoint policy,
// leader election and leaks.

// Credentials each fake provider accepts.
var (
	amlCreds     = map[string]string{"email": "ops@example.com", "password": "correct-horse"}
	amplifiCreds = map[string]string{"credentials.json": `{"channel":"test","deviceTag":"tag-1","deviceData":{"platform":"test"}}`}
)

func credsFor(provider string) map[string]string {
	switch provider {
	case providertest.AML:
		return amlCreds
	case providertest.AmpliFi:
		return amplifiCreds
	}
	return partnerCreds
}

// newEnvWith is newEnv with the reconciler tuned after the defaults are set
// (a shorter client timeout, an endpoint policy, a wrapped client); tune
// sees the env, so it can use the fake's address.
func newEnvWith(t *testing.T, tune func(*env, *TokenRequestReconciler), fakeOpts ...providertest.Option) *env {
	t.Helper()
	e := &env{t: t, ns: newNamespace(t), fake: providertest.Start(t, fakeOpts...)}
	if tune != nil {
		e.extra = func(r *TokenRequestReconciler) { tune(e, r) }
	}
	e.start()
	return e
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

// in returns the env for use in a subtest: its helpers then fail t.
func (e *env) in(t *testing.T) *env {
	sub := *e
	sub.t = t
	return &sub
}

// waitEvent waits for an event of the TokenRequest starting with prefix
// ("Warning/ProviderUnavailable"): events are written asynchronously.
func (e *env) waitEvent(name, prefix string) {
	e.t.Helper()
	eventually(e.t, readyTimeout, func() error {
		if evs := e.events(name); !hasEvent(evs, prefix) {
			return fmt.Errorf("no %s event for %s: %v", prefix, name, evs)
		}
		return nil
	})
}

// withEndpoint sets the TokenRequest's endpoint.
func withEndpoint(endpoint string) func(*tokensyncv1alpha1.TokenRequest) {
	return func(tr *tokensyncv1alpha1.TokenRequest) { tr.Spec.Endpoint = endpoint }
}

// forceRefresh sets the force-refresh annotation to value.
func (e *env) forceRefresh(name, value string) {
	e.t.Helper()
	e.patchTokenRequest(name, func(tr *tokensyncv1alpha1.TokenRequest) {
		if tr.Annotations == nil {
			tr.Annotations = map[string]string{}
		}
		tr.Annotations[tokensyncv1alpha1.AnnotationForceRefresh] = value
	})
}

// dialLog records the addresses an HTTP client dialed.
type dialLog struct {
	mu    sync.Mutex
	addrs []string
}

func (d *dialLog) add(a string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.addrs = append(d.addrs, a)
}

func (d *dialLog) all() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.addrs...)
}

// policyDialControl is the operator's DialControl (endpointpolicy.DialControl,
// as main.go wires it), recording each address and, after the policy has had
// its say, refusing anything off loopback: tests never leave the machine.
func policyDialControl(log *dialLog) func(network, address string, c syscall.RawConn) error {
	return func(network, address string, c syscall.RawConn) error {
		if log != nil {
			log.add(address)
		}
		if err := endpointpolicy.DialControl(network, address, c); err != nil {
			return err
		}
		host, _, err := net.SplitHostPort(address)
		if err != nil {
			host = address
		}
		if ip, err := netip.ParseAddr(host); err != nil || !ip.Unmap().IsLoopback() {
			return fmt.Errorf("the test refuses to dial %s: tests stay on loopback", address)
		}
		return nil
	}
}

// resolvingClient is an HTTP client like the one providers build (one
// total timeout, no redirects, no proxy) whose dialer runs DialControl
// after resolving names with resolver. providers.Options has no resolver
// hook, so a test that controls DNS builds its own client.
func resolvingClient(timeout time.Duration, resolver *net.Resolver, control func(string, string, syscall.RawConn) error) *http.Client {
	dialer := &net.Dialer{Timeout: timeout, Resolver: resolver, Control: control}
	return &http.Client{
		Timeout:       timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport: &http.Transport{
			DialContext:           dialer.DialContext,
			ResponseHeaderTimeout: timeout,
			MaxIdleConnsPerHost:   4,
		},
	}
}

// fakeDNS is an in-process DNS server on loopback UDP answering A and AAAA
// queries from a fixed table, and NXDOMAIN for every other name: a resolver
// pointed at it never asks the network.
type fakeDNS struct {
	conn    net.PacketConn
	records map[string][]netip.Addr // lowercase name without the trailing dot
	queries atomic.Int32
}

func startFakeDNS(t *testing.T, records map[string][]netip.Addr) *fakeDNS {
	t.Helper()
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("fake DNS: %v", err)
	}
	d := &fakeDNS{conn: conn, records: records}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			n, from, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			d.queries.Add(1)
			if reply := d.answer(buf[:n]); reply != nil {
				_, _ = conn.WriteTo(reply, from)
			}
		}
	}()
	t.Cleanup(func() {
		conn.Close()
		<-done
	})
	return d
}

// resolver returns a pure-Go resolver that sends every query to d.
func (d *fakeDNS) resolver() *net.Resolver {
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var dialer net.Dialer
			return dialer.DialContext(ctx, "udp", d.conn.LocalAddr().String())
		},
	}
}

// answer builds the reply to one query: the question echoed, then the A
// (type 1) or AAAA (type 28) records of the name.
func (d *fakeDNS) answer(q []byte) []byte {
	if len(q) < 12 || binary.BigEndian.Uint16(q[4:6]) != 1 {
		return nil
	}
	var labels []string
	i := 12
	for {
		if i >= len(q) {
			return nil
		}
		n := int(q[i])
		i++
		if n == 0 {
			break
		}
		if n > 63 || i+n > len(q) {
			return nil
		}
		labels = append(labels, string(q[i:i+n]))
		i += n
	}
	if i+4 > len(q) {
		return nil
	}
	qtype := binary.BigEndian.Uint16(q[i : i+2])
	question := q[12 : i+4]

	addrs, known := d.records[strings.ToLower(strings.Join(labels, "."))]
	var answers [][]byte
	for _, a := range addrs {
		if (qtype == 1 && a.Is4()) || (qtype == 28 && a.Is6()) {
			answers = append(answers, a.AsSlice())
		}
	}
	reply := make([]byte, 12, 512)
	copy(reply[0:2], q[0:2])                                     // ID
	flags := uint16(0x8000|0x0400|0x0080) | uint16(q[2]&0x01)<<8 // QR, AA, RA, RD copied
	if !known {
		flags |= 3 // NXDOMAIN
	}
	binary.BigEndian.PutUint16(reply[2:4], flags)
	binary.BigEndian.PutUint16(reply[4:6], 1)
	binary.BigEndian.PutUint16(reply[6:8], uint16(len(answers)))
	reply = append(reply, question...)
	for _, rdata := range answers {
		rr := []byte{0xc0, 12} // the name: a pointer to the question's
		rr = binary.BigEndian.AppendUint16(rr, qtype)
		rr = binary.BigEndian.AppendUint16(rr, 1) // class IN
		rr = binary.BigEndian.AppendUint32(rr, 5) // TTL
		rr = binary.BigEndian.AppendUint16(rr, uint16(len(rdata)))
		reply = append(reply, append(rr, rdata...)...)
	}
	return reply
}

// countingProviders wraps every provider of a registry to count its logins.
func countingProviders(reg providers.Registry, n *atomic.Int32) providers.Registry {
	out := providers.Registry{}
	for name, r := range reg {
		r.Provider = countedProvider{inner: r.Provider, n: n}
		out[name] = r
	}
	return out
}

type countedProvider struct {
	inner providers.Provider
	n     *atomic.Int32
}

func (p countedProvider) Login(ctx context.Context, endpoint string, creds providers.Credentials) (*providers.Token, error) {
	p.n.Add(1)
	return p.inner.Login(ctx, endpoint, creds)
}

// Validate keeps the precheck of the wrapped provider.
func (p countedProvider) Validate(creds providers.Credentials) error {
	if v, ok := p.inner.(providers.Validator); ok {
		return v.Validate(creds)
	}
	return nil
}
