package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
)

// observer watches TokenRequests and tokensync's Secrets as their users
// would, noting when each change arrived. Latencies are measured to the
// moment the observer saw Ready, the same way for the operator and for the
// plain client.
type observer struct {
	mu  sync.Mutex
	trs map[types.NamespacedName]*trSeen
	// secrets holds the token history of the target Secrets in the
	// namespaces given to trackSecrets.
	secrets      map[types.NamespacedName]*secretSeen
	trackSecrets map[string]bool
}

// trState is what the observer has seen of one TokenRequest.
type trState struct {
	ready                  bool
	firstReady, readySince time.Time
	failedAttempts         int32
}

type trSeen struct {
	trState
	// firstReadyCh is closed when Ready is first seen True.
	firstReadyCh chan struct{}
	// plans are the refreshes the operator planned, in order: for each
	// token's expiry (status.expiresAt) its status.nextRefreshTime.
	plans []plannedRefresh
}

// plannedRefresh is when the operator planned to replace the token that
// expires at expiresAt.
type plannedRefresh struct {
	expiresAt, at time.Time
}

// tokenSeen is one token a Secret held, from the moment the observer saw it.
type tokenSeen struct {
	at     time.Time
	token  string
	expiry time.Time
}

type secretSeen struct {
	tokens []tokenSeen
	// empty is true while the Secret is gone or holds no readable token.
	empty bool
	// clobbered counts writes that replaced a token with none, or with one
	// already expired when written.
	clobbered int
}

