package controllers

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
	"github.com/tokensync/tokensync/providers"
	"github.com/tokensync/tokensync/providers/builtin"
	"github.com/tokensync/tokensync/providers/providertest"
	"github.com/tokensync/tokensync/providers/providertest/fake"
)

// TestNoSecretValueLeaks drives success and failure paths with sentinel
// credentials, then searches the whole test run's logs, this namespace's
// events and every status for the sentinels and for every token issued.
// Every built-in provider logs in with the sentinel credentials of its
// test registration (fake.Provider.SentinelCredentials), at a fake of its
// own that accepts them; the failure paths are AML Watcher's, AmpliFi's and
// the partner API's.
func TestNoSecretValueLeaks(t *testing.T) {
	t.Parallel()
	const (
		email    = "sentinel-email-7d1f@example.com"
		password = "SENTINEL-PASSWORD-7d1f"
		key      = "SENTINEL-ACCESS-KEY-7d1f"
		secret   = "SENTINEL-SECRET-7d1f"
		device   = "SENTINEL-DEVICE-7d1f"
	)
	e := newEnv(t, providertest.WithLifetime(providertest.Partner, 12*time.Second))
	e.fake.SetValid(providertest.AML, map[string]string{"email": email, "password": password})
	e.createSecret("aml-good-creds", map[string]string{"email": email, "password": password})
	e.createSecret("aml-bad-creds", map[string]string{"email": email, "password": password + "-WRONG"})
	e.createSecret("partner-creds", map[string]string{"accessKey": key, "secret": secret})
	e.createSecret("partner-half-creds", map[string]string{"accessKey": key})
	e.createSecret("amplifi-creds", map[string]string{"channel": "test", "deviceTag": device, "deviceData": `{"platform":"` + device + `"}`})
	e.createSecret("amplifi-junk-creds", map[string]string{"credentials.json": `{"channel": "internet", "password": "` + password + `"`})

	e.createTokenRequest("aml-good", providertest.AML, "aml-good-creds")
	e.createTokenRequest("aml-bad", providertest.AML, "aml-bad-creds")
	e.createTokenRequest("partner", providertest.Partner, "partner-creds", withRefreshBefore(10*time.Second))
	e.createTokenRequest("partner-half", providertest.Partner, "partner-half-creds")
	e.createTokenRequest("amplifi", providertest.AmpliFi, "amplifi-creds")
	e.createTokenRequest("amplifi-junk", providertest.AmpliFi, "amplifi-junk-creds")
	everyProvider := providertest.Start(t)
	var sentinels []string
	for _, f := range providertest.Fakes() {
		sentinel := "SENTINEL-" + strings.ToUpper(f.Name) + "-7d1f"
		sentinels = append(sentinels, sentinel)
		e.createSecret(f.Name+"-sentinel-creds", f.SentinelCredentials(sentinel))
		e.createTokenRequest(f.Name+"-sentinel", f.Name, f.Name+"-sentinel-creds",
			withEndpoint(f.Endpoint(everyProvider.URL())), withSettingsFor(f.Name))
	}

	e.waitReady("aml-good")
	e.waitReady("amplifi")
	e.waitReady("partner")
	e.waitCondition("aml-bad", metav1.ConditionFalse, tokensyncv1alpha1.ReasonAuthenticationFailed)
	e.waitCondition("partner-half", metav1.ConditionFalse, tokensyncv1alpha1.ReasonInvalidCredentials)
	e.waitCondition("amplifi-junk", metav1.ConditionFalse, tokensyncv1alpha1.ReasonInvalidCredentials)

	// A refresh that fails with a provider error, then one that succeeds.
	tokens := []string{e.token("aml-good"), e.token("amplifi"), e.token("partner")}
	names := []string{"aml-good", "aml-bad", "partner", "partner-half", "amplifi", "amplifi-junk"}
	for _, f := range providertest.Fakes() {
		e.waitReady(f.Name + "-sentinel")
		tokens = append(tokens, e.token(f.Name+"-sentinel"))
		names = append(names, f.Name+"-sentinel")
	}
	e.fake.FailNextWith(providertest.Partner, 1, providertest.Failure{Fault: providertest.NotJSON})
	e.waitCondition("partner", metav1.ConditionFalse, tokensyncv1alpha1.ReasonInvalidResponse)
	e.waitReady("partner")
	tokens = append(tokens, e.token("partner"))

	e.waitEvent("aml-bad", "Warning/AuthenticationFailed")
	e.waitEvent("partner", "Warning/InvalidResponse")
	sentinels = append(sentinels, email, password, key, secret, device)
	sentinels = append(sentinels, tokens...)
	for _, tok := range tokens {
		if tok == "" {
			t.Fatal("a token is missing")
		}
	}
	list := &tokensyncv1alpha1.TokenRequestList{}
	if err := k8sClient.List(e.ctx(), list); err != nil {
		t.Fatal(err)
	}
	statuses, _ := json.Marshal(list)
	var events strings.Builder
	for _, n := range names {
		fmt.Fprintln(&events, strings.Join(e.events(n), "\n"))
	}
	if !strings.Contains(events.String(), "AuthenticationFailed") || !strings.Contains(events.String(), "InvalidResponse") {
		t.Fatalf("the failure paths did not run: events %s", events.String())
	}
	logs := testLogs.String()
	if !strings.Contains(logs, "Attempt failed") {
		t.Fatal("no failure was logged: the log capture does not work")
	}
	for _, s := range sentinels {
		for what, text := range map[string]string{"logs": logs, "events": events.String(), "statuses": string(statuses)} {
			if strings.Contains(text, s) {
				t.Errorf("%s contain a secret value (%.12s...)", what, s)
			}
		}
	}
}

