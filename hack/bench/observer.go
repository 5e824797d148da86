package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
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
	cache cache.Cache

	mu  sync.Mutex
	trs map[types.NamespacedName]*trSeen
	// secrets holds the token history of the target Secrets in the
	// namespaces given to trackSecrets.
	secrets      map[types.NamespacedName]*secretSeen
	trackSecrets map[string]bool
}

type trSeen struct {
	ready          bool
	firstReady     time.Time
	readySince     time.Time
	failedAttempts int32
	// firstReadyCh is closed when Ready is first seen True.
	firstReadyCh chan struct{}
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
	o := &observer{cache: c, trs: map[types.NamespacedName]*trSeen{}, secrets: map[types.NamespacedName]*secretSeen{}, trackSecrets: map[string]bool{}}
	go func() { _ = c.Start(ctx) }()

	trInformer, err := c.GetInformer(ctx, &tokensyncv1alpha1.TokenRequest{})
	if err != nil {
		return nil, fmt.Errorf("TokenRequest informer: %w", err)
	}
	if _, err := trInformer.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { o.sawTokenRequest(obj) },
		UpdateFunc: func(_, obj any) { o.sawTokenRequest(obj) },
	}); err != nil {
		return nil, err
	}
	secretInformer, err := c.GetInformer(ctx, &corev1.Secret{})
	if err != nil {
		return nil, fmt.Errorf("Secret informer: %w", err)
	}
	if _, err := secretInformer.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { o.sawSecret(obj, false) },
		UpdateFunc: func(_, obj any) { o.sawSecret(obj, false) },
		DeleteFunc: func(obj any) { o.sawSecret(obj, true) },
	}); err != nil {
		return nil, err
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

// readyCh is closed when the TokenRequest is first seen Ready.
func (o *observer) readyCh(key types.NamespacedName) <-chan struct{} {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.trLocked(key).firstReadyCh
}

// firstReady is when the TokenRequest was first seen Ready.
func (o *observer) firstReady(key types.NamespacedName) time.Time {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.trLocked(key).firstReady
}

// waitFirstReady waits until every TokenRequest of b has been Ready once.
func (o *observer) waitFirstReady(ctx context.Context, b batch, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for i := range b.n {
		select {
		case <-o.readyCh(types.NamespacedName{Namespace: b.ns, Name: b.name(i)}):
		case <-ctx.Done():
			return fmt.Errorf("%s/%s not Ready within %s (%d of %d were)", b.ns, b.name(i), timeout, o.countReady(b), b.n)
		}
	}
	return nil
}

// countReady counts b's TokenRequests that are Ready now.
func (o *observer) countReady(b batch) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := 0
	for i := range b.n {
		if s, ok := o.trs[types.NamespacedName{Namespace: b.ns, Name: b.name(i)}]; ok && s.ready {
			n++
		}
	}
	return n
}

// notReady returns b's TokenRequests that are not Ready now, with their
// failed attempts.
func (o *observer) notReady(b batch) map[string]int32 {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := map[string]int32{}
	for i := range b.n {
		s, ok := o.trs[types.NamespacedName{Namespace: b.ns, Name: b.name(i)}]
		if !ok || !s.ready {
			var attempts int32
			if ok {
				attempts = s.failedAttempts
			}
			out[b.name(i)] = attempts
		}
	}
	return out
}

// readySince is when each of b's Ready TokenRequests last became Ready.
func (o *observer) readySince(b batch) []time.Time {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make([]time.Time, b.n)
	for i := range b.n {
		if s, ok := o.trs[types.NamespacedName{Namespace: b.ns, Name: b.name(i)}]; ok && s.ready {
			out[i] = s.readySince
		}
	}
	return out
}

// trackSecrets starts keeping the token history of ns's target Secrets.
func (o *observer) trackSecretsIn(ns string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.trackSecrets[ns] = true
}

// secretSample is one look at a namespace's target Secrets.
type secretSample struct {
	holding, expired, empty int
}

// sampleSecrets looks at the latest state of every tracked Secret in ns.
func (o *observer) sampleSecrets(ns string, now time.Time) secretSample {
	o.mu.Lock()
	defer o.mu.Unlock()
	var s secretSample
	for key, seen := range o.secrets {
		if key.Namespace != ns || len(seen.tokens) == 0 {
			continue
		}
		switch {
		case seen.empty:
			s.empty++
		case !now.Before(seen.tokens[len(seen.tokens)-1].expiry):
			s.expired++
		default:
			s.holding++
		}
	}
	return s
}

// tokenHistory returns the tokens the Secret named key held, in order, and
// how many writes clobbered a token.
func (o *observer) tokenHistory(key types.NamespacedName) ([]tokenSeen, int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	seen, ok := o.secrets[key]
	if !ok {
		return nil, 0
	}
	return append([]tokenSeen(nil), seen.tokens...), seen.clobbered
}
