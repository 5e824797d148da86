package controllers

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
	"github.com/tokensync/tokensync/providers/providertest"
)

// racingClient makes another writer update an object just before the
// reconciler's own update of it, once per arming, so the API server answers
// the reconciler with a real conflict.
type racingClient struct {
	client.Client
	// secret and status are the armed targets, disarmed by their race.
	secret, status atomic.Pointer[types.NamespacedName]

	secretConflicts, statusConflicts atomic.Int32
}

func (c *racingClient) Update(ctx context.Context, obj client.Object, opts ...client.UpdateOption) error {
	if s, ok := obj.(*corev1.Secret); ok {
		if key := c.secret.Load(); key != nil && *key == client.ObjectKeyFromObject(s) && c.secret.CompareAndSwap(key, nil) {
			if err := touch(ctx, &corev1.Secret{}, *key, func(o client.Object) {
				o.SetAnnotations(merge(o.GetAnnotations(), "example.com/touched", "by-someone-else"))
			}); err != nil {
				return err
			}
		}
	}
	err := c.Client.Update(ctx, obj, opts...)
	if _, ok := obj.(*corev1.Secret); ok && apierrors.IsConflict(err) {
		c.secretConflicts.Add(1)
	}
	return err
}

func (c *racingClient) Status() client.SubResourceWriter {
	return &racingStatus{SubResourceWriter: c.Client.Status(), c: c}
}

type racingStatus struct {
	client.SubResourceWriter
	c *racingClient
}

func (w *racingStatus) Update(ctx context.Context, obj client.Object, opts ...client.SubResourceUpdateOption) error {
	if key := w.c.status.Load(); key != nil && *key == client.ObjectKeyFromObject(obj) && w.c.status.CompareAndSwap(key, nil) {
		if err := touch(ctx, &tokensyncv1alpha1.TokenRequest{}, *key, func(o client.Object) {
			o.SetLabels(merge(o.GetLabels(), "example.com/touched", "yes"))
		}); err != nil {
			return err
		}
	}
	err := w.SubResourceWriter.Update(ctx, obj, opts...)
	if apierrors.IsConflict(err) {
		w.c.statusConflicts.Add(1)
	}
	return err
}