// leakyProvider answers every fake's login path under a base path naming
// the answer (/<mode>/login, /<mode>/token, ...), and fills every answer it
// can with a sentinel: free text made of markers that share one random
// core, so any piece of a body long enough to mean anything carries the
// core. The provider-shaped answers are the fakes' own hostile ones
// (fake.Provider.Hostile); the others break HTTP itself.
type leakyProvider struct {
	core string // random; the scan looks for it
	// idCore is the core of an identifier-shaped sentinel (see mode idReason).
	idCore string

	mu   sync.Mutex
	hits map[string]int // mode -> requests
}

func newLeakyProvider(t *testing.T) (*leakyProvider, *httptest.Server) {
	t.Helper()
	p := &leakyProvider{core: randomHex(t), idCore: randomHex(t), hits: map[string]int{}}
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	return p, srv
}

func randomHex(t *testing.T) string {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// text is free text of markers: any 24 bytes of it hold the core.
func (p *leakyProvider) text() string {
	return strings.Repeat("Lk"+p.core+" ", 4) + "password invalid Lk" + p.core
}

// jsonString quotes s as a JSON string.
func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// servedFake returns the fake answering path (its own or, for a provider
// without a login of its own, the one it logs in to).
func servedFake(path string) (fake.Provider, bool) {
	for _, f := range providertest.Fakes() {
		if f.Served() && f.Path == path {
			return f, true
		}
	}
	return fake.Provider{}, false
}

// hostility is the kind of provider-shaped answer a mode names.
func hostility(mode string) (fake.Hostility, int, bool) {
	if code, ok := strings.CutPrefix(mode, "status-"); ok {
		status, err := strconv.Atoi(code)
		return fake.HostileError, status, err == nil
	}
	for _, h := range fake.Hostilities() {
		if h.String() == mode {
			return h, 0, true
		}
	}
	return 0, 0, false
}

func (p *leakyProvider) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	mode, rest, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	p.mu.Lock()
	p.hits[mode]++
	p.mu.Unlock()
	_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20))

	text := p.text()
	f, known := servedFake("/" + rest)
	success := http.StatusOK
	if known {
		success = f.Success()
	}
	// Headers carry the sentinel too: a garbled Retry-After, a debug header.
	w.Header().Set("Retry-After", text)
	w.Header().Set("X-Debug", text)
	write := func(status int, contentType, body string) {
		w.Header().Set("Content-Type", contentType)
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
	writeJSON := func(status int, body string) { write(status, "application/json", body) }
	q := jsonString(text)

	switch mode {
	case "html":
		write(success, "text/html", "<!DOCTYPE html><html><body><h1>"+text+"</h1><p>"+text+"</p></body></html>")
	case "redirect":
		w.Header().Set("Location", "https://evil.example.com/"+p.core+"?next="+p.core)
		write(http.StatusTemporaryRedirect, "text/html", text)
	case "truncated":
		w.Header().Set("Content-Length", "100000")
		writeJSON(success, `{"success": true, "token": `+q)
	case "garbage":
		hj, ok := w.(http.Hijacker)
		if !ok {
			panic(http.ErrAbortHandler)
		}
		conn, buf, err := hj.Hijack()
		if err != nil {
			panic(http.ErrAbortHandler)
		}
		_, _ = buf.WriteString("Lk" + p.core + " " + text + "\r\n\r\n")
		_ = buf.Flush()
		_ = conn.Close()
	case "huge":
		writeJSON(success, strings.Repeat(text, (2<<20)/len(text)))
	case "id-reason": // identifier-shaped, in the fields the partner client may quote
		id := jsonString("LkId" + p.idCore)
		if strings.HasSuffix(r.URL.Path, "/400/login") {
			writeJSON(http.StatusBadRequest, `{"statusCode": "Error", "error": {"name": "InvalidRequestFormatError", "details": [{"info": {"missingProperty": `+id+`}}]}}`)
			return
		}
		writeJSON(http.StatusUnauthorized, `{"statusCode": "Error", "error": {"name": "AuthenticationError", "details": {"reason": `+id+`}}}`)
	default:
		h, status, isHostile := hostility(mode)
		if !known || !isHostile {
			http.NotFound(w, r)
			return
		}
		answer, ok := f.Hostile(h, status, text)
		if !ok {
			http.NotFound(w, r)
			return
		}
		answer.Write(w)
	}
}

