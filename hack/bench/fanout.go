package main

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
	"github.com/tokensync/tokensync/providers/providertest"
)

// Scenario 9: one ClusterTokenRequest fanned out to sc.fanoutN namespaces.
// The plain client and the operator write the same namespaces, each its own
// Secret name and with credentials of its own, so that the observer's
// histories and the fake's per-identity login counts tell them apart.
const (
	// fanoutLabel selects the namespaces ("yes"); the credentials
	// namespace carries it too, with a value the selector does not match.
	fanoutLabel       = "tokensync-bench/fanout"
	fanoutCredentials = "bench-fanout-credentials"
	// The operator's ClusterTokenRequest and Secret name.
	fanoutName, fanoutSecret = "bench-fanout", "fanout-token"
	// The plain client's.
	fanoutPlainName, fanoutPlainSecret = "bench-fanout-plain", "fanout-plain-token"
)

// fanoutSetup is what the scenario's two steps share: the namespaces and
// the endpoint host, made once before anything is timed.
type fanoutSetup struct {
	namespaces []string
	endpoint   string
}

// keys are the Secrets secretName of every namespace.
func (f *fanoutSetup) keys(secretName string) []types.NamespacedName {
	keys := make([]types.NamespacedName, len(f.namespaces))
	for i, ns := range f.namespaces {
		keys[i] = types.NamespacedName{Namespace: ns, Name: secretName}
	}
	return keys
}

// fanoutIdentity is what the fake counts a ClusterTokenRequest's logins
// under: its credentials' access key.
func fanoutIdentity(name string) string { return fanoutCredentials + "." + name }

// clusterTokenRequest is the ClusterTokenRequest name, writing secretName
// to the namespaces labelled for the scenario, logging in at the partner
// API with credentials of its own.
func (f *fanoutSetup) clusterTokenRequest(name, secretName string) *tokensyncv1alpha1.ClusterTokenRequest {
	return &tokensyncv1alpha1.ClusterTokenRequest{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: tokensyncv1alpha1.ClusterTokenRequestSpec{
			LoginSpec: tokensyncv1alpha1.LoginSpec{
				Provider: tokensyncv1alpha1.Provider(providertest.Partner),
				Endpoint: f.endpoint,
			},
			CredentialsSecretRef: tokensyncv1alpha1.NamespacedSecretReference{Name: name + "-creds", Namespace: fanoutCredentials},
			SecretName:           secretName,
			NamespaceSelector:    &metav1.LabelSelector{MatchLabels: map[string]string{fanoutLabel: "yes"}},
		},
	}
}

// fanoutSetup creates, once, the labelled namespaces, the credentials
// namespace and both credentials Secrets, then waits a second so that a
// manager running knows them before the first reconcile.
func (b *bench) fanoutSetup(ctx context.Context) (*fanoutSetup, error) {
	if b.fan != nil {
		return b.fan, nil
	}
	hosts, err := b.endpoints.hosts(1)
	if err != nil {
		return nil, err
	}
	f := &fanoutSetup{endpoint: hosts[0]}
	for i := range b.sc.fanoutN {
		f.namespaces = append(f.namespaces, fmt.Sprintf("bench-fanout-%05d", i))
	}
	createNS := func(ctx context.Context, name, label string) error {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{fanoutLabel: label}}}
		if err := b.cl.client.Create(ctx, ns); err != nil {
			return fmt.Errorf("create namespace %s: %w", name, err)
		}
		return nil
	}
	if err := createNS(ctx, fanoutCredentials, "credentials"); err != nil {
		return nil, err
	}
	for _, name := range []string{fanoutPlainName, fanoutName} {
		s := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: name + "-creds", Namespace: fanoutCredentials,
				Labels: map[string]string{tokensyncv1alpha1.LabelCredentials: "true"}},
			StringData: map[string]string{"accessKey": fanoutIdentity(name), "secret": "bench-secret"},
		}
		if err := b.cl.client.Create(ctx, s); err != nil {
			return nil, fmt.Errorf("create credentials Secret %s/%s: %w", s.Namespace, s.Name, err)
		}
	}
	err = parallel(ctx, len(f.namespaces), creators, func(ctx context.Context, i int) error {
		return createNS(ctx, f.namespaces[i], "yes")
	})
	if err != nil {
		return nil, err
	}
	for _, ns := range f.namespaces {
		b.obs.trackSecretsIn(ns)
	}
	if err := sleep(ctx, time.Second); err != nil {
		return nil, err
	}
	b.fan = f
	return f, nil
}

