package metricsauth

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	authenticationclient "k8s.io/client-go/kubernetes/typed/authentication/v1"
	authorizationclient "k8s.io/client-go/kubernetes/typed/authorization/v1"
	coreclient "k8s.io/client-go/kubernetes/typed/core/v1"
	rbacclient "k8s.io/client-go/kubernetes/typed/rbac/v1"
	"k8s.io/client-go/rest"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// The guard is tested against a real kube-apiserver (envtest): its
// ServiceAccount tokens, TokenReviews, RBAC and SubjectAccessReviews.
var cfg *rest.Config

func TestMain(m *testing.M) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		// `make test` sets it; a plain `go test` finds the binaries if built.
		if dirs, _ := filepath.Glob(filepath.Join("..", "..", "bin", "k8s", "*")); len(dirs) > 0 {
			os.Setenv("KUBEBUILDER_ASSETS", dirs[len(dirs)-1])
		} else {
			fmt.Fprintln(os.Stderr, "envtest binaries not found: run `make test` (or hack/envtest-binaries.sh) first")
			os.Exit(1)
		}
	}
	env := &envtest.Environment{}
	var err error
	if cfg, err = env.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "start envtest: %v\n", err)
		_ = env.Stop()
		os.Exit(1)
	}
	code := m.Run()
	if err := env.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "stop envtest: %v\n", err)
	}
	os.Exit(code)
}

// countingTransport counts the reviews the guard asks the API server for.
type countingTransport struct {
	next                  http.RoundTripper
	tokenReviews, reviews atomic.Int64
}

func (c *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	switch {
	case strings.HasSuffix(req.URL.Path, "/tokenreviews"):
		c.tokenReviews.Add(1)
	case strings.HasSuffix(req.URL.Path, "/subjectaccessreviews"):
		c.reviews.Add(1)
	}
	return c.next.RoundTrip(req)
}

// logSink keeps every line the guard logs, at every verbosity.
type logSink struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *logSink) logger() logr.Logger {
	return funcr.New(func(prefix, args string) {
		s.mu.Lock()
		defer s.mu.Unlock()
		fmt.Fprintln(&s.buf, prefix, args)
	}, funcr.Options{Verbosity: 10})
}

func (s *logSink) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

