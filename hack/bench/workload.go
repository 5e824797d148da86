package main

import (
	"context"
	"fmt"
	"time"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
	"github.com/tokensync/tokensync/providers/providertest"
)

// providerNames are the providers the fake serves.
var providerNames = []string{providertest.AML, providertest.AmpliFi, providertest.Partner}

// batch is a set of TokenRequests of one provider in one namespace, each
// with its own credentials Secret and login identity, so the fake's
// per-identity counters tell each TokenRequest's logins apart.
type batch struct {
	ns, provider, prefix string
	n                    int
	// refreshBefore is spec.refreshBefore; zero leaves it unset (the
	// operator's default window).
	refreshBefore time.Duration
	// endpoints are the fake's base URLs the TokenRequests use, in turn:
	// TokenRequest i logs in at endpoints[i % len(endpoints)], so that
	// TokenRequests created one after another go to different hosts.
	endpoints []string
}

func (b batch) name(i int) string { return fmt.Sprintf("%s-%05d", b.prefix, i) }

func (b batch) key(i int) types.NamespacedName {
	return types.NamespacedName{Namespace: b.ns, Name: b.name(i)}
}

func (b batch) credentialsName(i int) string { return b.name(i) + "-creds" }

// identity is what the fake counts i's logins under (providertest.LoginsFor).
func (b batch) identity(i int) string {
	id := b.ns + "." + b.name(i)
	if b.provider == providertest.AML {
		return id + "@bench.example"
	}
	return id
}

func (b batch) credentials(i int) map[string]string {
	switch b.provider {
	case providertest.AML:
		return map[string]string{"email": b.identity(i), "password": "bench-password"}
	case providertest.AmpliFi:
		return map[string]string{"channel": "test", "deviceTag": b.identity(i)}
	default:
		return map[string]string{"accessKey": b.identity(i), "secret": "bench-secret"}
	}
}

func (b batch) credentialsSecret(i int) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: b.credentialsName(i), Namespace: b.ns,
			Labels: map[string]string{tokensyncv1alpha1.LabelCredentials: "true"}},
		StringData: b.credentials(i),
	}
}

func (b batch) tokenRequest(i int) *tokensyncv1alpha1.TokenRequest {
	tr := &tokensyncv1alpha1.TokenRequest{
		ObjectMeta: metav1.ObjectMeta{Name: b.name(i), Namespace: b.ns},
		Spec: tokensyncv1alpha1.TokenRequestSpec{
			LoginSpec: tokensyncv1alpha1.LoginSpec{
				Provider: tokensyncv1alpha1.Provider(b.provider),
				Endpoint: b.endpoints[i%len(b.endpoints)],
			},
			CredentialsSecretRef: tokensyncv1alpha1.SecretReference{Name: b.credentialsName(i)},
		},
	}
	if b.refreshBefore > 0 {
		tr.Spec.RefreshBefore = &metav1.Duration{Duration: b.refreshBefore}
	}
	return tr
}

// createCredentials creates every credentials Secret of b. It runs before
// the TokenRequests so that the operator's metadata cache already knows them
// when the first reconcile comes.
func createCredentials(ctx context.Context, c client.Client, b batch) error {
	return parallel(ctx, b.n, creators, func(ctx context.Context, i int) error {
		if err := c.Create(ctx, b.credentialsSecret(i)); err != nil {
			return fmt.Errorf("create credentials Secret %s/%s: %w", b.ns, b.credentialsName(i), err)
		}
		return nil
	})
}

// loginsPerIdentity returns the fake's login count for each TokenRequest of b.
func loginsPerIdentity(fake *providertest.Server, b batch) []int {
	out := make([]int, b.n)
	for i := range out {
		out[i] = fake.LoginsFor(b.provider, b.identity(i))
	}
	return out
}

// creators is how many clients create a batch's objects at once, except
// the burst's TokenRequests (scale.burstCreators).
const creators = 32

// parallel runs fn for 0..n-1 on workers goroutines and returns the first
// error; after one, the remaining indexes are skipped.
func parallel(ctx context.Context, n, workers int, fn func(ctx context.Context, i int) error) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(workers)
	for i := range n {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error { return fn(gctx, i) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return ctx.Err()
}
