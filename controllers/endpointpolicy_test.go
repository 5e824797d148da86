package controllers

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
	"github.com/tokensync/tokensync/internal/endpointpolicy"
	"github.com/tokensync/tokensync/providers"
	"github.com/tokensync/tokensync/providers/builtin"
	"github.com/tokensync/tokensync/providers/providertest"
)

// The endpoint policy itself (which endpoints and addresses it refuses) is
// tested in internal/endpointpolicy. These tests check the reconciler's use
// of it: a refused endpoint ends Ready=False EndpointNotAllowed with a
// Warning event, and nothing is sent.

// refusal is one TokenRequest the endpoint policy must refuse.
type refusal struct {
	name, provider, endpoint string
	// message is part of the condition message.
	message string
	// dialed is the address the HTTP client tried (and DialControl
	// refused) when the refusal comes from the dialed address; "" when
	// nothing may be dialed at all.
	dialed string
}

// expectRefusals creates each TokenRequest and checks it ends Ready=False
// EndpointNotAllowed with a Warning event, and that nothing was dialed but
// the refused addresses and the fake (for the tests' positive controls).
func expectRefusals(t *testing.T, e *env, dials *dialLog, cases []refusal) {
	t.Helper()
	for _, c := range cases {
		if _, err := e.secret(c.provider + "-creds"); err != nil {
			e.createSecret(c.provider+"-creds", credsFor(c.provider))
		}
		e.createTokenRequest(c.name, c.provider, c.provider+"-creds", withEndpoint(c.endpoint))
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := e.in(t)
			tr := e.waitCondition(c.name, metav1.ConditionFalse, tokensyncv1alpha1.ReasonEndpointNotAllowed)
			if msg := readyCondition(tr).Message; !strings.Contains(msg, c.message) {
				t.Errorf("message %q does not contain %q", msg, c.message)
			}
			e.waitEvent(c.name, "Warning/EndpointNotAllowed")
			if c.dialed != "" && !slices.Contains(dials.all(), c.dialed) {
				t.Errorf("DialControl never saw %s (dialed %v)", c.dialed, dials.all())
			}
		})
	}
	allowed := map[string]bool{}
	for _, c := range cases {
		allowed[c.dialed] = true
	}
	for _, a := range dials.all() {
		if !allowed[a] && a != e.fake.Addr() {
			t.Errorf("dialed %s: a refused endpoint was contacted", a)
		}
	}
}

// fakeAttempts counts the requests the env's fake saw, all providers together.
func fakeAttempts(e *env) int {
	return e.fake.Attempts(providertest.AML) + e.fake.Attempts(providertest.AmpliFi) + e.fake.Attempts(providertest.Partner)
}

// TestEndpointPolicyAllowlist: with --allowed-endpoints, an endpoint outside
// a provider's entries is refused before any request; one inside works.
func TestEndpointPolicyAllowlist(t *testing.T) {
	t.Parallel()
	dials := &dialLog{}
	e := newEnvWith(t, func(e *env, r *TokenRequestReconciler) {
		policy, err := endpointpolicy.Parse("aml="+e.fake.URL()+",partner=https://partner.example.com/v2", endpointpolicy.Rules{AllowLoopback: true})
		if err != nil {
			t.Fatal(err)
		}
		r.EndpointPolicy = policy
		r.Providers = builtin.NewRegistry(providers.Options{Timeout: 5 * time.Second, DialControl: policyDialControl(policy, dials), CheckURL: policy.CheckURL})
	})

	e.createSecret("aml-creds", amlCreds)
	e.createTokenRequest("allowed", providertest.AML, "aml-creds")
	expectRefusals(t, e, dials, []refusal{
		{name: "not-listed", provider: providertest.Partner, endpoint: e.fake.URL(),
			message: `is not allowed for provider "partner" by the operator's --allowed-endpoints policy; allowed: https://partner.example.com/v2`},
		{name: "outside-path-prefix", provider: providertest.Partner, endpoint: "https://partner.example.com/v2ex",
			message: "allowed: https://partner.example.com/v2"},
		{name: "other-host", provider: providertest.Partner, endpoint: "https://evil.example.com/v2",
			message: "allowed: https://partner.example.com/v2"},
		{name: "other-port", provider: providertest.AML, endpoint: "http://127.0.0.1:1",
			message: "allowed: " + e.fake.URL()},
		{name: "dot-segments-out-of-prefix", provider: providertest.Partner, endpoint: "https://partner.example.com/v2/..%2f..%2fadmin",
			message: `"." and ".." segments`},
	})
	e.waitReady("allowed")
	if n := fakeAttempts(e); n != 1 {
		t.Errorf("the fake saw %d requests, want 1: the allowed endpoint's login only", n)
	}
}