func TestGuardAgainstTheAPIServer(t *testing.T) {
	ctx := context.Background()
	core := coreclient.NewForConfigOrDie(cfg)
	rbac := rbacclient.NewForConfigOrDie(cfg)
	const ns = "monitoring"
	if _, err := core.Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	token := func(name string) string {
		t.Helper()
		sa, err := core.ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		tr, err := core.ServiceAccounts(ns).CreateToken(ctx, sa.Name, &authenticationv1.TokenRequest{
			Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](600)}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return tr.Status.Token
	}
	bind := func(name string) {
		t.Helper()
		if _, err := rbac.ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "metrics-reader-" + name},
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "metrics-reader"},
			Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: name, Namespace: ns}},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// As config/rbac/metrics_reader_role.yaml.
	if _, err := rbac.ClusterRoles().Create(ctx, &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "metrics-reader"},
		Rules:      []rbacv1.PolicyRule{{NonResourceURLs: []string{"/metrics"}, Verbs: []string{"get"}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	reader, stranger := token("prometheus"), token("stranger")
	bind("prometheus")
	const garbage = "sentinel-not-a-token-7f3a"

	counts := &countingTransport{}
	httpClient, err := rest.HTTPClientFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	counts.next = httpClient.Transport
	httpClient.Transport = counts
	authn, err := authenticationclient.NewForConfigAndClient(cfg, httpClient)
	if err != nil {
		t.Fatal(err)
	}
	authz, err := authorizationclient.NewForConfigAndClient(cfg, httpClient)
	if err != nil {
		t.Fatal(err)
	}
	guard := New(authn.TokenReviews(), authz.SubjectAccessReviews())
	clock := clocktesting.NewFakePassiveClock(time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC))
	guard.clock = clock
	logs := &logSink{}
	handler, err := guard.Filter(logs.logger(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "tokensync_up 1\n")
	}))
	if err != nil {
		t.Fatal(err)
	}
	server := httptest.NewServer(handler)
	defer server.Close()

	var bodies bytes.Buffer
	get := func(method, path, authorization string) int {
		t.Helper()
		req, _ := http.NewRequest(method, server.URL+path, nil)
		if authorization != "" {
			req.Header.Set("Authorization", authorization)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		bodies.Write(body)
		return resp.StatusCode
	}

	for _, tc := range []struct {
		name, method, path, authorization string
		want                              int
	}{
		{"no token", http.MethodGet, "/metrics", "", http.StatusUnauthorized},
		{"another scheme", http.MethodGet, "/metrics", "Basic " + reader, http.StatusUnauthorized},
		{"an empty bearer token", http.MethodGet, "/metrics", "Bearer ", http.StatusUnauthorized},
		{"a token the API server does not know", http.MethodGet, "/metrics", "Bearer " + garbage, http.StatusUnauthorized},
		{"a ServiceAccount without the metrics-reader role", http.MethodGet, "/metrics", "Bearer " + stranger, http.StatusForbidden},
		{"the scraper", http.MethodGet, "/metrics", "Bearer " + reader, http.StatusOK},
		{"the scraper, the scheme in lower case", http.MethodGet, "/metrics", "bearer " + reader, http.StatusOK},
		{"the scraper, another verb", http.MethodPost, "/metrics", "Bearer " + reader, http.StatusForbidden},
		{"the scraper, another path", http.MethodGet, "/debug/pprof", "Bearer " + reader, http.StatusForbidden},
	} {
		if got := get(tc.method, tc.path, tc.authorization); got != tc.want {
			t.Errorf("%s: %s %s: status %d, want %d", tc.name, tc.method, tc.path, got, tc.want)
		}
	}

	t.Run("answers are cached, each for its time", func(t *testing.T) {
		reviews := func() (int64, int64) { return counts.tokenReviews.Swap(0), counts.reviews.Swap(0) }
		reviews()
		for range 3 {
			if got := get(http.MethodGet, "/metrics", "Bearer "+reader); got != http.StatusOK {
				t.Fatalf("status %d", got)
			}
		}
		if tr, sar := reviews(); tr != 0 || sar != 0 {
			t.Errorf("cached scrapes made %d TokenReviews and %d SubjectAccessReviews, want none", tr, sar)
		}
		clock.SetTime(clock.Now().Add(TokenTTL))
		get(http.MethodGet, "/metrics", "Bearer "+reader)
		if tr, sar := reviews(); tr != 1 || sar != 0 {
			t.Errorf("after %s: %d TokenReviews and %d SubjectAccessReviews, want 1 and 0 (an allow is kept %s)", TokenTTL, tr, sar, AllowTTL)
		}
		clock.SetTime(clock.Now().Add(AllowTTL))
		get(http.MethodGet, "/metrics", "Bearer "+reader)
		if tr, sar := reviews(); tr != 1 || sar != 1 {
			t.Errorf("after %s: %d TokenReviews and %d SubjectAccessReviews, want 1 and 1", AllowTTL, tr, sar)
		}

		// A deny is kept for DenyTTL: the role bound meanwhile lets the
		// stranger in once it has passed.
		if got := get(http.MethodGet, "/metrics", "Bearer "+stranger); got != http.StatusForbidden {
			t.Fatalf("stranger: status %d", got)
		}
		bind("stranger")
		if got := get(http.MethodGet, "/metrics", "Bearer "+stranger); got != http.StatusForbidden {
			t.Errorf("stranger, within %s of the deny: status %d, want the cached 403", DenyTTL, got)
		}
		clock.SetTime(clock.Now().Add(DenyTTL))
		var got int
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			// RBAC's own cache may take a moment to see the new binding.
			clock.SetTime(clock.Now().Add(DenyTTL))
			if got = get(http.MethodGet, "/metrics", "Bearer "+stranger); got == http.StatusOK {
				break
			}
		}
		if got != http.StatusOK {
			t.Errorf("stranger, bound, after %s: status %d, want 200", DenyTTL, got)
		}
	})

	t.Run("the manager's filter provider", func(t *testing.T) {
		filter, err := WithAuthenticationAndAuthorization(cfg, httpClient)
		if err != nil {
			t.Fatal(err)
		}
		h, err := filter(logs.logger(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
		if err != nil {
			t.Fatal(err)
		}
		for token, want := range map[string]int{reader: http.StatusOK, garbage: http.StatusUnauthorized} {
			req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
			req.Header.Set("Authorization", "Bearer "+token)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			bodies.Write(rec.Body.Bytes())
			if rec.Code != want {
				t.Errorf("status %d, want %d", rec.Code, want)
			}
		}
	})

	for name, secret := range map[string]string{"the scraper's token": reader, "the stranger's token": stranger, "the sentinel": garbage} {
		if strings.Contains(logs.String(), secret) || strings.Contains(bodies.String(), secret) {
			t.Errorf("%s is in the guard's logs or answers", name)
		}
	}
	if !strings.Contains(logs.String(), "stranger") {
		t.Errorf("the denial is not logged with the user's name:\n%s", logs.String())
	}
}

// stubTokens fails every review, as an API server out of reach does.
type stubTokens struct{ calls atomic.Int64 }

func (s *stubTokens) Create(context.Context, *authenticationv1.TokenReview, metav1.CreateOptions) (*authenticationv1.TokenReview, error) {
	s.calls.Add(1)
	return nil, errors.New("connection refused")
}

type stubAccess struct{}

func (stubAccess) Create(context.Context, *authorizationv1.SubjectAccessReview, metav1.CreateOptions) (*authorizationv1.SubjectAccessReview, error) {
	return nil, errors.New("unexpected")
}

func TestAReviewThatFailsIsNotCached(t *testing.T) {
	tokens := &stubTokens{}
	guard := New(tokens, stubAccess{})
	logs := &logSink{}
	handler, _ := guard.Filter(logs.logger(), http.NotFoundHandler())
	const sentinel = "sentinel-token-55e1"
	for range 2 {
		req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
		req.Header.Set("Authorization", "Bearer "+sentinel)
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		if rec.Code != http.StatusInternalServerError {
			t.Errorf("status %d, want 500", rec.Code)
		}
		if strings.Contains(rec.Body.String(), sentinel) {
			t.Error("the token is in the answer")
		}
	}
	if n := tokens.calls.Load(); n != 2 {
		t.Errorf("%d TokenReviews for two requests, want 2: a failed review is not an answer to keep", n)
	}
	if strings.Contains(logs.String(), sentinel) {
		t.Error("the token is in the logs")
	}
}

func TestCachesAreBounded(t *testing.T) {
	var c cache[bool]
	now := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	for i := range MaxCached {
		c.put(fmt.Sprint("old", i), true, now, now.Add(time.Minute))
	}
	now = now.Add(time.Minute)
	c.put("new", true, now, now.Add(time.Minute))
	if got := c.len(); got != 1 {
		t.Errorf("a full cache kept %d entries after its expired ones, want 1", got)
	}
	// A flood of distinct tokens, none expired: never more than MaxCached.
	for i := range 3 * MaxCached {
		c.put(fmt.Sprint("flood", i), false, now, now.Add(time.Minute))
		if c.len() > MaxCached {
			t.Fatalf("%d entries, more than %d", c.len(), MaxCached)
		}
	}
	if _, ok := c.get(fmt.Sprint("flood", 3*MaxCached-1), now); !ok {
		t.Error("the newest entry is not kept")
	}
	if _, ok := c.get("flood0", now.Add(time.Minute)); ok {
		t.Error("an expired entry is returned")
	}
}

func TestDecisionKeysDoNotCollide(t *testing.T) {
	a := decisionKey(&authenticationv1.UserInfo{Username: "a", Groups: []string{"b"}}, "get", "/metrics")
	b := decisionKey(&authenticationv1.UserInfo{Username: "ab"}, "get", "/metrics")
	c := decisionKey(&authenticationv1.UserInfo{Username: "a", Groups: []string{"b"}}, "get", "/metrics/")
	d := decisionKey(&authenticationv1.UserInfo{Username: "a", Groups: []string{"b"}, Extra: map[string]authenticationv1.ExtraValue{"k": {"v"}}}, "get", "/metrics")
	if a == b || a == c || a == d {
		t.Error("two questions share a key")
	}
	if e := decisionKey(&authenticationv1.UserInfo{Username: "a", Groups: []string{"b"}}, "get", "/metrics"); e != a {
		t.Error("one question, two keys")
	}
}
