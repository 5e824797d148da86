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
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
	"github.com/tokensync/tokensync/providers"
)

// EndpointChecker is the operator's endpoint policy: it refuses endpoints a
// TokenRequest may not name, before any request is sent.
type EndpointChecker interface {
	Check(provider, endpoint string) error
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

func (r *TokenRequestReconciler) jitter() float64 {
	if r.Jitter == nil {
		return rand.Float64()
	}
	return r.Jitter()
}

// init fills in what SetupWithManager would for a reconciler built by hand.
func (r *TokenRequestReconciler) init() {
	if r.memory == nil {
		r.memory = newMemory()
	}
	if r.fingerprints == nil {
		r.fingerprints = newFingerprinter(r.APIReader, r.Client, r.FingerprintKey)
	}
	if r.gate == nil {
		r.gate = newLoginGate(r.Limits)
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
	d := decide(obs.observation)
	return r.act(ctx, obs, d)
}

// observed is an observation with the objects it was made from.
type observed struct {
	observation
	tr       *tokensyncv1alpha1.TokenRequest
	reg      providers.Entry
	target   *corev1.Secret // nil when absent or foreign
	previous *corev1.Secret // the Secret of an earlier secretName, when ours
	// creds were read from the API server while observing (nil if not).
	creds   providers.Credentials
	pending *pendingToken
	// unwrittenStatus: the status memory holds and the API server lacks.
	unwrittenStatus bool
	// provider logs in: reg.Provider, or the one its settings configure
	// (see configure); settingsErr when they cannot be used.
	provider    providers.Provider
	settingsErr error
}

// observe gathers what decide needs, from the caches, asking the API server
// only where a cache may be behind: for the TokenRequest and target Secret
// when tokensync's own last write is newer than the cache's copy, for a
// target Secret the managed cache cannot see, and for the credentials' values
// when their version is one no fingerprint is known for.
func (r *TokenRequestReconciler) observe(ctx context.Context, tr *tokensyncv1alpha1.TokenRequest) (*observed, error) {
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
	o := &observed{tr: tr, pending: rem.pending}
	if rem.unwrittenStatus != nil {
		tr.Status = *rem.unwrittenStatus.DeepCopy()
		o.unwrittenStatus = true
	}

	reg, known := r.Providers[string(tr.Spec.Provider)]
	o.reg = reg
	o.observation = observation{
		Now:           r.now(),
		UID:           string(tr.UID),
		Generation:    tr.Generation,
		Provider:      string(tr.Spec.Provider),
		ProviderKnown: known,
		Endpoint:      reg.Endpoint(tr.Spec.Endpoint),
		RefreshBefore: refreshBeforeOf(tr),
		SecretName:    tr.TargetSecretName(),
		Force:         tr.Annotations[tokensyncv1alpha1.AnnotationForceRefresh],
		Status:        tr.Status,
		Suspended:     tr.Spec.Suspend,
	}
	if t := tr.Spec.SecretTemplate; t != nil {
		if _, err := parseDataTemplates(t.Data); err != nil {
			o.TemplateError = err.Error()
		}
	}
	var settings []byte
	settings, o.SettingsDigest = providerSettings(&tr.Spec)
	configure(o, settings)

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
		err := r.Get(ctx, types.NamespacedName{Namespace: tr.Namespace, Name: prev}, s)
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
	if p := rem.pending; p != nil {
		o.Pending = &pendingState{
			ExpiresAt: p.issued.Token.ExpiresAt, Provider: p.issued.Provider, Endpoint: p.issued.Endpoint,
			SettingsDigest: p.issued.SettingsDigest, CredentialsFingerprint: p.issued.CredentialsFingerprint, RetryAt: p.retryAt,
		}
	}
	if err := r.observeCredentials(ctx, o); err != nil {
		return nil, err
	}
	return o, nil
}

// targetSecret finds the target Secret: from the managed cache when it is
// current, else from the API server. foreign is true when a Secret of that
// name exists that this TokenRequest does not control (it is then not returned).
func (r *TokenRequestReconciler) targetSecret(ctx context.Context, tr *tokensyncv1alpha1.TokenRequest, name string, rem remembered) (s *corev1.Secret, exists, foreign bool, err error) {
	key := types.NamespacedName{Namespace: tr.Namespace, Name: name}
	s = &corev1.Secret{}
	err = r.Get(ctx, key, s)
	switch {
	case err == nil && rem.secretName == name && cacheBehind(s.ResourceVersion, rem.secretRV):
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

// observeCredentials fills in the credentials' version and fingerprint. The
// fingerprint is taken from a record of the same version when there is one
// (the target Secret's, the last attempt's, memory's); otherwise the values
// are read, once, from the API server.
func (r *TokenRequestReconciler) observeCredentials(ctx context.Context, o *observed) error {
	tr := o.tr
	name := tr.Spec.CredentialsSecretRef.Name
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	err := r.Credentials.Get(ctx, types.NamespacedName{Namespace: tr.Namespace, Name: name}, m)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("get credentials Secret %q metadata: %w", name, err)
	}
	c := &o.Credentials
	c.Found, c.Version = true, m.ResourceVersion
	// A record counts only if made with the same settings: they decide
	// which keys are fingerprinted (the http login's templates).
	switch last := o.Status.LastAttempt; {
	case o.Target.Holds && o.Target.Held.CredentialsVersion == c.Version && o.Target.Held.CredentialsFingerprint != "" &&
		o.Target.Held.SettingsDigest == o.SettingsDigest:
		c.Fingerprint = o.Target.Held.CredentialsFingerprint
	case last != nil && last.CredentialsVersion == c.Version && last.CredentialsFingerprint != "" && last.SettingsDigest == o.SettingsDigest:
		c.Fingerprint = last.CredentialsFingerprint
	case o.pending != nil && o.pending.issued.CredentialsVersion == c.Version && o.pending.issued.SettingsDigest == o.SettingsDigest:
		c.Fingerprint = o.pending.issued.CredentialsFingerprint
	}
	if c.Fingerprint != "" {
		return nil
	}
	ck := credentialsKey{NamespacedName: types.NamespacedName{Namespace: tr.Namespace, Name: name}, provider: o.Provider, settings: o.SettingsDigest}
	if fp, ok := r.memory.credentialsFingerprint(ck, c.Version); ok {
		c.Fingerprint = fp
		return nil
	}
	if !o.ProviderKnown || !o.needsFingerprint() {
		// Nothing to compare it with (a new TokenRequest): the login, if
		// one is due, reads the credentials anyway.
		return nil
	}
	creds, version, err := r.readCredentials(ctx, tr)
	if apierrors.IsNotFound(err) {
		c.Found, c.Version = false, ""
		return nil
	}
	if err != nil {
		return err
	}
	fp, err := r.fingerprints.credentials(ctx, o.keys().UsedCredentials(creds))
	if err != nil {
		return err
	}
	o.creds = creds
	c.Version, c.Fingerprint = version, fp
	r.memory.setCredentialsFingerprint(ck, version, fp)
	return nil
}

// needsFingerprint reports whether a decision may compare the credentials'
// fingerprint with one recorded: the token held, a pending token, the
// previous Secret's token, or a failed attempt.
func (o *observed) needsFingerprint() bool {
	return o.Target.Holds || o.Pending != nil || o.Previous != nil ||
		(o.Status.LastAttempt != nil && o.Status.FailedAttempts > 0)
}

// act carries out a decision.
func (r *TokenRequestReconciler) act(ctx context.Context, o *observed, d decision) (ctrl.Result, error) {
	log := logf.FromContext(ctx).WithValues("decision", d.Action, "reason", d.Reason)
	if o.unwrittenStatus && d.Action != actLogin && d.Action != actWrite {
		// Write the status the last reconcile could not; the actions below
		// that write a status write it themselves.
		if err := r.updateStatus(ctx, o.tr, func(*tokensyncv1alpha1.TokenRequestStatus) {}); err != nil {
			return ctrl.Result{}, err
		}
	}
	switch d.Action {
	case actKeep:
		return r.keep(ctx, o, d)
	case actWait:
		log.V(1).Info("Waiting", "why", d.Message, "until", d.At)
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
func (r *TokenRequestReconciler) keep(ctx context.Context, o *observed, d decision) (ctrl.Result, error) {
	tr, held := o.tr, o.Target.Held
	if _, err := r.writeSecret(ctx, o, o.target, func(*corev1.Secret) {}, false); err != nil {
		var te *templateError
		if errors.As(err, &te) {
			return r.failed(ctx, o, failure{reason: tokensyncv1alpha1.ReasonInvalidTemplate, message: te.Error() + "; nothing was written"})
		}
		// Only metadata was to be written; the token stays valid.
		return ctrl.Result{}, fmt.Errorf("update Secret %q: %w", o.SecretName, err)
	}
	if err := r.deletePreviousSecret(ctx, o); err != nil {
		return ctrl.Result{}, err
	}
	restarts, wakeAt := r.rolloutRestarts(ctx, o, o.target.Annotations[annotationTokenFingerprint], false)
	wasMissing := conditionFalse(tr.Status.Conditions, tokensyncv1alpha1.ConditionCredentialsFound)
	if err := r.setHealthy(ctx, o, healthyToken{obtainedAt: held.ObtainedAt, expiresAt: held.ExpiresAt, next: d.At,
		credentialsMissing: d.CredentialsMissing, restarts: restarts}); err != nil {
		return ctrl.Result{}, err
	}
	if d.CredentialsMissing && !wasMissing {
		msg := r.credentialsMissingMessage(o, held.ExpiresAt)
		r.Recorder.Eventf(tr, nil, corev1.EventTypeWarning, tokensyncv1alpha1.ReasonCredentialsNotFound, "Refresh", "%s", msg)
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
func (r *TokenRequestReconciler) suspend(ctx context.Context, o *observed, d decision) (ctrl.Result, error) {
	tr := o.tr
	now := r.now()
	status, message := metav1.ConditionFalse, "spec.suspend is true: no login and no write until it is false; "
	if d.At.IsZero() {
		message += fmt.Sprintf("Secret %s holds no valid token", o.SecretName)
	} else {
		status = metav1.ConditionTrue
		message += fmt.Sprintf("the token in Secret %s stays valid until %s", o.SecretName, formatTime(d.At))
	}
	if err := r.updateStatus(ctx, tr, func(st *tokensyncv1alpha1.TokenRequestStatus) {
		st.ObservedGeneration = tr.Generation
		st.NextRefreshTime = nil
		setCondition(st, tr, now, tokensyncv1alpha1.ConditionReady, status, tokensyncv1alpha1.ReasonSuspended, message)
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

func (r *TokenRequestReconciler) credentialsMissingMessage(o *observed, expiresAt time.Time) string {
	return fmt.Sprintf("credentials Secret %q not found in namespace %q: the token in Secret %s stays valid until %s but cannot be refreshed; create the Secret with keys %s",
		o.tr.Spec.CredentialsSecretRef.Name, o.tr.Namespace, o.SecretName, formatTime(expiresAt), o.keys().CredentialKeyNames())
}

// stop records a state that needs a person, once; nothing is requeued: the
// change that can fix it (a Secret deleted, the spec or credentials edited)
// comes as a watch event.
func (r *TokenRequestReconciler) stop(ctx context.Context, o *observed, d decision) (ctrl.Result, error) {
	switch d.Reason {
	case tokensyncv1alpha1.ReasonSecretConflict:
		return r.failed(ctx, o, failure{
			reason: tokensyncv1alpha1.ReasonSecretConflict,
			message: fmt.Sprintf("Secret %q already exists and is not controlled by this TokenRequest; "+
				"delete or rename it, or set spec.secretName to another name", o.SecretName),
		})
	case reasonUnknownProvider:
		// Only reachable if the CRD's enum and the registry disagree.
		return r.failed(ctx, o, failure{reason: tokensyncv1alpha1.ReasonInvalidCredentials, message: d.Message})
	case tokensyncv1alpha1.ReasonInvalidTemplate:
		if o.TemplateError != "" {
			return r.failed(ctx, o, failure{reason: tokensyncv1alpha1.ReasonInvalidTemplate, message: o.TemplateError + "; nothing was written"})
		}
	}
	logf.FromContext(ctx).V(1).Info("Stopped until an input changes", "why", d.Message)
	return ctrl.Result{}, nil
}

// login logs in and writes the token.
func (r *TokenRequestReconciler) login(ctx context.Context, o *observed, d decision) (ctrl.Result, error) {
	tr := o.tr
	if o.settingsErr != nil {
		return r.failed(ctx, o, settingsFailure(o.settingsErr))
	}
	if r.EndpointPolicy != nil {
		if err := r.EndpointPolicy.Check(o.Provider, o.Endpoint); err != nil {
			return r.failed(ctx, o, providerFailure(tr, err))
		}
	}
	// A slot: bounded logins in flight per endpoint host and namespace, and
	// per second per endpoint host. Without one, requeue rather than hold a
	// worker; the rate limit never delays a refresh past its token's expiry.
	// It is asked for before the credentials are read, so that a login put
	// off costs no request, and held only for the login itself, not for the
	// writes after it.
	var mustStartBy time.Time
	if h := o.Target.Held; o.Target.Holds && h.Intact && o.Now.Before(h.ExpiresAt) {
		mustStartBy = h.ExpiresAt.Add(-urgentMargin)
	}
	release, wait := r.gate.admit(client.ObjectKeyFromObject(tr), o.Endpoint, r.now(), mustStartBy)
	if release == nil {
		wait += time.Duration(r.jitter() * float64(wait))
		logf.FromContext(ctx).V(1).Info("Login deferred: the endpoint or namespace has no free login slot", "retryIn", wait)
		return ctrl.Result{RequeueAfter: wait}, nil
	}
	defer release()
	creds := o.creds
	if creds == nil {
		var err error
		var version string
		creds, version, err = r.readCredentials(ctx, tr)
		switch {
		case apierrors.IsNotFound(err):
			o.Credentials = credentialsState{}
			return r.failed(ctx, o, failure{
				reason: tokensyncv1alpha1.ReasonCredentialsNotFound,
				message: fmt.Sprintf("credentials Secret %q not found in namespace %q: create it with keys %s",
					tr.Spec.CredentialsSecretRef.Name, tr.Namespace, o.keys().CredentialKeyNames()),
			})
		case err != nil:
			return ctrl.Result{}, err
		}
		fp, err := r.fingerprints.credentials(ctx, o.keys().UsedCredentials(creds))
		if err != nil {
			return ctrl.Result{}, err
		}
		o.Credentials = credentialsState{Found: true, Version: version, Fingerprint: fp}
	}
	if v, ok := o.provider.(providers.Validator); ok {
		if err := v.Validate(creds); err != nil {
			return r.failed(ctx, o, providerFailure(tr, err))
		}
	}
	if d.ProbeWrite {
		// The last write was refused: ask the API server (dry run) whether
		// it would take one now before spending a login on it.
		probe := &providers.Token{Value: "dry-run", ObtainedAt: o.Now, ExpiresAt: o.Now.Add(time.Hour)}
		if _, err := r.writeSecret(ctx, o, o.target, func(s *corev1.Secret) { applyToken(s, issued{Token: probe}) }, true); err != nil {
			return r.failed(ctx, o, writeFailure(o.SecretName, err))
		}
	}

	start := r.now()
	tok, err := o.provider.Login(ctx, o.Endpoint, creds)
	release()
	loginDuration.WithLabelValues(o.Provider).Observe(r.now().Sub(start).Seconds())
	if err != nil {
		f := providerFailure(tr, err)
		loginsTotal.WithLabelValues(o.Provider, f.reason).Inc()
		loginFailures.inc(o.Provider, o.Endpoint)
		if ctx.Err() != nil {
			// The manager is stopping; the next one retries without counting this.
			return ctrl.Result{}, ctx.Err()
		}
		f.sent = true
		return r.failed(ctx, o, f)
	}
	loginsTotal.WithLabelValues(o.Provider, "success").Inc()
	tokenFP, err := r.fingerprints.token(ctx, []byte(tok.Value))
	if err != nil {
		return ctrl.Result{}, err
	}
	p := &pendingToken{issued: issued{
		Token: tok, Provider: o.Provider, Endpoint: o.Endpoint, SettingsDigest: o.SettingsDigest,
		CredentialsVersion: o.Credentials.Version, CredentialsFingerprint: o.Credentials.Fingerprint,
		TokenFingerprint: tokenFP,
	}}
	// Kept until written or expired: a refused write must not spend the login.
	r.memory.with(client.ObjectKeyFromObject(tr), tr.UID, func(e *remembered) { e.pending = p })
	o.pending = p
	return r.writeObtained(ctx, o, decision{Action: actWrite, Reason: d.Reason, Message: d.Message})
}

// writeObtained writes a token that needs no login: the pending one, or
// the previous Secret's after a secretName change.
func (r *TokenRequestReconciler) writeObtained(ctx context.Context, o *observed, d decision) (ctrl.Result, error) {
	tr := o.tr
	key := client.ObjectKeyFromObject(tr)
	var (
		mutate               func(*corev1.Secret)
		obtainedAt, expireAt time.Time
		attempt              *tokensyncv1alpha1.LoginAttempt
	)
	if d.FromPrevious {
		prev := o.previous
		mutate = func(s *corev1.Secret) { copyToken(s, prev) }
		obtainedAt, expireAt = o.Previous.ObtainedAt, o.Previous.ExpiresAt
	} else {
		is := o.pending.issued
		mutate = func(s *corev1.Secret) { applyToken(s, is) }
		obtainedAt, expireAt = is.Token.ObtainedAt, is.Token.ExpiresAt
		attempt = &tokensyncv1alpha1.LoginAttempt{
			Time: metav1.NewTime(obtainedAt.UTC().Truncate(time.Second)), Provider: is.Provider, Endpoint: is.Endpoint,
			CredentialsVersion: is.CredentialsVersion, CredentialsFingerprint: is.CredentialsFingerprint,
			SettingsDigest: is.SettingsDigest, Result: tokensyncv1alpha1.ReasonSucceeded,
		}
	}
	rv, err := r.writeSecret(ctx, o, o.target, mutate, false)
	if err != nil {
		var te *templateError
		if errors.As(err, &te) {
			// The token obtained stays pending: once the template is fixed it
			// is written without a new login.
			return r.failed(ctx, o, failure{reason: tokensyncv1alpha1.ReasonInvalidTemplate, message: te.Error() + "; nothing was written"})
		}
		if errors.Is(err, errSecretConflict) {
			return r.failed(ctx, o, failure{
				reason: tokensyncv1alpha1.ReasonSecretConflict,
				message: fmt.Sprintf("Secret %q already exists and is not controlled by this TokenRequest; "+
					"delete or rename it, or set spec.secretName to another name", o.SecretName),
			})
		}
		if d.FromPrevious {
			return ctrl.Result{}, fmt.Errorf("write Secret %q: %w", o.SecretName, err)
		}
		return r.writeRefused(ctx, o, err)
	}
	r.memory.with(key, tr.UID, func(e *remembered) {
		e.pending = nil
		e.secretName, e.secretRV = o.SecretName, rv
	})
	if err := r.deletePreviousSecret(ctx, o); err != nil {
		return ctrl.Result{}, err
	}
	next := refreshAt(obtainedAt, expireAt, o.RefreshBefore, jitterFor(o.UID+"/"+formatTime(expireAt)))
	tokenFP := ""
	if d.FromPrevious {
		tokenFP = o.previous.Annotations[annotationTokenFingerprint]
	} else {
		tokenFP = o.pending.issued.TokenFingerprint
	}
	restarts, wakeAt := r.rolloutRestarts(ctx, o, tokenFP, !d.FromPrevious)
	if err := r.setHealthy(ctx, o, healthyToken{obtainedAt: obtainedAt, expiresAt: expireAt, next: next, attempt: attempt, restarts: restarts}); err != nil {
		// The token is stored; the next reconcile finds it and writes the status.
		return ctrl.Result{}, err
	}
	if d.FromPrevious {
		r.Recorder.Eventf(tr, nil, corev1.EventTypeNormal, "TokenMoved", "Refresh",
			"Moved the valid token from Secret %s to Secret %s without a login; it expires at %s", tr.Status.SecretName, o.SecretName, formatTime(expireAt))
	} else {
		r.Recorder.Eventf(tr, nil, corev1.EventTypeNormal, "TokenRefreshed", "Refresh",
			"Logged in because %s; wrote a new token to Secret %s; it expires at %s, next refresh at %s", d.Message, o.SecretName, formatTime(expireAt), formatTime(next))
	}
	logf.FromContext(ctx).Info("Token written", "secret", o.SecretName, "reason", d.Reason, "expiresAt", expireAt, "nextRefresh", next)
	return ctrl.Result{RequeueAfter: requeueAfter(r.now(), earliest(next, wakeAt))}, nil
}

// writeRefused records a refused Secret write. The token obtained stays in
// memory and the write is retried with backoff; no new login is spent on it.
func (r *TokenRequestReconciler) writeRefused(ctx context.Context, o *observed, err error) (ctrl.Result, error) {
	tr := o.tr
	f := writeFailure(o.SecretName, err)
	var retryAt time.Time
	r.memory.with(client.ObjectKeyFromObject(tr), tr.UID, func(e *remembered) {
		if e.pending == nil {
			return
		}
		e.pending.failures++
		retryAt = r.now().Add(backoffFor(f.reason, e.pending.failures, r.jitter(), 0))
		e.pending.retryAt = retryAt
	})
	f.retryAt = retryAt
	return r.failed(ctx, o, f)
}

// writeFailure describes a refused Secret write with the API server's
// reason. Its message is the API server's own; it cannot hold the token,
// which is not part of any refusal, but it is cut to a sane length.
func writeFailure(name string, err error) failure {
	reason := string(apierrors.ReasonForError(err))
	if reason == "" {
		reason = "Unknown"
	}
	msg := err.Error()
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		msg = status.Status().Message
	}
	if len(msg) > 400 {
		msg = msg[:400] + "..."
	}
	return failure{
		reason: tokensyncv1alpha1.ReasonSecretWriteFailed,
		message: fmt.Sprintf("a token was obtained but the API server refused to write Secret %q (%s: %s); the token is kept and the write retried without a new login",
			name, reason, msg),
	}
}

// failure is a failed attempt to obtain or store a token.
type failure struct {
	reason, message string
	// retryAfter is the provider's hint.
	retryAfter time.Duration
	// retryAt, when set, is the retry already scheduled (a pending write).
	retryAt time.Time
	// sent: a request reached the provider.
	sent bool
}

// failed records a failure: the target Secret is left alone, so a token that
// is still valid keeps working; the next attempt is scheduled by backoff, or
// none when only a change of input can help. The attempt counts come from
// the status the update is applied to, so a stale cache cannot reset them.
func (r *TokenRequestReconciler) failed(ctx context.Context, o *observed, f failure) (ctrl.Result, error) {
	tr := o.tr
	now := r.now()
	jitter := r.jitter()
	var (
		attempts int32
		retryAt  time.Time
		stopped  bool
	)
	held := o.Target.Held
	validUntil := ""
	if o.Target.Holds && held.Intact && now.Before(held.ExpiresAt) {
		validUntil = fmt.Sprintf("; the previous token in Secret %s stays valid until %s", o.SecretName, formatTime(held.ExpiresAt))
	}
	mutate := func(st *tokensyncv1alpha1.TokenRequestStatus) {
		last := st.LastAttempt
		repeat := last != nil && last.Result == f.reason && st.FailedAttempts > 0 &&
			last.Provider == o.Provider && last.Endpoint == o.Endpoint &&
			stopsUntilChange(f.reason) && tr.Generation == st.ObservedGeneration
		attempts = st.FailedAttempts + 1
		if repeat {
			// A stopped state seen again is not another attempt.
			attempts = st.FailedAttempts
		}
		authFailures := int32(0)
		if f.reason == tokensyncv1alpha1.ReasonAuthenticationFailed {
			authFailures = 1
			if last != nil && last.Result == tokensyncv1alpha1.ReasonAuthenticationFailed {
				authFailures = last.AuthenticationFailures + 1
			}
		}
		stopped = stopsUntilChange(f.reason) || authFailures >= maxAuthenticationTries
		retryAt = f.retryAt
		if retryAt.IsZero() {
			retryAt = now.Add(backoffFor(f.reason, attempts, jitter, f.retryAfter))
		}

		message := f.message + validUntil
		switch {
		case authFailures >= maxAuthenticationTries:
			message += fmt.Sprintf(" (%d consecutive authentication failures: stopped to avoid locking the account; nothing more is sent until the credentials' content, spec.provider or spec.endpoint, or the %s annotation changes)",
				authFailures, tokensyncv1alpha1.AnnotationForceRefresh)
		case stopped:
			message += " (nothing more is tried until this is fixed)"
		default:
			message += fmt.Sprintf(" (attempt %d, next retry at %s)", attempts, formatTime(retryAt))
		}

		st.ObservedGeneration = tr.Generation
		st.FailedAttempts = attempts
		if stopped {
			st.NextRefreshTime = nil
		} else {
			st.NextRefreshTime = metaTime(retryAt)
		}
		if o.Force != "" {
			st.LastForceRefresh = o.Force
		}
		attemptAt := metav1.NewTime(now.UTC().Truncate(time.Second))
		if repeat {
			attemptAt = last.Time
		}
		st.LastAttempt = &tokensyncv1alpha1.LoginAttempt{
			Time: attemptAt, Provider: o.Provider, Endpoint: o.Endpoint,
			CredentialsVersion: o.Credentials.Version, CredentialsFingerprint: o.Credentials.Fingerprint,
			SettingsDigest: o.SettingsDigest, Result: f.reason, AuthenticationFailures: authFailures,
		}
		setCondition(st, tr, now, tokensyncv1alpha1.ConditionReady, metav1.ConditionFalse, f.reason, message)
		if stalls(f.reason) || stopped {
			setCondition(st, tr, now, tokensyncv1alpha1.ConditionStalled, metav1.ConditionTrue, f.reason, message)
			removeCondition(st, tokensyncv1alpha1.ConditionReconciling)
		} else {
			setCondition(st, tr, now, tokensyncv1alpha1.ConditionReconciling, metav1.ConditionTrue, tokensyncv1alpha1.ReasonRetrying, message)
			removeCondition(st, tokensyncv1alpha1.ConditionStalled)
		}
		if f.reason == tokensyncv1alpha1.ReasonCredentialsNotFound {
			setCondition(st, tr, now, tokensyncv1alpha1.ConditionCredentialsFound, metav1.ConditionFalse, f.reason, f.message)
		} else if o.Credentials.Found {
			removeCondition(st, tokensyncv1alpha1.ConditionCredentialsFound)
		}
	}
	before := tr.Status.DeepCopy()
	if err := r.updateStatus(ctx, tr, mutate); err != nil {
		return ctrl.Result{}, err
	}
	if !equality.Semantic.DeepEqual(before, &tr.Status) {
		r.Recorder.Eventf(tr, nil, corev1.EventTypeWarning, f.reason, "Refresh", "%s", f.message)
		logf.FromContext(ctx).Info("Attempt failed", "reason", f.reason, "message", f.message, "attempt", attempts, "stopped", stopped, "nextRetry", retryAt)
	}
	if stopped {
		return ctrl.Result{}, nil
	}
	return ctrl.Result{RequeueAfter: requeueAfter(now, retryAt)}, nil
}

// stalls: failures that need a person from the first one.
func stalls(reason string) bool {
	switch reason {
	case tokensyncv1alpha1.ReasonAuthenticationFailed, tokensyncv1alpha1.ReasonInvalidCredentials,
		tokensyncv1alpha1.ReasonSecretConflict, tokensyncv1alpha1.ReasonEndpointNotAllowed,
		tokensyncv1alpha1.ReasonInvalidTemplate:
		return true
	}
	return false
}

// shortWindowWarning starts the Ready message's warning about a refresh
// window too short for mounted Secret volumes.
const shortWindowWarning = "the refresh window is only"

// healthyToken is what setHealthy records.
type healthyToken struct {
	obtainedAt, expiresAt, next time.Time
	// attempt is the successful login that obtained the token, nil when no
	// login happened.
	attempt            *tokensyncv1alpha1.LoginAttempt
	credentialsMissing bool
	// restarts is the rollout restart targets' state (nil: none listed).
	restarts []tokensyncv1alpha1.RolloutRestartStatus
}

// setHealthy records a valid token.
func (r *TokenRequestReconciler) setHealthy(ctx context.Context, o *observed, h healthyToken) error {
	tr := o.tr
	obtainedAt, expiresAt, next, attempt, credentialsMissing := h.obtainedAt, h.expiresAt, h.next, h.attempt, h.credentialsMissing
	now := r.now()
	message := fmt.Sprintf("Secret %s holds a valid token until %s; next refresh at %s", o.SecretName, formatTime(expiresAt), formatTime(next))
	window := refreshWindow(obtainedAt, expiresAt, o.RefreshBefore)
	short := window < mountedVolumeDelay
	if short {
		message += fmt.Sprintf("; %s %s, under the minute the kubelet may take to update a mounted Secret volume: pods reading the token from a file may read an expired one (set spec.refreshBefore to at least 60s, with tokens that live at least 2 minutes)",
			shortWindowWarning, window.Round(time.Second))
	}
	warnedBefore := false
	if c := meta.FindStatusCondition(tr.Status.Conditions, tokensyncv1alpha1.ConditionReady); c != nil {
		warnedBefore = strings.Contains(c.Message, shortWindowWarning)
	}
	defer func() {
		if short && !warnedBefore {
			r.Recorder.Eventf(tr, nil, corev1.EventTypeWarning, "ShortRefreshWindow", "Refresh", "%s", message)
		}
	}()
	return r.updateStatus(ctx, tr, func(st *tokensyncv1alpha1.TokenRequestStatus) {
		st.ObservedGeneration = tr.Generation
		st.SecretName = o.SecretName
		st.ExpiresAt = metaTime(expiresAt)
		st.LastRefreshTime = metaTime(obtainedAt)
		st.NextRefreshTime = metaTime(next)
		st.FailedAttempts = 0
		st.RolloutRestarts = h.restarts
		if attempt != nil {
			st.LastAttempt = attempt
			if o.Force != "" {
				st.LastForceRefresh = o.Force
			}
		}
		setCondition(st, tr, now, tokensyncv1alpha1.ConditionReady, metav1.ConditionTrue, tokensyncv1alpha1.ReasonTokenIssued, message)
		removeCondition(st, tokensyncv1alpha1.ConditionStalled)
		removeCondition(st, tokensyncv1alpha1.ConditionReconciling)
		if credentialsMissing {
			setCondition(st, tr, now, tokensyncv1alpha1.ConditionCredentialsFound, metav1.ConditionFalse, tokensyncv1alpha1.ReasonCredentialsNotFound,
				r.credentialsMissingMessage(o, expiresAt))
		} else {
			removeCondition(st, tokensyncv1alpha1.ConditionCredentialsFound)
		}
	})
}

// updateStatus applies mutate to the TokenRequest's status and writes it
// only if it changed. A conflict re-reads the TokenRequest from the API
// server and applies the same change again: the login it records is never
// repeated. A status that could not be written is kept in memory, so the
// next decision sees it (a failed login stays backed off) and writes it.
func (r *TokenRequestReconciler) updateStatus(ctx context.Context, tr *tokensyncv1alpha1.TokenRequest, mutate func(*tokensyncv1alpha1.TokenRequestStatus)) error {
	key := client.ObjectKeyFromObject(tr)
	var unwritten bool
	r.memory.with(key, tr.UID, func(e *remembered) { unwritten = e.unwrittenStatus != nil })
	first := true
	var want *tokensyncv1alpha1.TokenRequestStatus
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if !first {
			fresh := &tokensyncv1alpha1.TokenRequest{}
			if err := r.APIReader.Get(ctx, key, fresh); err != nil {
				return err
			}
			fresh.DeepCopyInto(tr)
		}
		first = false
		want = tr.Status.DeepCopy()
		mutate(want)
		if !unwritten && equality.Semantic.DeepEqual(&tr.Status, want) {
			return nil
		}
		tr.Status = *want
		return r.Status().Update(ctx, tr)
	})
	r.memory.with(key, tr.UID, func(e *remembered) {
		if err != nil {
			if want != nil {
				e.unwrittenStatus = want.DeepCopy()
			}
			return
		}
		e.unwrittenStatus = nil
		e.statusRV = tr.ResourceVersion
	})
	if err != nil {
		return fmt.Errorf("update TokenRequest status: %w", err)
	}
	return nil
}

func setCondition(st *tokensyncv1alpha1.TokenRequestStatus, tr *tokensyncv1alpha1.TokenRequest, now time.Time, typ string, status metav1.ConditionStatus, reason, message string) {
	setStatusCondition(&st.Conditions, metav1.Condition{
		Type:               typ,
		Status:             status,
		Reason:             reason,
		Message:            message,
		ObservedGeneration: tr.Generation,
		LastTransitionTime: metav1.NewTime(now.UTC().Truncate(time.Second)),
	})
}

var errSecretConflict = errors.New("secret exists and is not controlled by this TokenRequest")

// writeSecret creates or updates the target Secret: mutate puts the token
// on it, then spec.secretTemplate (data, labels, annotations) and the
// ownership deletionPolicy asks for are applied. Nothing is written when
// nothing changes. A Secret of another type than spec.secretTemplate.type
// asks for is deleted and created again at once with the same content:
// Kubernetes does not let a Secret's type change. dryRun asks the API server
// whether it would accept the write, without storing it. It returns the
// Secret's resourceVersion; a template that does not render is a
// *templateError, and nothing is written.
func (r *TokenRequestReconciler) writeSecret(ctx context.Context, o *observed, existing *corev1.Secret, mutate func(*corev1.Secret), dryRun bool) (string, error) {
	tr := o.tr
	var opts []client.CreateOption
	var uopts []client.UpdateOption
	if dryRun {
		opts, uopts = append(opts, client.DryRunAll), append(uopts, client.DryRunAll)
	}
	build := func(base *corev1.Secret) (*corev1.Secret, error) {
		s := base.DeepCopy()
		mutate(s)
		if err := applyTemplate(s, tr.Spec.SecretTemplate); err != nil {
			return nil, err
		}
		return s, r.applyOwner(s, tr)
	}
	wantType := secretTypeOf(tr)
	if existing == nil {
		s, err := build(&corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: o.SecretName, Namespace: tr.Namespace},
			Type:       wantType,
		})
		if err != nil {
			return "", err
		}
		err = r.Create(ctx, s, opts...)
		if err == nil {
			r.rememberSecret(tr, s, dryRun)
			return s.ResourceVersion, nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return "", err
		}
		// Created meanwhile: ours if a previous attempt's write landed late.
		existing = &corev1.Secret{}
		if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(s), existing); err != nil {
			return "", err
		}
		if !ownedBy(existing, tr) {
			return "", errSecretConflict
		}
	}
	if typeOf(existing) != wantType && !dryRun {
		return r.recreateSecret(ctx, o, existing, build, wantType)
	}
	s := existing.DeepCopy()
	first := true
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if !first {
			if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(s), s); err != nil {
				return err
			}
			if !ownedBy(s, tr) {
				return errSecretConflict
			}
		}
		first = false
		want, err := build(s)
		if err != nil {
			return err
		}
		if dryRun {
			want.Type = s.Type // a probe asks about writes, not a type change
		}
		if equality.Semantic.DeepEqual(s, want) {
			return nil
		}
		if err := r.Update(ctx, want, uopts...); err != nil {
			return err
		}
		*s = *want
		r.rememberSecret(tr, s, dryRun)
		return nil
	})
	return s.ResourceVersion, err
}

// recreateSecret replaces a Secret whose type must change: delete (only
// the version read) and create at once, with the same token, no login. If
// the create is refused, the old Secret is put back as it was.
func (r *TokenRequestReconciler) recreateSecret(ctx context.Context, o *observed, existing *corev1.Secret, build func(*corev1.Secret) (*corev1.Secret, error), wantType corev1.SecretType) (string, error) {
	tr := o.tr
	s, err := build(existing)
	if err != nil {
		return "", err
	}
	s.ObjectMeta = *s.ObjectMeta.DeepCopy()
	s.ResourceVersion, s.UID, s.CreationTimestamp, s.Generation, s.ManagedFields = "", "", metav1.Time{}, 0, nil
	s.Type = wantType
	uid, rv := existing.UID, existing.ResourceVersion
	if err := r.Delete(ctx, existing, client.Preconditions{UID: &uid, ResourceVersion: &rv}); client.IgnoreNotFound(err) != nil {
		return "", fmt.Errorf("delete Secret %q to change its type: %w", existing.Name, err)
	}
	if err := r.Create(ctx, s); err != nil {
		restore := existing.DeepCopy()
		restore.ResourceVersion, restore.UID, restore.CreationTimestamp, restore.ManagedFields = "", "", metav1.Time{}, nil
		if rerr := r.Create(ctx, restore); rerr != nil {
			logf.FromContext(ctx).Error(rerr, "Could not put back the Secret whose type change was refused", "secret", existing.Name)
		}
		return "", fmt.Errorf("create Secret %q as type %s: %w", s.Name, wantType, err)
	}
	r.rememberSecret(tr, s, false)
	r.Recorder.Eventf(tr, nil, corev1.EventTypeNormal, "SecretRecreated", "Write",
		"Secret %s was type %s and is now type %s: Kubernetes does not let a Secret's type change, so it was deleted and created again with the same token", s.Name, typeOf(existing), wantType)
	return s.ResourceVersion, nil
}

// rememberSecret records tokensync's own last write of the target Secret.
func (r *TokenRequestReconciler) rememberSecret(tr *tokensyncv1alpha1.TokenRequest, s *corev1.Secret, dryRun bool) {
	if dryRun {
		return
	}
	r.memory.with(client.ObjectKeyFromObject(tr), tr.UID, func(e *remembered) { e.secretName, e.secretRV = s.Name, s.ResourceVersion })
}

// applyOwner makes s owned as spec.deletionPolicy asks: Delete, a controller
// owner reference (the Secret goes with the TokenRequest); Retain, no owner
// reference at all and the TokenRequest's name in tokensync.io/owner, so
// that neither garbage collection nor a foreground deletion (Argo CD's
// default prune) can take the Secret, and no finalizer is needed.
func (r *TokenRequestReconciler) applyOwner(s *corev1.Secret, tr *tokensyncv1alpha1.TokenRequest) error {
	if tr.Spec.DeletionPolicy == tokensyncv1alpha1.DeletionPolicyRetain {
		var refs []metav1.OwnerReference
		for _, ref := range s.OwnerReferences {
			if ref.UID != tr.UID {
				refs = append(refs, ref)
			}
		}
		s.OwnerReferences = refs
		if s.Annotations == nil {
			s.Annotations = map[string]string{}
		}
		s.Annotations[tokensyncv1alpha1.AnnotationOwner] = tr.Name
		return nil
	}
	delete(s.Annotations, tokensyncv1alpha1.AnnotationOwner)
	return controllerutil.SetControllerReference(tr, s, r.Scheme)
}

// ownedBy reports whether s is tr's target Secret: controlled by it, or,
// without any controller, marked with its name (deletionPolicy Retain, or
// retained by an earlier TokenRequest of the same name, which is adopted).
func ownedBy(s *corev1.Secret, tr *tokensyncv1alpha1.TokenRequest) bool {
	if metav1.IsControlledBy(s, tr) {
		return true
	}
	return metav1.GetControllerOf(s) == nil &&
		s.Labels[tokensyncv1alpha1.LabelManagedBy] == tokensyncv1alpha1.ManagedByValue &&
		s.Annotations[tokensyncv1alpha1.AnnotationOwner] == tr.Name
}

// secretTypeOf is the target Secret's type spec.secretTemplate asks for.
func secretTypeOf(tr *tokensyncv1alpha1.TokenRequest) corev1.SecretType {
	if t := tr.Spec.SecretTemplate; t != nil && t.Type != "" {
		return t.Type
	}
	return corev1.SecretTypeOpaque
}

func typeOf(s *corev1.Secret) corev1.SecretType {
	if s.Type == "" {
		return corev1.SecretTypeOpaque
	}
	return s.Type
}

// deletePreviousSecret deletes the Secret named before a secretName change, if ours.
func (r *TokenRequestReconciler) deletePreviousSecret(ctx context.Context, o *observed) error {
	s := o.previous
	if s == nil {
		return nil
	}
	if err := r.Delete(ctx, s, client.Preconditions{UID: &s.UID}); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("delete previous Secret %q: %w", s.Name, err)
	}
	o.previous = nil
	logf.FromContext(ctx).Info("Deleted the previous target Secret after a secretName change", "secret", s.Name)
	return nil
}