func startObserver(ctx context.Context, cfg *rest.Config) (*observer, error) {
	c, err := cache.New(cfg, cache.Options{
		Scheme: scheme,
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Secret{}: {Label: labels.SelectorFromSet(labels.Set{tokensyncv1alpha1.LabelManagedBy: tokensyncv1alpha1.ManagedByValue})},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("observer cache: %w", err)
	}
	o := &observer{trs: map[types.NamespacedName]*trSeen{}, secrets: map[types.NamespacedName]*secretSeen{}, trackSecrets: map[string]bool{}}
	go func() { _ = c.Start(ctx) }()

	handlers := map[client.Object]toolscache.ResourceEventHandlerFuncs{
		&tokensyncv1alpha1.TokenRequest{}: {
			AddFunc:    func(obj any) { o.sawTokenRequest(obj) },
			UpdateFunc: func(_, obj any) { o.sawTokenRequest(obj) },
		},
		&corev1.Secret{}: {
			AddFunc:    func(obj any) { o.sawSecret(obj, false) },
			UpdateFunc: func(_, obj any) { o.sawSecret(obj, false) },
			DeleteFunc: func(obj any) { o.sawSecret(obj, true) },
		},
	}
	for obj, h := range handlers {
		informer, err := c.GetInformer(ctx, obj)
		if err != nil {
			return nil, fmt.Errorf("observer informer for %T: %w", obj, err)
		}
		if _, err := informer.AddEventHandler(h); err != nil {
			return nil, err
		}
	}
	if !c.WaitForCacheSync(ctx) {
		return nil, fmt.Errorf("observer cache did not sync")
	}
	return o, nil
}

func (o *observer) sawTokenRequest(obj any) {
	now := time.Now()
	tr, ok := obj.(*tokensyncv1alpha1.TokenRequest)
	if !ok {
		return
	}
	key := types.NamespacedName{Namespace: tr.Namespace, Name: tr.Name}
	ready := meta.IsStatusConditionTrue(tr.Status.Conditions, tokensyncv1alpha1.ConditionReady)
	o.mu.Lock()
	defer o.mu.Unlock()
	s := o.trLocked(key)
	s.failedAttempts = tr.Status.FailedAttempts
	if st := tr.Status; ready && st.ExpiresAt != nil && st.NextRefreshTime != nil {
		p := plannedRefresh{expiresAt: st.ExpiresAt.Time, at: st.NextRefreshTime.Time}
		if n := len(s.plans); n > 0 && s.plans[n-1].expiresAt.Equal(p.expiresAt) {
			s.plans[n-1] = p
		} else {
			s.plans = append(s.plans, p)
		}
	}
	if ready && !s.ready {
		s.readySince = now
		if s.firstReady.IsZero() {
			s.firstReady = now
			close(s.firstReadyCh)
		}
	}
	s.ready = ready
}

func (o *observer) trLocked(key types.NamespacedName) *trSeen {
	s, ok := o.trs[key]
	if !ok {
		s = &trSeen{firstReadyCh: make(chan struct{})}
		o.trs[key] = s
	}
	return s
}

func (o *observer) sawSecret(obj any, deleted bool) {
	now := time.Now()
	if d, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	s, ok := obj.(*corev1.Secret)
	if !ok {
		return
	}
	key := types.NamespacedName{Namespace: s.Namespace, Name: s.Name}
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.trackSecrets[s.Namespace] {
		return
	}
	seen, ok := o.secrets[key]
	if !ok {
		seen = &secretSeen{}
		o.secrets[key] = seen
	}
	token := string(s.Data[tokensyncv1alpha1.SecretKeyToken])
	expiry, readable := tokenExpiry(s)
	if deleted || token == "" || !readable {
		if len(seen.tokens) > 0 && !seen.empty {
			seen.clobbered++
		}
		seen.empty = true
		return
	}
	seen.empty = false
	if n := len(seen.tokens); n > 0 && seen.tokens[n-1].token == token {
		return
	}
	if !now.Before(expiry) {
		seen.clobbered++
	}
	seen.tokens = append(seen.tokens, tokenSeen{at: now, token: token, expiry: expiry})
}

// tokenExpiry is when the Secret's token expires: the JWT's exp claim, the
// provider's own word, when the token is a JWT; otherwise the expiresAt key.
func tokenExpiry(s *corev1.Secret) (time.Time, bool) {
	if parts := strings.Split(string(s.Data[tokensyncv1alpha1.SecretKeyToken]), "."); len(parts) == 3 {
		if payload, err := base64.RawURLEncoding.DecodeString(parts[1]); err == nil {
			var claims struct {
				Exp float64 `json:"exp"`
			}
			if json.Unmarshal(payload, &claims) == nil && claims.Exp > 0 {
				sec, frac := math.Modf(claims.Exp)
				return time.Unix(int64(sec), int64(frac*1e9)), true
			}
		}
	}
	t, err := time.Parse(time.RFC3339, string(s.Data[tokensyncv1alpha1.SecretKeyExpiresAt]))
	return t, err == nil
}

// waitReady waits until key is first seen Ready and returns when it was.
func (o *observer) waitReady(ctx context.Context, key types.NamespacedName) (time.Time, error) {
	o.mu.Lock()
	s := o.trLocked(key)
	o.mu.Unlock()
	select {
	case <-s.firstReadyCh:
		o.mu.Lock()
		defer o.mu.Unlock()
		return s.firstReady, nil
	case <-ctx.Done():
		return time.Time{}, fmt.Errorf("%s not Ready: %w", key, ctx.Err())
	}
}

// states are the states of b's TokenRequests, in order.
func (o *observer) states(b batch) []trState {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make([]trState, b.n)
	for i := range b.n {
		if s, ok := o.trs[b.key(i)]; ok {
			out[i] = s.trState
		}
	}
	return out
}

// countReady counts b's TokenRequests that are Ready now.
func (o *observer) countReady(b batch) int {
	n := 0
	for _, s := range o.states(b) {
		if s.ready {
			n++
		}
	}
	return n
}

// waitFirstReady waits until every TokenRequest of b has been Ready once and
// returns when the last of them first was.
func (o *observer) waitFirstReady(ctx context.Context, b batch, timeout time.Duration) (time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last time.Time
	for i := range b.n {
		t, err := o.waitReady(ctx, b.key(i))
		if err != nil {
			return last, fmt.Errorf("%w (%d of %d Ready after %s)", err, o.countReady(b), b.n, timeout)
		}
		if t.After(last) {
			last = t
		}
	}
	return last, nil
}

// plans are the refreshes the operator planned for b's TokenRequests.
func (o *observer) plans(b batch) [][]plannedRefresh {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make([][]plannedRefresh, b.n)
	for i := range b.n {
		if s, ok := o.trs[b.key(i)]; ok {
			out[i] = slices.Clone(s.plans)
		}
	}
	return out
}

// trackSecretsIn starts keeping the token history of ns's target Secrets.
func (o *observer) trackSecretsIn(ns string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.trackSecrets[ns] = true
}

// histories are the tokens each of b's target Secrets held, in order, and
// the writes that clobbered a token in all of them.
func (o *observer) histories(b batch) (tokens [][]tokenSeen, clobbered int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	tokens = make([][]tokenSeen, b.n)
	for i := range b.n {
		if seen, ok := o.secrets[b.key(i)]; ok {
			tokens[i] = slices.Clone(seen.tokens)
			clobbered += seen.clobbered
		}
	}
	return tokens, clobbered
}

// secretSamples counts looks at a namespace's target Secrets, by what each
// Secret held when looked at.
type secretSamples struct {
	holding, expired, empty int
}

func (s secretSamples) total() int { return s.holding + s.expired + s.empty }

// sample looks at the latest state of ns's tracked Secrets every 250 ms
// until the returned function is called, which returns the totals.
func (o *observer) sample(ctx context.Context, ns string) (stop func() secretSamples) {
	stopCh := make(chan struct{})
	done := make(chan secretSamples, 1)
	go func() {
		var total secretSamples
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stopCh:
				done <- total
				return
			case <-ctx.Done():
				done <- total
				return
			case now := <-tick.C:
				o.mu.Lock()
				for key, seen := range o.secrets {
					switch {
					case key.Namespace != ns || len(seen.tokens) == 0:
					case seen.empty:
						total.empty++
					case !now.Before(seen.tokens[len(seen.tokens)-1].expiry):
						total.expired++
					default:
						total.holding++
					}
				}
				o.mu.Unlock()
			}
		}
	}()
	return func() secretSamples {
		close(stopCh)
		return <-done
	}
}

// waitTokens waits until each of keys' Secrets has held at least n
// distinct tokens and returns when the last of those n-th tokens was
// first seen, and how many distinct tokens the Secrets hold now.
func (o *observer) waitTokens(ctx context.Context, keys []types.NamespacedName, n int, timeout time.Duration) (last time.Time, holding int, err error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		o.mu.Lock()
		done, latest := 0, map[string]bool{}
		last = time.Time{}
		for _, k := range keys {
			seen, ok := o.secrets[k]
			if !ok || len(seen.tokens) < n {
				continue
			}
			done++
			if at := seen.tokens[n-1].at; at.After(last) {
				last = at
			}
			latest[seen.tokens[len(seen.tokens)-1].token] = true
		}
		o.mu.Unlock()
		if done == len(keys) {
			return last, len(latest), nil
		}
		select {
		case <-ctx.Done():
			return time.Time{}, 0, fmt.Errorf("%d of %d Secrets held %d tokens after %s: %w", done, len(keys), n, timeout, ctx.Err())
		case <-tick.C:
		}
	}
}

// tokenCounts are how many distinct tokens each of keys' Secrets has held.
func (o *observer) tokenCounts(keys []types.NamespacedName) []int {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make([]int, len(keys))
	for i, k := range keys {
		if seen, ok := o.secrets[k]; ok {
			out[i] = len(seen.tokens)
		}
	}
	return out
}
