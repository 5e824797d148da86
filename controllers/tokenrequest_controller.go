// Package controllers holds the TokenRequest reconciler: it reads
// Kubernetes, asks a provider for a token, and writes Kubernetes. Whether and
// why to log in is one pure function (decision.go); when to refresh, how long
// to back off and what the Secret holds are pure functions too (schedule.go,
// backoff.go, secretdata.go).
package controllers

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/tokensync/tokensync/controllers/policy"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
	"github.com/tokensync/tokensync/providers"
)

// EndpointChecker is the operator's endpoint policy: it refuses URLs a
// TokenRequest's login may not be sent to, before any request is sent.
// loginURL is the endpoint with the provider's login path joined
// (providers.LoginURL).
type EndpointChecker interface {
	Check(provider, loginURL string) error
}

// TokenRequestReconciler keeps each TokenRequest's target Secret holding a
// valid token.
type TokenRequestReconciler struct {
	// Client reads TokenRequests and managed Secrets from the cache and writes.
	client.Client
	// APIReader reads straight from the API server: credentials Secrets
	// (never cached), Secrets the cache cannot see, and objects the cache
	// is known to hold older than tokensync's own last write.
	APIReader client.Reader
	// Credentials is a metadata-only cache of all Secrets, used to notice
	// credentials changes without caching any Secret's data.
	Credentials client.Reader
	Scheme      *runtime.Scheme
	Recorder    events.EventRecorder
	Providers   providers.Registry
	// EndpointPolicy may be nil: any endpoint the provider accepts.
	EndpointPolicy EndpointChecker
	// FingerprintKey is the Secret holding the HMAC key of credential
	// fingerprints (see fingerprinter); created on first use.
	FingerprintKey types.NamespacedName
	// Clock is injectable for tests; nil means the real clock.
	Clock clock.PassiveClock
	// Jitter returns a fraction in [0,1) for backoff jitter; nil means random.
	Jitter func() float64
	// Limits bound logins per endpoint host and namespace; zero values
	// mean DefaultLoginLimits.
	Limits LoginLimits
	// RolloutRestartMinInterval is the least time between two restarts of
	// one rollout restart target; zero means DefaultRolloutRestartMinInterval.
	RolloutRestartMinInterval time.Duration
	// MinLoginInterval is the least time between two logins of one
	// TokenRequest or ClusterTokenRequest, failed ones included; zero means
	// DefaultMinLoginInterval, a negative value none (--min-login-interval).
	MinLoginInterval time.Duration
	// AllowUnlabelledCredentials lets any Secret of the TokenRequest's
	// namespace be used as credentials; by default only those labelled
	// tokensync.io/credentials: "true" are (--require-credentials-label).
	AllowUnlabelledCredentials bool
	// HeldTokenLimits bound the tokens kept in memory for refused writes;
	// zero values mean DefaultHeldTokenLimits.
	HeldTokenLimits HeldTokenLimits
	// HostHealth tunes how a provider host is found down and probed; zero
	// values mean DefaultHostHealth. Read when the login gate is made.
	HostHealth HostHealth

	fingerprints *fingerprinter
	memory       *memory
	gate         *loginGate
	// secrets maps Secrets to the TokenRequests using them (secretIndex).
	secrets *secretIndex
}

func (r *TokenRequestReconciler) now() time.Time {
	if r.Clock == nil {
		return time.Now()
	}
	return r.Clock.Now()
}

// DefaultMinLoginInterval is --min-login-interval's default.
const DefaultMinLoginInterval = policy.DefaultMinLoginInterval

// minLoginInterval is MinLoginInterval with its default; zero: none.
func (r *TokenRequestReconciler) minLoginInterval() time.Duration {
	switch {
	case r.MinLoginInterval == 0:
		return DefaultMinLoginInterval
	case r.MinLoginInterval < 0:
		return 0
	}
	return r.MinLoginInterval
}

func (r *TokenRequestReconciler) jitter() float64 {
	if r.Jitter == nil {
		return rand.Float64()
	}
	return r.Jitter()
}

// wholeInCache reports whether the manager's cache holds s with its
// content (see secretCache), or only its names.
func (r *TokenRequestReconciler) wholeInCache(s *corev1.Secret) bool {
	return secretCache{operatorNamespace: r.FingerprintKey.Namespace}.wholeInCache(s)
}