// TestProviderBodiesNeverLeak: whatever a provider answers (error statuses
// with bodies, HTML, success shapes without or with unusable tokens,
// redirects, truncated and malformed HTTP, huge bodies, and a usable token
// that is itself the sentinel), no part of its body or headers reaches a
// TokenRequest's status, an event or a log line.
func TestProviderBodiesNeverLeak(t *testing.T) {
	t.Parallel()
	leaky, srv := newLeakyProvider(t)
	e := newEnvWith(t, func(_ *env, r *TokenRequestReconciler) {
		r.Providers = builtin.NewRegistry(providers.Options{Timeout: 3 * time.Second})
	})
	// Every built-in provider, with its test registration's credentials and
	// settings: http logs in to AML Watcher's fake, so its answers are
	// AML-shaped.
	type probe struct{ name, provider, mode, endpoint string }
	var probes []probe
	for _, f := range providertest.Fakes() {
		served := f
		if !f.Served() {
			served, _ = providertest.FakeOf(f.Via)
		}
		var modes []string
		for _, status := range []int{400, 401, 403, 404, 409, 422, 429, 500, 503} {
			modes = append(modes, fmt.Sprintf("status-%d", status))
		}
		for _, h := range fake.Hostilities() {
			if _, ok := served.Hostile(h, 0, leaky.text()); ok {
				modes = append(modes, h.String())
			} else if h != fake.HostileToken {
				t.Errorf("%s's fake has no %s answer", served.Name, h)
			}
		}
		modes = append(modes, "html", "redirect", "truncated", "garbage", "huge")
		for _, mode := range modes {
			probes = append(probes, probe{name: mode + "-" + f.Name, provider: f.Name, mode: mode, endpoint: f.Endpoint(srv.URL + "/" + mode)})
		}
		e.createSecret(f.Name+"-creds", credsFor(f.Name))
	}
	for _, p := range probes {
		e.createTokenRequest(p.name, p.provider, p.provider+"-creds", withEndpoint(p.endpoint), withSettingsFor(p.provider))
	}
	for _, p := range probes {
		eventually(t, readyTimeout, func() error {
			if c := readyCondition(e.tokenRequest(p.name)); c == nil {
				return fmt.Errorf("%s: no Ready condition yet", p.name)
			}
			return nil
		})
		want := "Warning/"
		if p.mode == "token-is-sentinel" {
			want = "Normal/TokenRefreshed"
		}
		e.waitEvent(p.name, want)
	}
	for _, p := range probes {
		tr := e.tokenRequest(p.name)
		if c := readyCondition(tr); (c.Status == metav1.ConditionTrue) != (p.mode == "token-is-sentinel") {
			t.Errorf("%s: Ready %s/%s: %s", p.name, c.Status, c.Reason, c.Message)
		}
	}
	for _, p := range probes {
		if tok := e.token(p.name); p.mode == fake.HostileToken.String() && !strings.Contains(tok, leaky.core) {
			t.Fatalf("%s: the sentinel token was not stored: the success path did not run", p.name)
		}
	}

	list := &tokensyncv1alpha1.TokenRequestList{}
	if err := k8sClient.List(e.ctx(), list, client.InNamespace(e.ns)); err != nil {
		t.Fatal(err)
	}
	statuses, _ := json.Marshal(list)
	var events strings.Builder
	for _, p := range probes {
		fmt.Fprintln(&events, strings.Join(e.events(p.name), "\n"))
	}
	logs := testLogs.String()
	if !strings.Contains(logs, "Attempt failed") || !strings.Contains(events.String(), "InvalidResponse") {
		t.Fatal("the failure paths did not run, or the log capture does not work")
	}
	for what, text := range map[string]string{"statuses": string(statuses), "events": events.String(), "logs": logs} {
		if i := strings.Index(text, leaky.core); i >= 0 {
			t.Errorf("%s contain part of a provider's answer: ...%s...", what, text[max(0, i-200):min(len(text), i+100)])
		}
	}
}

