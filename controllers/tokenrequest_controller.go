// Package controllers holds the TokenRequest reconciler: it reads
// Kubernetes, asks a provider for a token, and writes Kubernetes. Whether and
// why to log in is one pure function (decision.go); when to refresh, how long
// to back off and what the Secret holds are pure functions too (schedule.go,
// backoff.go, secretdata.go).
package controllers

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

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

// Reconcile observes one TokenRequest, decides, and acts on the decision.
func (r *TokenRequestReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	r.init()
	tr := &tokensyncv1alpha1.TokenRequest{}
	if err := r.Get(ctx, req.NamespacedName, tr); err != nil {
		if apierrors.IsNotFound(err) {
			// The target Secret goes with it through its owner reference
			// (deletionPolicy Delete) or stays (Retain); nothing to do here.
			r.gate.cancel(req.NamespacedName)
			r.memory.forget(req.NamespacedName)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, fmt.Errorf("get TokenRequest: %w", err)
	}
	if !tr.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	obs, err := r.observe(ctx, tr)
	if err != nil {
		return ctrl.Result{}, err
	}
	if obs.loginErr != nil {
		return ctrl.Result{}, obs.loginErr
	}
	if f := obs.loginFailed; f != nil {
		// A login made off the workers failed: record it now.
		return r.failed(ctx, obs, f.failure)
	}
	d := decide(obs.observation)
	return r.act(ctx, obs, d)
}

// snapshot is what one reconcile saw: the observation decide reads, and the
// objects it was made from, which act writes.
type snapshot struct {
	observation
	// key names the TokenRequest or ClusterTokenRequest (whose namespace is
	// empty); owner is it as the owner of its target Secrets.
	key   types.NamespacedName
	owner secretOwner
	// tr is the TokenRequest (nil for a ClusterTokenRequest).
	tr *tokensyncv1alpha1.TokenRequest
	// credentialsRef is the credentials Secret.
	credentialsRef types.NamespacedName
	// targetKey is the target Secret (for a ClusterTokenRequest, the one
	// the held token is read from, or the first namespace's).
	targetKey types.NamespacedName
	// kind names the controller, for the login gate ("": TokenRequest).
	kind string
	// writeStatus applies mutate to the status and writes it when it
	// changed, which it reports.
	writeStatus func(ctx context.Context, mutate func(*tokensyncv1alpha1.TokenStatus)) (changed bool, err error)
	reg         providers.Entry
	target      *corev1.Secret // nil when absent or foreign
	previous    *corev1.Secret // the Secret of an earlier secretName, when ours
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

// observe gathers what decide needs, from the caches, asking the API server
// only where a cache may be behind: for the TokenRequest and target Secret
// when tokensync's own last write is newer than the cache's copy, for a
// target Secret the managed cache cannot see, and for the credentials' values
// when their version is one no fingerprint is known for.
func (r *TokenRequestReconciler) observe(ctx context.Context, tr *tokensyncv1alpha1.TokenRequest) (*snapshot, error) {
	key := client.ObjectKeyFromObject(tr)
	var rem remembered
	r.memory.with(key, tr.UID, func(e *remembered) { rem = *e })

	if cacheBehind(tr.ResourceVersion, rem.statusRV) {
		fresh := &tokensyncv1alpha1.TokenRequest{}
		if err := r.APIReader.Get(ctx, key, fresh); err != nil {
			return nil, fmt.Errorf("get TokenRequest: %w", err)
		}
		tr = fresh
	}
	o := &snapshot{tr: tr, key: key, owner: r.ownerOf(tr),
		credentialsRef: types.NamespacedName{Namespace: tr.Namespace, Name: tr.Spec.CredentialsSecretRef.Name},
		targetKey:      types.NamespacedName{Namespace: tr.Namespace, Name: tr.TargetSecretName()},
		writeStatus: func(ctx context.Context, mutate func(*tokensyncv1alpha1.TokenStatus)) (bool, error) {
			before := tr.Status.DeepCopy()
			err := r.updateStatus(ctx, tr, func(st *tokensyncv1alpha1.TokenRequestStatus) { mutate(&st.TokenStatus) })
			return !equality.Semantic.DeepEqual(before, &tr.Status), err
		}}
	if rem.unwrittenStatus != nil {
		tr.Status = *rem.unwrittenStatus.DeepCopy()
		o.unwrittenStatus = true
	}
	r.observeSpec(o, tr, &tr.Spec.LoginSpec, tr.Status.TokenStatus, tr.TargetSecretName(), rem)

	target, exists, foreign, err := r.targetSecret(ctx, tr, o.SecretName, rem)
	if err != nil {
		return nil, err
	}
	o.target = target
	o.Target = targetState{Exists: exists, Foreign: foreign}
	if target != nil {
		fp, err := r.fingerprints.token(ctx, target.Data[tokensyncv1alpha1.SecretKeyToken])
		if err != nil {
			return nil, err
		}
		o.Target.Held, o.Target.Holds = heldTokenIn(target, fp)
	}
	if prev := tr.Status.SecretName; prev != "" && prev != o.SecretName {
		s := &corev1.Secret{}
		prevKey := types.NamespacedName{Namespace: tr.Namespace, Name: prev}
		err := r.Get(ctx, prevKey, s)
		if err == nil && !r.wholeInCache(s) {
			err = r.APIReader.Get(ctx, prevKey, s)
		}
		if err == nil && ownedBy(s, tr) {
			o.previous = s
			fp, err := r.fingerprints.token(ctx, s.Data[tokensyncv1alpha1.SecretKeyToken])
			if err != nil {
				return nil, err
			}
			if held, ok := heldTokenIn(s, fp); ok {
				o.Previous = &held
			}
		} else if client.IgnoreNotFound(err) != nil {
			return nil, fmt.Errorf("get previous Secret %q: %w", prev, err)
		}
	}
	if err := r.observeCredentials(ctx, o); err != nil {
		return nil, err
	}
	r.memory.takeLoginResult(key, tr.UID, rem)
	return o, nil
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
	o.observation = observation{
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
		o.LoginInFlight = in.running || in.issuer == o.issuer()
		o.WaitsOnHost = o.LoginInFlight && in.waitsOnHost
		o.NextProbeAsked = o.WaitsOnHost && in.nextProbe
	}
	o.Host = r.gate.host(o.Endpoint, o.Now)
}

// targetSecret finds the target Secret: from the managed cache when it is
// current, else from the API server. foreign is true when a Secret of that
// name exists that this TokenRequest does not control (it is then not returned).
func (r *TokenRequestReconciler) targetSecret(ctx context.Context, tr *tokensyncv1alpha1.TokenRequest, name string, rem remembered) (s *corev1.Secret, exists, foreign bool, err error) {
	key := types.NamespacedName{Namespace: tr.Namespace, Name: name}
	s = &corev1.Secret{}
	err = r.Get(ctx, key, s)
	switch {
	case err == nil && rem.secretName == name && cacheBehind(s.ResourceVersion, rem.secretRV),
		err == nil && !r.wholeInCache(s):
		// Behind our own write, or cached without its content (a retained
		// Secret to adopt, a foreign one with tokensync's label).
		err = r.APIReader.Get(ctx, key, s)
	case apierrors.IsNotFound(err):
		// The managed cache holds only Secrets labelled as tokensync's.
		// The metadata cache of every Secret says whether any exists; ask
		// the API server only when one does (a foreign Secret, or one of
		// ours the managed cache has not seen yet).
		m := &metav1.PartialObjectMetadata{}
		m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
		metaErr := r.Credentials.Get(ctx, key, m)
		if apierrors.IsNotFound(metaErr) && rem.secretName != name {
			return nil, false, false, nil
		}
		err = r.APIReader.Get(ctx, key, s)
	}
	if apierrors.IsNotFound(err) {
		return nil, false, false, nil
	}
	if err != nil {
		return nil, false, false, fmt.Errorf("get Secret %q: %w", name, err)
	}
	if !ownedBy(s, tr) {
		return nil, true, true, nil
	}
	return s, true, false, nil
}

// loginInFlightRecheck: a TokenRequest waiting for its login looks again
// after this long, should the login's end not reconcile it.
const loginInFlightRecheck = 2 * time.Minute

// act carries out a decision.
func (r *TokenRequestReconciler) act(ctx context.Context, o *snapshot, d decision) (ctrl.Result, error) {
	log := logf.FromContext(ctx).WithValues("decision", d.Action, "reason", d.Reason)
	if o.unwrittenStatus && d.Action != actLogin && d.Action != actWrite {
		// Write the status the last reconcile could not; the actions below
		// that write a status write it themselves.
		if _, err := o.writeStatus(ctx, func(*tokensyncv1alpha1.TokenStatus) {}); err != nil {
			return ctrl.Result{}, err
		}
	}
	if d.Action != actLogin && d.Reason != reasonLoginInFlight && d.Reason != reasonWaitingOnHost {
		// A login still waiting for its turn is no longer needed (one
		// running ends on its own; its token is used only if still wanted).
		// Not when the decision is to wait for that very login: its end is
		// what reconciles again.
		r.gate.dropWaiting(o.key)
	}
	switch d.Action {
	case actKeep:
		return r.keep(ctx, o, d)
	case actWait:
		if d.Reason == reasonWaitingOnHost {
			return r.waitOnHost(ctx, o, d.Message, d.At)
		}
		log.V(1).Info("Waiting", "why", d.Message, "until", d.At)
		if d.At.IsZero() {
			// The login's end reconciles again. A look after a while in
			// case it never does costs one reconcile and no request.
			return ctrl.Result{RequeueAfter: loginInFlightRecheck}, nil
		}
		return ctrl.Result{RequeueAfter: requeueAfter(o.Now, d.At)}, nil
	case actStop:
		return r.stop(ctx, o, d)
	case actSuspend:
		return r.suspend(ctx, o, d)
	case actWrite:
		log.Info("Writing a token without a login", "why", d.Message, "secret", o.SecretName)
		return r.writeObtained(ctx, o, d)
	}
	log.Info("Logging in", "why", d.Message, "secret", o.SecretName)
	return r.login(ctx, o, d)
}

// keep looks after a TokenRequest whose token is valid and not due: no
// login, and no write unless something is out of date.
func (r *TokenRequestReconciler) keep(ctx context.Context, o *snapshot, d decision) (ctrl.Result, error) {
	tr, held := o.tr, o.Target.Held
	if _, err := r.writeSecret(ctx, o, o.target, func(*corev1.Secret) {}, false); err != nil {
		var te *templateError
		if errors.As(err, &te) {
			return r.failed(ctx, o, templateFailure(te.Error()))
		}
		// Only metadata was to be written; the token stays valid.
		return ctrl.Result{}, fmt.Errorf("update Secret %q: %w", o.SecretName, err)
	}
	if err := r.deletePreviousSecret(ctx, o); err != nil {
		return ctrl.Result{}, err
	}
	restarts, wakeAt := r.rolloutRestarts(ctx, o, o.target.Annotations[annotationTokenFingerprint], false)
	wasMissing := meta.IsStatusConditionFalse(tr.Status.Conditions, tokensyncv1alpha1.ConditionCredentialsFound)
	h := healthyToken{obtainedAt: held.ObtainedAt, expiresAt: held.ExpiresAt, next: d.At, restarts: restarts}
	if d.CredentialsMissing {
		h.credentialsMissing = r.credentialsMissingMessage(o, held.ExpiresAt)
	}
	if err := r.setHealthy(ctx, o, h); err != nil {
		return ctrl.Result{}, err
	}
	if d.CredentialsMissing && !wasMissing {
		r.Recorder.Eventf(tr, nil, corev1.EventTypeWarning, tokensyncv1alpha1.ReasonCredentialsNotFound, "Refresh", "%s", h.credentialsMissing)
		logf.FromContext(ctx).Info("The credentials Secret is gone; keeping the valid token", "credentialsSecret", tr.Spec.CredentialsSecretRef.Name, "expiresAt", held.ExpiresAt)
	}
	return ctrl.Result{RequeueAfter: requeueAfter(o.Now, earliest(d.At, wakeAt))}, nil
}

// earliest is the earlier of two times, a zero time counting as none.
func earliest(a, b time.Time) time.Time {
	if b.IsZero() || (!a.IsZero() && a.Before(b)) {
		return a
	}
	return b
}

// suspend records that nothing is sent or written while spec.suspend is
// true; only the status is written, to say so. Ready stays True while the
// token is valid, and turns False when it expires.
func (r *TokenRequestReconciler) suspend(ctx context.Context, o *snapshot, d decision) (ctrl.Result, error) {
	now := r.now()
	status, message := metav1.ConditionFalse, "spec.suspend is true: no login and no write until it is false; "
	if d.At.IsZero() {
		message += fmt.Sprintf("Secret %s holds no valid token", o.SecretName)
	} else {
		status = metav1.ConditionTrue
		message += stillValid(o.SecretName, formatTime(d.At))
	}
	if _, err := o.writeStatus(ctx, func(st *tokensyncv1alpha1.TokenStatus) {
		st.ObservedGeneration = o.Generation
		st.NextRefreshTime = nil
		setCondition(st, o.Generation, now, tokensyncv1alpha1.ConditionReady, status, tokensyncv1alpha1.ReasonSuspended, message)
		removeCondition(st, tokensyncv1alpha1.ConditionStalled)
		removeCondition(st, tokensyncv1alpha1.ConditionReconciling)
	}); err != nil {
		return ctrl.Result{}, err
	}
	logf.FromContext(ctx).V(1).Info("Suspended", "validUntil", d.At)
	if d.At.IsZero() {
		return ctrl.Result{}, nil
	}
	return ctrl.Result{RequeueAfter: requeueAfter(o.Now, d.At)}, nil
}

func (r *TokenRequestReconciler) credentialsMissingMessage(o *snapshot, expiresAt time.Time) string {
	return fmt.Sprintf("credentials Secret %q not found in namespace %q: %s but cannot be refreshed; create the Secret with keys %s",
		o.credentialsRef.Name, o.credentialsRef.Namespace, stillValid(o.SecretName, formatTime(expiresAt)), o.keys().CredentialKeyNames())
}

// stop records a state that needs a person, once, with the decision's
// reason and message; nothing is requeued: the change that can fix it (a
// Secret deleted, the spec or credentials edited) comes as a watch event.
func (r *TokenRequestReconciler) stop(ctx context.Context, o *snapshot, d decision) (ctrl.Result, error) {
	if d.Record {
		return r.failed(ctx, o, failure{reason: d.Reason, message: d.Message})
	}
	logf.FromContext(ctx).V(1).Info("Stopped until an input changes", "why", d.Message)
	return ctrl.Result{}, nil
}