// init fills in what SetupWithManager would for a reconciler built by hand.
func (r *TokenRequestReconciler) init() {
	if r.memory == nil {
		r.memory = newMemory(r.HeldTokenLimits)
	}
	if r.fingerprints == nil {
		r.fingerprints = newFingerprinter(r.APIReader, r.Client, r.FingerprintKey)
	}
	if r.gate == nil {
		r.gate = newLoginGate(r.Limits, nil)
		r.gate.health = r.HostHealth
	}
}

// LoadFingerprintKey reads (or creates) the fingerprint key Secret now,
// so that a missing namespace or RBAC rule shows at start.
func (r *TokenRequestReconciler) LoadFingerprintKey(ctx context.Context) error {
	r.init()
	return r.fingerprints.load(ctx)
}

// Reconcile observes one TokenRequest, decides, and acts on the decision
// (the engine, engine.go).
func (r *TokenRequestReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	return r.reconcile(ctx, tokenRequestKind{r}, req.NamespacedName)
}

// snapshot is what one reconcile saw: the observation decide reads, and the
// objects it was made from, which act writes.
type snapshot struct {
	policy.Observation
	// subject is the TokenRequest or ClusterTokenRequest, as its kind
	// presents it to the engine.
	subject subject
	// key names it (a ClusterTokenRequest's namespace is empty); owner is
	// it as the owner of the Secret holding its token.
	key   types.NamespacedName
	owner secretOwner
	// credentialsRef is the credentials Secret.
	credentialsRef types.NamespacedName
	// targetKey is the Secret holding the token: a TokenRequest's target
	// Secret, a ClusterTokenRequest's Secret in the operator's namespace.
	targetKey types.NamespacedName
	// kind names the controller to the login gate ("": TokenRequest);
	// kindName names the kind in messages.
	kind, kindName string
	reg            providers.Entry
	target         *corev1.Secret // nil when absent or foreign
	previous       *corev1.Secret // the Secret of an earlier secretName, when ours
	// creds were read from the API server while observing (nil if not).
	creds providers.Credentials
	// unwrittenStatus: the status memory holds and the API server lacks.
	unwrittenStatus bool
	// provider logs in: reg.Provider, or the one its settings configure
	// (see configure); settingsErr when they cannot be used.
	provider    providers.Provider
	settingsErr error
	// endpointErr is the endpoint policy's refusal of the URL a login would
	// be sent to.
	endpointErr error
	// loginFailed and loginErr: how a login made off the workers for the
	// spec's current issuer ended, taken from memory for this reconcile.
	loginFailed *failedLogin
	loginErr    error
}

// observeSpec fills in what a TokenRequest and a ClusterTokenRequest
// observe alike: the spec, the status, the provider and its settings, the
// endpoint policy's answer, a pending token and how a login made off the
// workers ended, whether a login is under way.
func (r *TokenRequestReconciler) observeSpec(o *snapshot, obj metav1.Object, spec *tokensyncv1alpha1.LoginSpec, status tokensyncv1alpha1.TokenStatus, secretName string, rem remembered) {
	reg, known := r.Providers[string(spec.Provider)]
	o.reg = reg
	var refreshBefore *time.Duration
	if spec.RefreshBefore != nil {
		d := spec.RefreshBefore.Duration
		refreshBefore = &d
	}
	o.Observation = policy.Observation{
		Now:           r.now(),
		UID:           string(obj.GetUID()),
		Generation:    obj.GetGeneration(),
		Provider:      string(spec.Provider),
		ProviderKnown: known,
		Endpoint:      reg.Endpoint(spec.Endpoint),
		RefreshBefore: refreshBefore,
		SecretName:    secretName,
		Force:         obj.GetAnnotations()[tokensyncv1alpha1.AnnotationForceRefresh],
		Status:        status,
		Suspended:     spec.Suspend,
		Pending:       rem.pending,

		MinLoginInterval: r.minLoginInterval(),
	}
	if t := spec.SecretTemplate; t != nil {
		if _, err := parseDataTemplates(t.Data); err != nil {
			o.TemplateError = err.Error()
		}
	}
	var settings []byte
	settings, o.SettingsDigest = providerSettings(spec)
	configure(o, settings)
	if known {
		o.endpointErr = r.checkEndpoint(o)
		o.EndpointRefused = o.endpointErr != nil
	}
	o.loginErr = rem.loginErr
	if f := rem.loginFailed; f != nil && f.provider == o.Provider && f.endpoint == o.Endpoint && f.settingsDigest == o.SettingsDigest {
		o.loginFailed = f
	}
	if in, ok := r.gate.inFlight(o.key); ok {
		o.LoginInFlight = in.running || in.issuer == o.Issuer()
		o.WaitsOnHost = o.LoginInFlight && in.waitsOnHost
		o.NextProbeAsked = o.WaitsOnHost && in.nextProbe
	}
	o.Host = r.gate.host(o.Endpoint, o.Now)
}