// TestEndpointPolicySchemesAndAddresses: without an allowlist, plain http
// is refused except to loopback, and link-local and cloud metadata
// addresses are refused in every spelling, before any request. The client
// is the one providers build with DialControl, as main.go wires it.
func TestEndpointPolicySchemesAndAddresses(t *testing.T) {
	t.Parallel()
	dials := &dialLog{}
	policy, err := endpointpolicy.Parse("", endpointpolicy.Rules{AllowLoopback: true})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnvWith(t, func(_ *env, r *TokenRequestReconciler) {
		r.EndpointPolicy = policy
		r.Providers = builtin.NewRegistry(providers.Options{Timeout: 5 * time.Second, DialControl: policyDialControl(policy, dials), CheckURL: policy.CheckURL})
	})
	e.createSecret("partner-creds", partnerCreds)
	e.createTokenRequest("loopback-http", providertest.Partner, "partner-creds")
	const metadata = "link-local and cloud metadata addresses are always refused"
	expectRefusals(t, e, dials, []refusal{
		{name: "plain-http", provider: providertest.Partner, endpoint: "http://partner.example.com",
			message: "plain http:// is only allowed to loopback hosts; use https://"},
		{name: "plain-http-name-resolving-to-loopback", provider: providertest.Partner, endpoint: "http://partner.tokensync.test:8080",
			message: "plain http:// is only allowed to loopback hosts"},
		{name: "metadata-ipv4", provider: providertest.AmpliFi, endpoint: "https://169.254.169.254", message: metadata},
		{name: "metadata-ipv4-http", provider: providertest.AmpliFi, endpoint: "http://169.254.169.254/latest", message: metadata},
		{name: "link-local", provider: providertest.AML, endpoint: "https://169.254.10.10:8443", message: metadata},
		{name: "metadata-ipv6", provider: providertest.AmpliFi, endpoint: "https://[fd00:ec2::254]", message: metadata},
		{name: "metadata-ipv4-mapped", provider: providertest.Partner, endpoint: "https://[::ffff:169.254.169.254]", message: metadata},
		{name: "metadata-nat64", provider: providertest.Partner, endpoint: "https://[64:ff9b::a9fe:a9fe]", message: metadata},
		{name: "metadata-alibaba", provider: providertest.Partner, endpoint: "https://100.100.100.200", message: metadata},
		{name: "link-local-ipv6", provider: providertest.Partner, endpoint: "https://[fe80::1]", message: metadata},
		{name: "ipv6-zone", provider: providertest.Partner, endpoint: "https://[fe80::1%25eth0]", message: "IPv6 zones are not allowed"},
		{name: "hex-ipv4", provider: providertest.Partner, endpoint: "http://0xa9.0xfe.0xa9.0xfe", message: "non-standard form"},
		{name: "decimal-ipv4", provider: providertest.Partner, endpoint: "http://2852039166", message: "non-standard form"},
	})
	e.waitReady("loopback-http")
	if n := fakeAttempts(e); n != 1 {
		t.Errorf("the fake saw %d requests, want 1: the loopback endpoint's login only", n)
	}
}