// plainFanOut measures scenario 9's limit with the manager stopped, as
// plainBurst does: the plain client's ClusterTokenRequest, created for its
// Secrets' owner reference and its status, is never reconciled. Its Secrets
// and it are deleted after (envtest runs no garbage collector), before the
// manager starts again.
func (b *bench) plainFanOut(ctx context.Context) error {
	if err := b.stopManager(); err != nil {
		return err
	}
	f, err := b.fanoutSetup(ctx)
	if err != nil {
		return err
	}
	r := &b.rep.FanOut
	plain := plainClient{c: b.cl.client}
	ctr := f.clusterTokenRequest(fanoutPlainName, fanoutPlainSecret)
	start := time.Now()
	if err := b.cl.client.Create(ctx, ctr); err != nil {
		return fmt.Errorf("create ClusterTokenRequest %s: %w", ctr.Name, err)
	}
	if err := plain.fanOut(ctx, ctr, f.namespaces); err != nil {
		return err
	}
	last, _, err := b.obs.waitTokens(ctx, f.keys(fanoutPlainSecret), 1, b.sc.timeout)
	if err != nil {
		return fmt.Errorf("plain client: %w", err)
	}
	r.Limit = last.Sub(start)
	r.PlainLogins = b.fake.LoginsFor(providertest.Partner, fanoutIdentity(fanoutPlainName))
	b.logf("plain client: %d Secrets written in %s, %d login", len(f.namespaces), shortDuration(r.Limit), r.PlainLogins)

	err = parallel(ctx, len(f.namespaces), creators, func(ctx context.Context, i int) error {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: fanoutPlainSecret, Namespace: f.namespaces[i]}}
		if err := b.cl.client.Delete(ctx, s); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("delete Secret %s/%s: %w", s.Namespace, s.Name, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := b.cl.client.Delete(ctx, ctr); err != nil {
		return fmt.Errorf("delete ClusterTokenRequest %s: %w", ctr.Name, err)
	}
	if err := b.startManager(ctx); err != nil {
		return err
	}
	// The TokenRequests of earlier scenarios are reconciled again at the
	// start; the fan-out is measured on a manager done with them.
	n, err := b.countTokenRequests(ctx)
	if err != nil {
		return err
	}
	_, err = b.waitQuiet(ctx, n)
	return err
}

// fanOutScenario is scenario 9: a ClusterTokenRequest selecting the
// namespaces, timed from its creation until every Secret holds its token;
// then a forced refresh, which must log in once and write each Secret once.
func (b *bench) fanOutScenario(ctx context.Context) error {
	f, err := b.fanoutSetup(ctx)
	if err != nil {
		return err
	}
	r := &b.rep.FanOut
	r.N = len(f.namespaces)
	keys := f.keys(fanoutSecret)
	logins := func() int { return b.fake.LoginsFor(providertest.Partner, fanoutIdentity(fanoutName)) }

	before, err := b.snapshot(ctx)
	if err != nil {
		return err
	}
	cpuBefore, err := b.managerCPU()
	if err != nil {
		return err
	}
	profiled := make(chan error, 1)
	go func() { profiled <- b.profile(ctx, "profile", 10, "fanout.cpu.pprof") }()
	ctr := f.clusterTokenRequest(fanoutName, fanoutSecret)
	start := time.Now()
	if err := b.cl.client.Create(ctx, ctr); err != nil {
		return fmt.Errorf("create ClusterTokenRequest %s: %w", ctr.Name, err)
	}
	last, holding, err := b.obs.waitTokens(ctx, keys, 1, b.sc.timeout)
	if err != nil {
		return fmt.Errorf("operator: %w", err)
	}
	cpuAtWritten, err := b.managerCPU()
	if err != nil {
		return err
	}
	r.Elapsed, r.CPU, r.Tokens = last.Sub(start), cpuAtWritten-cpuBefore, holding
	readyAt, err := b.waitFanOutStatus(ctx, r.N, "")
	if err != nil {
		return err
	}
	r.StatusReady = readyAt.Sub(start)
	if _, err := b.waitQuietController(ctx, "clustertokenrequest", 0); err != nil {
		return err
	}
	if err := <-profiled; err != nil {
		return err
	}
	after, err := b.snapshot(ctx)
	if err != nil {
		return err
	}
	r.Logins = logins()
	r.FirstWrite = after.requests.since(before.requests)
	r.Manager = managerSummaryOf("clustertokenrequest", before.manager, after.manager)
	b.logf("operator: %d Secrets written in %s (status Ready, %d written, after %s), manager CPU %s; %d login, %d distinct tokens; API requests: %s; manager: %s",
		r.N, shortDuration(r.Elapsed), r.N, shortDuration(r.StatusReady), shortDuration(r.CPU), r.Logins, r.Tokens, fanOutRequests(r.FirstWrite), r.Manager)

	// The refresh: a new force-refresh value, one login, each Secret
	// written once.
	before = after
	force := time.Now().UTC().Format(time.RFC3339Nano)
	start = time.Now()
	patch := client.RawPatch(types.MergePatchType, fmt.Appendf(nil, `{"metadata":{"annotations":{%q:%q}}}`, tokensyncv1alpha1.AnnotationForceRefresh, force))
	if err := b.cl.client.Patch(ctx, ctr, patch); err != nil {
		return fmt.Errorf("annotate ClusterTokenRequest %s: %w", ctr.Name, err)
	}
	last, holding, err = b.obs.waitTokens(ctx, keys, 2, b.sc.timeout)
	if err != nil {
		return fmt.Errorf("refresh: %w", err)
	}
	r.RefreshElapsed, r.RefreshTokens = last.Sub(start), holding
	if _, err := b.waitFanOutStatus(ctx, r.N, force); err != nil {
		return err
	}
	if _, err := b.waitQuietController(ctx, "clustertokenrequest", 0); err != nil {
		return err
	}
	if after, err = b.snapshot(ctx); err != nil {
		return err
	}
	r.RefreshLogins = logins()
	r.Refresh = after.requests.since(before.requests)
	counts := b.obs.tokenCounts(keys)
	r.MinTokens, r.MaxTokens = counts[0], counts[0]
	for _, c := range counts {
		r.MinTokens, r.MaxTokens = min(r.MinTokens, c), max(r.MaxTokens, c)
	}
	b.logf("refresh: every Secret held the new token %s after the annotation; %d logins in all, %d distinct tokens, %d to %d tokens per Secret; API requests: %s",
		shortDuration(r.RefreshElapsed), r.RefreshLogins, r.RefreshTokens, r.MinTokens, r.MaxTokens, fanOutRequests(r.Refresh))
	return nil
}

// waitFanOutStatus polls the operator's ClusterTokenRequest until its
// status says Ready with n namespaces selected and written, for the
// generation and (when not empty) the force-refresh value given, and
// returns when it first found it so.
func (b *bench) waitFanOutStatus(ctx context.Context, n int, force string) (time.Time, error) {
	var at time.Time
	ctr := &tokensyncv1alpha1.ClusterTokenRequest{}
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, b.sc.timeout, true, func(ctx context.Context) (bool, error) {
		asked := time.Now()
		if err := b.cl.client.Get(ctx, types.NamespacedName{Name: fanoutName}, ctr); err != nil {
			return false, err
		}
		st := ctr.Status
		if !meta.IsStatusConditionTrue(st.Conditions, tokensyncv1alpha1.ConditionReady) || st.ObservedGeneration != ctr.Generation ||
			int(st.Namespaces.Selected) != n || int(st.Namespaces.Written) != n || st.Namespaces.Failed != 0 ||
			(force != "" && st.LastForceRefresh != force) {
			return false, nil
		}
		at = asked
		return true, nil
	})
	if err != nil {
		st := ctr.Status
		return at, fmt.Errorf("ClusterTokenRequest %s: status namespaces %d selected, %d written, %d failed, conditions %v, want Ready with %d written: %w",
			fanoutName, st.Namespaces.Selected, st.Namespaces.Written, st.Namespaces.Failed, st.Conditions, n, err)
	}
	return at, nil
}

// fanOutRequests are the API requests of a fan-out window that matter:
// Secrets read and written, the ClusterTokenRequest's status writes and
// the events.
func fanOutRequests(rc requestCounts) string {
	return fmt.Sprintf("GET secrets %s, POST secrets %s, PUT secrets %s, DELETE secrets %s, PUT clustertokenrequests/status %s (409 conflicts %s), events %s",
		count(rc.count("GET", "secrets", "", "")), count(rc.count("POST", "secrets", "", "")), count(rc.count("PUT", "secrets", "", "")),
		count(rc.count("DELETE", "secrets", "", "")), count(rc.count("PUT", "clustertokenrequests", "status", "")),
		count(rc.count("PUT", "clustertokenrequests", "status", "409")), count(rc.writes("events")))
}