// readCredentials reads the credentials Secret straight from the API server,
// only when its values are needed: to log in, or to fingerprint a version
// of it not seen before.
func (r *TokenRequestReconciler) readCredentials(ctx context.Context, tr *tokensyncv1alpha1.TokenRequest) (providers.Credentials, string, error) {
	s := &corev1.Secret{}
	key := types.NamespacedName{Namespace: tr.Namespace, Name: tr.Spec.CredentialsSecretRef.Name}
	if err := r.APIReader.Get(ctx, key, s); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, "", err
		}
		return nil, "", fmt.Errorf("read credentials Secret %q: %w", key.Name, err)
	}
	creds := make(providers.Credentials, len(s.Data))
	for k, v := range s.Data {
		creds[k] = v
	}
	return creds, s.ResourceVersion, nil
}

// providerFailure maps a provider error to a failure.
func providerFailure(tr *tokensyncv1alpha1.TokenRequest, err error) failure {
	kind := providers.KindOf(err)
	msg := err.Error()
	var pe *providers.Error
	if !errors.As(err, &pe) {
		// Not a classified provider error: do not pass on text we do not control.
		msg = "login failed: the provider could not be reached"
	}
	if kind == providers.InvalidCredentials {
		msg = fmt.Sprintf("credentials Secret %q: %s", tr.Spec.CredentialsSecretRef.Name, msg)
	}
	return failure{reason: string(kind), message: msg, retryAfter: providers.RetryAfterOf(err)}
}

func refreshBeforeOf(tr *tokensyncv1alpha1.TokenRequest) *time.Duration {
	if tr.Spec.RefreshBefore != nil {
		d := tr.Spec.RefreshBefore.Duration
		return &d
	}
	return nil
}

func setStatusCondition(conds *[]metav1.Condition, c metav1.Condition) {
	meta.SetStatusCondition(conds, c)
}

func removeCondition(st *tokensyncv1alpha1.TokenRequestStatus, typ string) {
	meta.RemoveStatusCondition(&st.Conditions, typ)
}

func conditionFalse(conds []metav1.Condition, typ string) bool {
	return meta.IsStatusConditionFalse(conds, typ)
}