// touch is the other writer: it updates the stored object.
func touch(ctx context.Context, obj client.Object, key types.NamespacedName, mutate func(client.Object)) error {
	if err := k8sClient.Get(ctx, key, obj); err != nil {
		return fmt.Errorf("other writer: %w", err)
	}
	mutate(obj)
	if err := k8sClient.Update(ctx, obj); err != nil {
		return fmt.Errorf("other writer: %w", err)
	}
	return nil
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func merge(m map[string]string, k, v string) map[string]string {
	if m == nil {
		m = map[string]string{}
	}
	m[k] = v
	return m
}

// TestConflictingWritesDuringRefresh: while a refresh writes the target
// Secret and then the status, someone else updates both first. The API
// server answers the reconciler with conflicts; it re-reads and writes
// again, without a second login, and keeps the other writer's change.
func TestConflictingWritesDuringRefresh(t *testing.T) {
	t.Parallel()
	var racing *racingClient
	e := newEnvWith(t, func(_ *env, r *TokenRequestReconciler) {
		racing = &racingClient{Client: r.Client}
		r.Client = racing
	})
	e.createSecret("creds", partnerCreds)
	e.createTokenRequest("contended", providertest.Partner, "creds")
	e.waitReady("contended")
	first := e.token("contended")

	key := types.NamespacedName{Namespace: e.ns, Name: "contended"}
	racing.secret.Store(&key)
	racing.status.Store(&key)
	e.forceRefresh("contended", "contended")
	eventually(t, readyTimeout, func() error {
		tr := e.tokenRequest("contended")
		if tr.Status.LastForceRefresh != "contended" || readyCondition(tr).Status != metav1.ConditionTrue {
			return fmt.Errorf("refresh not recorded: lastForceRefresh %q", tr.Status.LastForceRefresh)
		}
		return nil
	})
	consistently(t, 2*time.Second, func() error {
		if n := e.fake.Logins(providertest.Partner); n != 2 {
			return fmt.Errorf("%d logins, want 2: a conflict cost a login", n)
		}
		return nil
	})
	if racing.secretConflicts.Load() == 0 || racing.statusConflicts.Load() == 0 {
		t.Fatalf("conflicts: Secret %d, status %d; the test did not provoke both", racing.secretConflicts.Load(), racing.statusConflicts.Load())
	}
	s, err := e.secret("contended")
	if err != nil {
		t.Fatal(err)
	}
	if tok := string(s.Data[tokensyncv1alpha1.SecretKeyToken]); tok == first || tok != e.fake.LastToken(providertest.Partner) {
		t.Errorf("the Secret does not hold the token of the refresh")
	}
	if s.Annotations["example.com/touched"] != "by-someone-else" {
		t.Errorf("the other writer's annotation was lost: %v", s.Annotations)
	}
	if tr := e.tokenRequest("contended"); tr.Labels["example.com/touched"] != "yes" || tr.Status.FailedAttempts != 0 {
		t.Errorf("TokenRequest labels %v, failedAttempts %d", tr.Labels, tr.Status.FailedAttempts)
	}
}

// TestAPIServerOutage cuts the operator off from the API server for over
// ten seconds, across a refresh that falls due meanwhile. The operator makes
// no login while it cannot store a token, and recovers by itself: once the
// API server is reachable again (same address, same etcd) the overdue
// refresh happens, refreshes go on, and a new TokenRequest becomes Ready.
// The manager reaches the API server through a proxy that drops every
// connection while the outage lasts: stopping and restarting the API server
// itself lost its port to other test processes now and then (the port is
// free while it is down).
func TestAPIServerOutage(t *testing.T) {
	t.Parallel()
	proxy := startOutageProxy(t, cfg.Host)
	proxied := rest.CopyConfig(cfg)
	proxied.Host = "https://" + proxy.addr()
	c := k8sClient
	ctx := context.Background()
	ns := newNamespace(t)
	// 20s tokens with refreshBefore 10s: the refresh falls due 5 to 10 s
	// after each login.
	fake := providertest.Start(t, providertest.WithLifetime(providertest.Partner, 20*time.Second))
	startManager(t, managerOptions{cfg: proxied, namespaces: []string{ns}})

	create := func(obj client.Object) {
		t.Helper()
		eventually(t, readyTimeout, func() error { return client.IgnoreAlreadyExists(c.Create(ctx, obj)) })
	}
	newTokenRequest := func(name string) *tokensyncv1alpha1.TokenRequest {
		return &tokensyncv1alpha1.TokenRequest{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: tokensyncv1alpha1.TokenRequestSpec{
				LoginSpec: tokensyncv1alpha1.LoginSpec{
					Provider:      providertest.Partner,
					Endpoint:      fake.URL(),
					RefreshBefore: &metav1.Duration{Duration: 10 * time.Second},
				},
				CredentialsSecretRef: tokensyncv1alpha1.SecretReference{Name: "creds"},
			},
		}
	}
	// readyWith waits for Ready=True with a token other than those in not.
	readyWith := func(name string, not ...string) string {
		t.Helper()
		var tok string
		eventually(t, 2*readyTimeout, func() error {
			tr := &tokensyncv1alpha1.TokenRequest{}
			if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, tr); err != nil {
				return err
			}
			if cond := readyCondition(tr); cond == nil || cond.Status != metav1.ConditionTrue {
				return fmt.Errorf("%s: Ready %+v", name, cond)
			}
			s := &corev1.Secret{}
			if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, s); err != nil {
				return err
			}
			tok = string(s.Data[tokensyncv1alpha1.SecretKeyToken])
			for _, old := range not {
				if tok == old {
					return fmt.Errorf("%s: not refreshed yet", name)
				}
			}
			return nil
		})
		return tok
	}

	create(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "creds", Namespace: ns, Labels: credentialsLabels()}, StringData: partnerCreds})
	start := time.Now()
	create(newTokenRequest("before"))
	first := readyWith("before")
	before := &tokensyncv1alpha1.TokenRequest{}
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "before"}, before); err != nil {
		t.Fatal(err)
	}
	due := before.Status.NextRefreshTime.Time

	down := time.Now()
	proxy.setDown(true)
	attemptsDown := fake.Attempts(providertest.Partner)
	// Down for at least 10s, and until the refresh has been due for a while.
	time.Sleep(time.Until(later(down.Add(10*time.Second), due.Add(3*time.Second))))
	if n := fake.Attempts(providertest.Partner); n != attemptsDown {
		t.Errorf("%d login requests while the API server was down: a token that cannot be stored was fetched", n-attemptsDown)
	}
	proxy.setDown(false)
	t.Logf("API server unreachable for %s", time.Since(down).Round(time.Second))
	if proxy.refused.Load() == 0 {
		t.Fatal("the manager did not try to reach the API server during the outage: the test cut nothing off")
	}

	second := readyWith("before", first)
	create(newTokenRequest("after"))
	readyWith("after")
	// Refreshes go on by themselves.
	readyWith("before", first, second)
	// Two TokenRequests, each refreshed 10 to 15 s before its 20 s token
	// expires (refreshBefore honoured up to half the lifetime, spread over 1
	// to 1.5 windows): at most one login per 5 s each.
	maxLogins := 2 * (1 + int(time.Since(start)/(5*time.Second)))
	if a, l := fake.Attempts(providertest.Partner), fake.Logins(providertest.Partner); a != l || l > maxLogins {
		t.Errorf("%d requests and %d logins, want no failed request and at most %d logins", a, l, maxLogins)
	}
}

