// Package metricsauth guards the manager's /metrics the way the Kubernetes
// API server guards its own endpoints: a scraper presents a bearer token, a
// TokenReview says whose it is, and a SubjectAccessReview says whether that
// user may use the request's verb on its path (a non-resource URL, as the
// metrics-reader ClusterRole grants it).
//
// It does what controller-runtime's WithAuthenticationAndAuthorization
// filter does, with the two review APIs of client-go, and so keeps
// k8s.io/apiserver and what it brings (CEL, gRPC, OpenTelemetry: about 200
// packages) out of the manager: every build of it compiles less, for each
// architecture of the image.
//
// Answers are cached as the API server's delegating authenticator and
// authorizer cache them (a token's review for a minute, an allow for five, a
// deny for thirty seconds), keyed by a hash: no token is kept, logged or
// written back.
package metricsauth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	authenticationclient "k8s.io/client-go/kubernetes/typed/authentication/v1"
	authorizationclient "k8s.io/client-go/kubernetes/typed/authorization/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

// How long answers are kept, as the API server's delegating authenticator
// and authorizer (and controller-runtime's filter) keep them.
const (
	TokenTTL = time.Minute
	AllowTTL = 5 * time.Minute
	DenyTTL  = 30 * time.Second
	// ReviewTimeout bounds each TokenReview and SubjectAccessReview.
	ReviewTimeout = 10 * time.Second
	// MaxCached bounds each cache: a scraper that sends a new token on every
	// request costs a review each, never memory.
	MaxCached = 4096
)

// TokenReviewer and AccessReviewer are the two calls the filter makes.
type TokenReviewer interface {
	Create(ctx context.Context, review *authenticationv1.TokenReview, opts metav1.CreateOptions) (*authenticationv1.TokenReview, error)
}

type AccessReviewer interface {
	Create(ctx context.Context, review *authorizationv1.SubjectAccessReview, opts metav1.CreateOptions) (*authorizationv1.SubjectAccessReview, error)
}

// WithAuthenticationAndAuthorization is a metrics server FilterProvider.
func WithAuthenticationAndAuthorization(config *rest.Config, httpClient *http.Client) (metricsserver.Filter, error) {
	authn, err := authenticationclient.NewForConfigAndClient(config, httpClient)
	if err != nil {
		return nil, err
	}
	authz, err := authorizationclient.NewForConfigAndClient(config, httpClient)
	if err != nil {
		return nil, err
	}
	g := New(authn.TokenReviews(), authz.SubjectAccessReviews())
	return g.Filter, nil
}

// Guard checks requests; New makes one.
type Guard struct {
	tokens TokenReviewer
	access AccessReviewer
	clock  clock.PassiveClock

	users     cache[*authenticationv1.UserInfo] // nil: the token is not valid
	decisions cache[bool]
}

// New returns a Guard that asks tokens and access.
func New(tokens TokenReviewer, access AccessReviewer) *Guard {
	return &Guard{tokens: tokens, access: access, clock: clock.RealClock{}}
}

// Filter wraps the metrics handler.
func (g *Guard) Filter(log logr.Logger, next http.Handler) (http.Handler, error) {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		token, ok := bearerToken(req)
		if !ok {
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
			return
		}
		user, err := g.authenticate(req.Context(), token)
		if err != nil {
			log.Error(err, "Authentication failed")
			http.Error(w, "Authentication failed", http.StatusInternalServerError)
			return
		}
		if user == nil {
			log.V(4).Info("Authentication failed: the token is not valid")
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
			return
		}
		verb, path := strings.ToLower(req.Method), req.URL.Path
		allowed, err := g.authorize(req.Context(), user, verb, path)
		if err != nil {
			log.Error(err, "Authorization failed", "user", user.Username)
			http.Error(w, "Authorization for user "+user.Username+" failed", http.StatusInternalServerError)
			return
		}
		if !allowed {
			log.V(4).Info("Authorization denied", "user", user.Username, "verb", verb, "path", path)
			http.Error(w, "Authorization denied for user "+user.Username, http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, req)
	}), nil
}