// tokenRequestKind presents TokenRequests to the engine.
type tokenRequestKind struct{ r *TokenRequestReconciler }

func (tokenRequestKind) name() string     { return "TokenRequest" }
func (tokenRequestKind) gateName() string { return "" }

func (k tokenRequestKind) load(ctx context.Context, reader client.Reader, key types.NamespacedName) (subject, error) {
	tr := &tokensyncv1alpha1.TokenRequest{}
	if err := getObject(ctx, reader, key, tr, k.name()); err != nil {
		return nil, err
	}
	return &tokenRequestSubject{r: k.r, tr: tr}, nil
}

// tokenRequestSubject is a TokenRequest: its token is held in its target
// Secret, in its namespace, which is also what its pods read; a new token
// restarts its rollout restart targets.
type tokenRequestSubject struct {
	r  *TokenRequestReconciler
	tr *tokensyncv1alpha1.TokenRequest
	// restarts is the rollout restart targets' state publish left, written
	// with the next status (nil: not published).
	restarts *[]tokensyncv1alpha1.RolloutRestartStatus
}

func (s *tokenRequestSubject) object() client.Object                   { return s.tr }
func (s *tokenRequestSubject) loginSpec() *tokensyncv1alpha1.LoginSpec { return &s.tr.Spec.LoginSpec }
func (s *tokenRequestSubject) tokenStatus() tokensyncv1alpha1.TokenStatus {
	return s.tr.Status.TokenStatus
}
func (s *tokenRequestSubject) secretName() string         { return s.tr.TargetSecretName() }
func (s *tokenRequestSubject) previousSecretName() string { return s.tr.Status.SecretName }

func (s *tokenRequestSubject) restoreStatus(unwritten any) { restoreStatus(&s.tr.Status, unwritten) }

func (s *tokenRequestSubject) credentialsRef() types.NamespacedName {
	return types.NamespacedName{Namespace: s.tr.Namespace, Name: s.tr.Spec.CredentialsSecretRef.Name}
}

func (s *tokenRequestSubject) held() (types.NamespacedName, secretOwner) {
	return types.NamespacedName{Namespace: s.tr.Namespace, Name: s.tr.TargetSecretName()}, s.r.ownerOf(s.tr)
}

func (*tokenRequestSubject) observeOutputs(context.Context, *snapshot) error { return nil }

func (*tokenRequestSubject) hold(context.Context, *snapshot) (*outputHold, error) { return nil, nil }

// publish restarts the rollout restart targets due for the token held.
func (s *tokenRequestSubject) publish(ctx context.Context, o *snapshot, held *corev1.Secret, newToken bool) (published, error) {
	restarts, wake := s.r.rolloutRestarts(ctx, o, s.tr, held.Annotations[annotationTokenFingerprint], newToken)
	s.restarts = &restarts
	return published{wake: wake, where: "Secret " + held.Name}, nil
}

func (s *tokenRequestSubject) writeStatus(ctx context.Context, mutate func(*tokensyncv1alpha1.TokenStatus)) (bool, error) {
	return writeStatusOf(ctx, s.r, "TokenRequest", s.tr,
		func(tr *tokensyncv1alpha1.TokenRequest) *tokensyncv1alpha1.TokenRequestStatus { return &tr.Status },
		func(st *tokensyncv1alpha1.TokenRequestStatus) {
			mutate(&st.TokenStatus)
			if s.restarts != nil {
				st.RolloutRestarts = *s.restarts
			}
		})
}