// outageProxy passes TCP connections through to the API server, or, while
// down, drops every open connection and closes each new one at once.
type outageProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	down   bool
	conns  map[net.Conn]struct{}
	// refused counts the connections closed at once while down.
	refused atomic.Int64
}

func startOutageProxy(t *testing.T, apiServer string) *outageProxy {
	t.Helper()
	u, err := url.Parse(apiServer)
	if err != nil {
		t.Fatal(err)
	}
	target := u.Host
	if u.Port() == "" {
		target = net.JoinHostPort(u.Hostname(), "443")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &outageProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.setDown(true)
	})
	return p
}

func (p *outageProxy) addr() string { return p.ln.Addr().String() }

func (p *outageProxy) serve() {
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.pass(in)
	}
}

func (p *outageProxy) pass(in net.Conn) {
	if !p.track(in) {
		p.refused.Add(1)
		in.Close()
		return
	}
	out, err := net.Dial("tcp", p.target)
	if err != nil || !p.track(out) {
		in.Close()
		if out != nil {
			out.Close()
		}
		return
	}
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(out, in); done <- struct{}{} }()
	go func() { _, _ = io.Copy(in, out); done <- struct{}{} }()
	<-done
	in.Close()
	out.Close()
	p.mu.Lock()
	delete(p.conns, in)
	delete(p.conns, out)
	p.mu.Unlock()
}

// track records conn, unless the proxy is down.
func (p *outageProxy) track(conn net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.down {
		return false
	}
	p.conns[conn] = struct{}{}
	return true
}

func (p *outageProxy) setDown(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
	if down {
		for conn := range p.conns {
			conn.Close()
		}
		clear(p.conns)
	}
}