// bearerToken reads "Authorization: Bearer <token>" (the scheme in any case).
func bearerToken(req *http.Request) (string, bool) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(req.Header.Get("Authorization")), " ")
	if !ok || !strings.EqualFold(scheme, "bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// authenticate returns the token's user, or nil for a token the API server
// does not accept. An error is a review that could not be made; it is not
// cached.
func (g *Guard) authenticate(ctx context.Context, token string) (*authenticationv1.UserInfo, error) {
	key := hash(token)
	if user, ok := g.users.get(key, g.clock.Now()); ok {
		return user, nil
	}
	ctx, cancel := context.WithTimeout(ctx, ReviewTimeout)
	defer cancel()
	review, err := g.tokens.Create(ctx, &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: token}}, metav1.CreateOptions{})
	if err != nil {
		// The client's errors name the API and its status, never the body sent.
		return nil, fmt.Errorf("TokenReview: %w", err)
	}
	var user *authenticationv1.UserInfo
	if review.Status.Authenticated {
		user = review.Status.User.DeepCopy()
	}
	now := g.clock.Now()
	g.users.put(key, user, now, now.Add(TokenTTL))
	return user, nil
}

func (g *Guard) authorize(ctx context.Context, user *authenticationv1.UserInfo, verb, path string) (bool, error) {
	key := decisionKey(user, verb, path)
	if allowed, ok := g.decisions.get(key, g.clock.Now()); ok {
		return allowed, nil
	}
	extra := make(map[string]authorizationv1.ExtraValue, len(user.Extra))
	for k, v := range user.Extra {
		extra[k] = authorizationv1.ExtraValue(v)
	}
	ctx, cancel := context.WithTimeout(ctx, ReviewTimeout)
	defer cancel()
	review, err := g.access.Create(ctx, &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User: user.Username, UID: user.UID, Groups: user.Groups, Extra: extra,
		NonResourceAttributes: &authorizationv1.NonResourceAttributes{Path: path, Verb: verb},
	}}, metav1.CreateOptions{})
	if err != nil {
		return false, fmt.Errorf("SubjectAccessReview: %w", err)
	}
	allowed := review.Status.Allowed && !review.Status.Denied
	ttl := DenyTTL
	if allowed {
		ttl = AllowTTL
	}
	now := g.clock.Now()
	g.decisions.put(key, allowed, now, now.Add(ttl))
	return allowed, nil
}

func hash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// decisionKey names a user (all that a SubjectAccessReview is asked about
// it), a verb and a path; each part is length-prefixed so that no two
// questions share a key.
func decisionKey(user *authenticationv1.UserInfo, verb, path string) string {
	var b strings.Builder
	add := func(s string) { fmt.Fprintf(&b, "%d:%s", len(s), s) }
	add(user.Username)
	add(user.UID)
	groups := slices.Clone(user.Groups)
	sort.Strings(groups)
	add(strings.Join(groups, "\x00"))
	keys := make([]string, 0, len(user.Extra))
	for k := range user.Extra {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		add(k)
		add(strings.Join(user.Extra[k], "\x00"))
	}
	add(verb)
	add(path)
	return hash(b.String())
}

// cache is a map with an expiry per entry and at most MaxCached entries.
type cache[V any] struct {
	mu      sync.Mutex
	entries map[string]entry[V]
}

type entry[V any] struct {
	value   V
	expires time.Time
}

func (c *cache[V]) get(key string, now time.Time) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok || !now.Before(e.expires) {
		var zero V
		return zero, false
	}
	return e.value, true
}

// put keeps value until expires. When the cache is full, the expired
// entries go, and if none has expired, all of them: a cache is only ever a
// saving of reviews.
func (c *cache[V]) put(key string, value V, now, expires time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = map[string]entry[V]{}
	}
	if _, ok := c.entries[key]; !ok && len(c.entries) >= MaxCached {
		for k, e := range c.entries {
			if !now.Before(e.expires) {
				delete(c.entries, k)
			}
		}
		if len(c.entries) >= MaxCached {
			clear(c.entries)
		}
	}
	c.entries[key] = entry[V]{value: value, expires: expires}
}

func (c *cache[V]) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}