// TestEndpointPolicyChecksTheDialedAddress: a DNS name that resolves to a
// link-local or metadata address is refused when dialing, in IPv4, IPv6 and
// IPv4-mapped form; --allow-insecure-http allows plain http to a
// non-loopback name but never to a metadata address. Names are answered by
// an in-process DNS server: no query leaves the machine.
func TestEndpointPolicyChecksTheDialedAddress(t *testing.T) {
	t.Parallel()
	dns := startFakeDNS(t, map[string][]netip.Addr{
		"partner.tokensync.test":  {netip.MustParseAddr("127.0.0.1")},
		"metadata.tokensync.test": {netip.MustParseAddr("169.254.169.254")},
		"aws6.tokensync.test":     {netip.MustParseAddr("fd00:ec2::254")},
		"mapped.tokensync.test":   {netip.MustParseAddr("::ffff:169.254.169.254")},
		"169.254.169.254.nip.io":  {netip.MustParseAddr("169.254.169.254")},
	})
	dials := &dialLog{}
	policy, err := endpointpolicy.Parse("", endpointpolicy.Rules{AllowInsecureHTTP: true, AllowLoopback: true})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnvWith(t, func(_ *env, r *TokenRequestReconciler) {
		r.EndpointPolicy = policy
		r.Providers = builtin.NewRegistry(providers.Options{HTTPClient: resolvingClient(5*time.Second, dns.resolver(), policyDialControl(policy, dials))})
	})
	port := strings.TrimPrefix(e.fake.URL(), "http://127.0.0.1:")
	e.createSecret("partner-creds", partnerCreds)
	e.createTokenRequest("insecure-http-by-name", providertest.Partner, "partner-creds", withEndpoint("http://partner.tokensync.test:"+port))
	const dialRefused = "refused by the operator's endpoint policy: link-local and cloud metadata addresses are always refused"
	cases := []refusal{
		{name: "name-to-metadata", provider: providertest.Partner, endpoint: "https://metadata.tokensync.test",
			message: "connection to 169.254.169.254:443 " + dialRefused, dialed: "169.254.169.254:443"},
		{name: "name-to-metadata-http", provider: providertest.Partner, endpoint: "http://metadata.tokensync.test:" + port,
			message: "connection to 169.254.169.254:" + port + " " + dialRefused, dialed: "169.254.169.254:" + port},
		{name: "nip-io-style-name", provider: providertest.AML, endpoint: "https://169.254.169.254.nip.io",
			message: "connection to 169.254.169.254:443 " + dialRefused, dialed: "169.254.169.254:443"},
		{name: "name-to-ipv4-mapped", provider: providertest.Partner, endpoint: "https://mapped.tokensync.test",
			message: dialRefused, dialed: "169.254.169.254:443"},
		{name: "insecure-http-to-metadata-literal", provider: providertest.Partner, endpoint: "http://169.254.169.254",
			message: "link-local and cloud metadata addresses are always refused"},
	}
	if haveIPv6() {
		cases = append(cases, refusal{name: "name-to-aws-ipv6", provider: providertest.AmpliFi, endpoint: "https://aws6.tokensync.test",
			message: "connection to [fd00:ec2::254]:443 " + dialRefused, dialed: "[fd00:ec2::254]:443"})
	}
	expectRefusals(t, e, dials, cases)
	// The name that resolves to loopback works over plain http: the
	// refusals above came from the addresses, not from DNS failing.
	e.waitReady("insecure-http-by-name")
	if n := fakeAttempts(e); n != 1 {
		t.Errorf("the fake saw %d requests, want 1: the login by name", n)
	}
	if dns.queries.Load() == 0 {
		t.Error("the fake DNS server was never asked")
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

// TestEndpointPolicyJudgesTheLoginURL: the policy judges the URL a login is
// sent to, spec.endpoint with the login path joined, and spec.http.path
// cannot lead out of an allowlisted prefix: "../" is refused at admission,
// a spelling the API server does not decode at the first login, with
// nothing sent either way.
func TestEndpointPolicyJudgesTheLoginURL(t *testing.T) {
	t.Parallel()
	dials := &dialLog{}
	var policy *endpointpolicy.Policy
	e := newEnvWith(t, func(e *env, r *TokenRequestReconciler) {
		var err error
		policy, err = endpointpolicy.Parse("http="+e.fake.URL()+providertest.AMLPath, endpointpolicy.Rules{AllowLoopback: true})
		if err != nil {
			t.Fatal(err)
		}
		r.EndpointPolicy = policy
		r.Providers = builtin.NewRegistry(providers.Options{Timeout: 5 * time.Second, DialControl: policyDialControl(policy, dials), CheckURL: policy.CheckURL})
	})
	e.createSecret("http-creds", credsFor("http"))
	withPath := func(endpoint, path string) func(*tokensyncv1alpha1.TokenRequest) {
		return func(tr *tokensyncv1alpha1.TokenRequest) {
			tr.Spec.Endpoint = endpoint
			tr.Spec.HTTP = amlAsHTTP()
			tr.Spec.HTTP.Path = path
		}
	}

	// The endpoint alone is outside the entry; endpoint and path are in it.
	e.createTokenRequest("login-url-allowed", "http", "http-creds", withPath(e.fake.URL(), providertest.AMLPath))
	// Endpoint and path outside it: refused, the message quoting the URL judged.
	e.createTokenRequest("login-url-outside", "http", "http-creds", withPath(e.fake.URL()+"/api", "/admin/keys"))
	// Inside the entry, with a path that leaves it for a server that
	// decodes twice: admitted (CEL decodes nothing), refused at the first
	// login, before anything is sent.
	e.createTokenRequest("double-encoded-escape", "http", "http-creds",
		withPath(e.fake.URL()+providertest.AMLPath+"/tenant-a", "%252e%252e/%252e%252e/admin/keys"))

	// The plain escape never gets in.
	for _, path := range []string{"../admin/keys", "/%2e%2e/admin/keys", "/..;/admin/keys"} {
		tr := &tokensyncv1alpha1.TokenRequest{
			ObjectMeta: metav1.ObjectMeta{Name: "escape", Namespace: e.ns},
			Spec: tokensyncv1alpha1.TokenRequestSpec{
				Provider: "http", CredentialsSecretRef: tokensyncv1alpha1.SecretReference{Name: "http-creds"},
			},
		}
		withPath(e.fake.URL()+providertest.AMLPath, path)(tr)
		err := k8sClient.Create(e.ctx(), tr)
		if err == nil || !strings.Contains(err.Error(), "spec.http.path must not contain '.' or '..' segments") {
			t.Errorf("path %q: create = %v, want a rejection naming spec.http.path", path, err)
		}
	}

	e.waitReady("login-url-allowed")

	tr := e.waitCondition("login-url-outside", metav1.ConditionFalse, tokensyncv1alpha1.ReasonEndpointNotAllowed)
	if msg, want := readyCondition(tr).Message, fmt.Sprintf("endpoint %q is not allowed for provider \"http\" by the operator's --allowed-endpoints policy; allowed: %s",
		e.fake.URL()+"/api/admin/keys", e.fake.URL()+providertest.AMLPath); !strings.Contains(msg, want) {
		t.Errorf("message %q does not contain %q", msg, want)
	}
	e.waitEvent("login-url-outside", "Warning/EndpointNotAllowed")

	tr = e.waitCondition("double-encoded-escape", metav1.ConditionFalse, tokensyncv1alpha1.ReasonInvalidTemplate)
	stalled := meta.FindStatusCondition(tr.Status.Conditions, tokensyncv1alpha1.ConditionStalled)
	if stalled == nil || stalled.Status != metav1.ConditionTrue || !strings.Contains(stalled.Message, `spec.http.path is refused: "." and ".." segments`) {
		t.Errorf("Stalled = %+v, want True naming spec.http.path", stalled)
	}
	if tr.Status.NextRefreshTime != nil {
		t.Errorf("next retry at %v: a path that cannot be used waits for a change", tr.Status.NextRefreshTime)
	}

	if n := e.fake.Attempts(providertest.AML); n != 1 {
		t.Errorf("the fake saw %d logins, want 1: the allowed login only", n)
	}
	for _, a := range dials.all() {
		if a != e.fake.Addr() {
			t.Errorf("dialed %s", a)
		}
	}
}

// TestEndpointPolicyLoopback: without --allow-loopback-endpoints no
// TokenRequest reaches the operator's own host: a loopback endpoint in any
// spelling is refused before anything is dialed, a name resolving to
// loopback is refused at the dial, and the fake on loopback sees no
// request. Restarted with the flag, the same endpoints work.
func TestEndpointPolicyLoopback(t *testing.T) {
	t.Parallel()
	dns := startFakeDNS(t, map[string][]netip.Addr{"sidecar.tokensync.test": {netip.MustParseAddr("127.0.0.1")}})
	dials := &dialLog{}
	allowLoopback := false
	e := newEnvWith(t, func(_ *env, r *TokenRequestReconciler) {
		// Insecure HTTP allowed, so that the name resolving to loopback
		// gets as far as the dial.
		policy, err := endpointpolicy.Parse("", endpointpolicy.Rules{AllowInsecureHTTP: true, AllowLoopback: allowLoopback})
		if err != nil {
			t.Fatal(err)
		}
		r.EndpointPolicy = policy
		client := resolvingClient(5*time.Second, dns.resolver(), policyDialControl(policy, dials))
		r.Providers = builtin.NewRegistry(providers.Options{HTTPClient: client, CheckURL: policy.CheckURL})
	})
	_, port, _ := net.SplitHostPort(e.fake.Addr())
	const refused = "the operator refuses loopback endpoints (it was started without --allow-loopback-endpoints)"
	loopbackCases := []refusal{
		{name: "ipv4", provider: providertest.AML, endpoint: e.fake.URL(), message: refused},
		{name: "ipv4-https", provider: providertest.Partner, endpoint: "https://127.0.0.1:" + port, message: refused},
		{name: "localhost", provider: providertest.AmpliFi, endpoint: "http://localhost:" + port, message: refused},
		{name: "localhost-subdomain", provider: providertest.Partner, endpoint: "https://admin.localhost:" + port, message: refused},
		{name: "sidecar-admin-port", provider: providertest.Partner, endpoint: "http://127.0.0.1:15000/quitquitquit", message: refused},
		{name: "ipv6", provider: providertest.AML, endpoint: "http://[::1]:" + port, message: refused},
		{name: "ipv4-mapped", provider: providertest.AML, endpoint: "http://[::ffff:127.0.0.1]:" + port, message: refused},
		{name: "unspecified", provider: providertest.AML, endpoint: "http://0.0.0.0:" + port, message: refused},
		{name: "unspecified-ipv6", provider: providertest.Partner, endpoint: "http://[::]:" + port, message: refused},
		{name: "name-to-loopback", provider: providertest.Partner, endpoint: "http://sidecar.tokensync.test:" + port,
			message: "connection to 127.0.0.1:" + port + " refused by the operator's endpoint policy: " + refused, dialed: "127.0.0.1:" + port},
	}
	expectRefusals(t, e, dials, loopbackCases)
	if n := fakeAttempts(e); n != 0 {
		t.Errorf("the fake on loopback saw %d requests, want none", n)
	}
	if dns.queries.Load() == 0 {
		t.Error("the fake DNS server was never asked")
	}

	// With --allow-loopback-endpoints the same endpoints log in.
	allowLoopback = true
	e.restart()
	for _, name := range []string{"ipv4-allowed", "localhost-allowed", "name-to-loopback-allowed"} {
		endpoint := map[string]string{
			"ipv4-allowed":             e.fake.URL(),
			"localhost-allowed":        "http://localhost:" + port,
			"name-to-loopback-allowed": "http://sidecar.tokensync.test:" + port,
		}[name]
		e.createTokenRequest(name, providertest.Partner, providertest.Partner+"-creds", withEndpoint(endpoint))
	}
	for _, name := range []string{"ipv4-allowed", "localhost-allowed", "name-to-loopback-allowed"} {
		e.waitReady(name)
	}
}