// TestPartnerQuotesOnlyIdentifiers documents the one exception to
// TestProviderBodiesNeverLeak, made by the partner client on purpose: from
// a 400 or 401 answer it quotes missingProperty and reason values, when
// they are short identifiers ([A-Za-z0-9_.-], at most 64 characters) that
// echo no credential, so users see "AccessKeyUnauthorized". Nothing else of
// those answers appears.
func TestPartnerQuotesOnlyIdentifiers(t *testing.T) {
	t.Parallel()
	leaky, srv := newLeakyProvider(t)
	e := newEnv(t)
	e.createSecret("partner-creds", partnerCreds)
	e.createTokenRequest("reason-401", providertest.Partner, "partner-creds", withEndpoint(srv.URL+"/id-reason/401"))
	e.createTokenRequest("missing-400", providertest.Partner, "partner-creds", withEndpoint(srv.URL+"/id-reason/400"))
	id := "LkId" + leaky.idCore
	for name, want := range map[string]string{
		"reason-401":  "HTTP 401, reason " + id + ")",
		"missing-400": `it lacks the property "` + id + `"`,
	} {
		var c *metav1.Condition
		eventually(t, readyTimeout, func() error {
			if c = readyCondition(e.tokenRequest(name)); c == nil || c.Status != metav1.ConditionFalse {
				return fmt.Errorf("%s: Ready %+v", name, c)
			}
			return nil
		})
		if !strings.Contains(c.Message, want) {
			t.Errorf("%s: message %q does not quote the identifier as %q", name, c.Message, want)
		}
		if strings.Count(c.Message, leaky.idCore) != 1 {
			t.Errorf("%s: message %q quotes the answer more than once", name, c.Message)
		}
	}
}