// largeTokenServer is an http-provider endpoint answering every login with
// a token of size bytes valid for an hour, counting the logins.
func largeTokenServer(t *testing.T, size int) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var logins atomic.Int32
	token := strings.Repeat("L", size)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		logins.Add(1)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"token":%q}`, token)
	}))
	t.Cleanup(srv.Close)
	return srv, &logins
}

// largeTokenLogin is the http provider's settings for largeTokenServer.
func largeTokenLogin() *tokensyncv1alpha1.HTTPSettings {
	return &tokensyncv1alpha1.HTTPSettings{
		Method: "POST", Path: "/login",
		Body: &tokensyncv1alpha1.HTTPBody{Format: "json", Fields: map[string]tokensyncv1alpha1.Template{
			"email": "{{ .email }}", "password": "{{ .password }}",
		}},
		Token:  tokensyncv1alpha1.HTTPToken{JSONPointer: "/token"},
		Expiry: tokensyncv1alpha1.HTTPExpiry{Lifetime: &metav1.Duration{Duration: time.Hour}},
	}
}

// TestSecretTooLargeStopsAcrossRestarts: a token the API server refuses to
// store for its size (60 KiB, copied by the data template into a Secret over
// the 1 MiB a Secret may hold) is not held: one login, SecretWriteFailed
// and Stalled, recorded in the status, and no second login, also after the
// manager restarts (a restart used to probe with a small placeholder, pass,
// and log in again). A forced refresh tries again.
func TestSecretTooLargeStopsAcrossRestarts(t *testing.T) {
	t.Parallel()
	srv, logins := largeTokenServer(t, 60_000)
	e := newEnv(t)
	e.createSecret("creds", map[string]string{"email": "e@example.com", "password": "pw"})
	data := map[string]tokensyncv1alpha1.DataTemplate{}
	for i := range 17 { // 17 × 60,000 bytes: inside the template sandbox's 1 MiB, over the Secret's with the token key
		data[fmt.Sprintf("copy-%02d", i)] = "{{ .token }}"
	}
	e.createTokenRequest("large", "http", "creds", func(tr *tokensyncv1alpha1.TokenRequest) {
		tr.Spec.Endpoint = srv.URL
		tr.Spec.HTTP = largeTokenLogin()
		tr.Spec.SecretTemplate = &tokensyncv1alpha1.SecretTemplate{Data: data}
	})
	check := func() {
		t.Helper()
		tr := e.waitCondition("large", metav1.ConditionFalse, tokensyncv1alpha1.ReasonSecretWriteFailed)
		stalled := meta.FindStatusCondition(tr.Status.Conditions, tokensyncv1alpha1.ConditionStalled)
		if stalled == nil || stalled.Status != metav1.ConditionTrue || stalled.Reason != tokensyncv1alpha1.ReasonSecretWriteFailed {
			t.Errorf("Stalled = %+v, want True with SecretWriteFailed", stalled)
		}
		if a := tr.Status.LastAttempt; a == nil || a.Result != tokensyncv1alpha1.ResultSecretTooLarge || tr.Status.NextRefreshTime != nil {
			t.Errorf("last attempt %+v, next refresh %v: want %s and no retry scheduled", a, tr.Status.NextRefreshTime, tokensyncv1alpha1.ResultSecretTooLarge)
		}
		if msg := readyCondition(tr).Message; !strings.Contains(msg, "larger than the API server accepts") || strings.Contains(msg, "LLLL") {
			t.Errorf("message %q: want the size named and no part of the token", msg)
		}
	}
	check()
	e.waitEvent("large", "Warning/SecretWriteFailed")
	if _, err := e.secret("large"); !apierrors.IsNotFound(err) {
		t.Errorf("the Secret exists: %v", err)
	}

	e.restart()
	consistently(t, 5*time.Second, func() error {
		if n := logins.Load(); n != 1 {
			return fmt.Errorf("%d logins, want 1: the size stop must hold across a restart", n)
		}
		return nil
	})
	check()

	e.forceRefresh("large", "try-again")
	eventually(t, readyTimeout, func() error {
		if n := logins.Load(); n != 2 {
			return fmt.Errorf("%d logins after a forced refresh, want 2", n)
		}
		return nil
	})
	check()
}

// TestSecretTooLarge: only a refusal for the Secret's size stops; a policy's
// or a quota's is retried with the token kept.
func TestSecretTooLarge(t *testing.T) {
	gr := schema.GroupResource{Resource: "secrets"}
	invalid := func(cause metav1.CauseType) error {
		return apierrors.NewInvalid(schema.GroupKind{Kind: "Secret"}, "tok", field.ErrorList{{Type: field.ErrorType(cause), Field: "data"}})
	}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"request entity too large", apierrors.NewRequestEntityTooLargeError("limit is 3145728"), true},
		{"data over 1 MiB", apierrors.NewInvalid(schema.GroupKind{Kind: "Secret"}, "tok", field.ErrorList{field.TooLong(field.NewPath("data"), "", 1<<20)}), true},
		{"etcd's request limit", apierrors.NewInternalError(fmt.Errorf("etcdserver: request is too large")), true},
		{"invalid for another reason", invalid(metav1.CauseTypeFieldValueInvalid), false},
		{"a policy", apierrors.NewForbidden(gr, "tok", fmt.Errorf("denied by policy")), false},
		{"a quota", apierrors.NewForbidden(gr, "tok", fmt.Errorf("exceeded quota")), false},
		{"not an API error", fmt.Errorf("connection refused"), false},
	}
	for _, tt := range tests {
		if got := secretTooLarge(tt.err); got != tt.want {
			t.Errorf("%s: secretTooLarge = %v, want %v", tt.name, got, tt.want)
		}
	}
}
