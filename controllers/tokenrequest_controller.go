// Package controllers holds the TokenRequest reconciler: it reads
// Kubernetes, asks a provider for a token, and writes Kubernetes. When to
// refresh, how long to back off and what the Secret holds are pure functions
// (schedule.go, backoff.go, secretdata.go).
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
	// (never cached) and Secrets the cache cannot see.
	APIReader client.Reader
	// Credentials is a metadata-only cache of all Secrets, used to notice
	// credentials changes without caching any Secret's data.
	Credentials client.Reader
	Scheme      *runtime.Scheme
	Recorder    events.EventRecorder
	Providers   providers.Registry
	// EndpointPolicy may be nil: any endpoint the provider accepts.
	EndpointPolicy EndpointChecker
	// Clock is injectable for tests; nil means the real clock.
	Clock clock.PassiveClock
	// Jitter returns a fraction in [0,1) for backoff jitter; nil means random.
	Jitter func() float64
}

// outcome is the result of one login attempt (or of what prevented it).
type outcome struct {
	reason  string
	message string
	kind    providers.ErrorKind
	// retryAfter is the provider's hint.
	retryAfter time.Duration
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

// Reconcile brings one TokenRequest's target Secret and status up to date.
func (r *TokenRequestReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {

	tr := &tokensyncv1alpha1.TokenRequest{}
	if err := r.Get(ctx, req.NamespacedName, tr); err != nil {
		if apierrors.IsNotFound(err) {
			// The target Secret goes with it through its owner reference.
			forgetMetrics(req.Namespace, req.Name)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, fmt.Errorf("get TokenRequest: %w", err)
	}
	if !tr.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	return r.reconcile(ctx, tr, false)
}

// reconcile decides from the cache whether a login is due. Before logging
// in it decides again from the API server (fresh): the cache may not yet
// show our own last write, and acting on it would cost a second login.
func (r *TokenRequestReconciler) reconcile(ctx context.Context, tr *tokensyncv1alpha1.TokenRequest, fresh bool) (ctrl.Result, error) {
	log := logf.FromContext(ctx)
	now := r.now()
	provider := string(tr.Spec.Provider)
	reg, known := r.Providers[provider]
	targetName := tr.TargetSecretName()

	target, targetFromServer, err := r.targetSecret(ctx, tr, targetName, fresh)
	if errors.Is(err, errSecretConflict) {
		return r.failed(ctx, tr, nil, "", tr.Status.LastForceRefresh, outcome{
			reason: tokensyncv1alpha1.ReasonSecretConflict,
			kind:   providers.ProviderUnavailable,
			message: fmt.Sprintf("Secret %q already exists and is not controlled by this TokenRequest; "+
				"delete or rename it, or set spec.secretName to another name", targetName),
		})
	}
	if err != nil {
		return ctrl.Result{}, err
	}

	credsVersion, credsFound, err := r.credentialsVersion(ctx, tr, fresh)
	if err != nil {
		return ctrl.Result{}, err
	}

	held, holds := heldTokenIn(target)
	valid := holds && held.Intact && now.Before(held.ExpiresAt)
	var refreshTime time.Time
	if valid {
		refreshTime = refreshAt(held.ObtainedAt, held.ExpiresAt, refreshBeforeOf(tr), jitterFor(string(tr.UID)+"/"+formatTime(held.ExpiresAt)))
	}
	force := tr.Annotations[tokensyncv1alpha1.AnnotationForceRefresh]
	forced := force != "" && force != tr.Status.LastForceRefresh
	rotated := valid && credsFound && held.CredentialsVersion != credsVersion

	switch {
	case !known:
		// Only reachable if the CRD's enum and the registry disagree.
		return r.failed(ctx, tr, target, credsVersion, tr.Status.LastForceRefresh, outcome{
			reason: tokensyncv1alpha1.ReasonInvalidCredentials, kind: providers.InvalidCredentials,
			message: fmt.Sprintf("provider %q is not supported by this operator", provider),
		})
	case !credsFound:
		return r.failed(ctx, tr, target, "", tr.Status.LastForceRefresh, outcome{
			reason: tokensyncv1alpha1.ReasonCredentialsNotFound, kind: providers.InvalidCredentials,
			message: fmt.Sprintf("credentials Secret %q not found in namespace %q: create it with keys %s",
				tr.Spec.CredentialsSecretRef.Name, tr.Namespace, reg.CredentialKeyNames()),
		})
	}

	// A failed attempt stays due until a login succeeds: a forced refresh
	// that failed is retried by backoff, not dropped because the old token
	// is still valid.
	due := !valid || !now.Before(refreshTime) || forced || rotated || tr.Status.FailedAttempts > 0
	if !due {
		return r.healthy(ctx, tr, target, held, credsVersion, refreshTime)
	}

	// A failed login is retried when its backoff has passed, or at once when
	// something that could fix it changed: the spec, the credentials or a new
	// force-refresh value.
	inputsChanged := tr.Generation != tr.Status.ObservedGeneration || forced ||
		credsVersion != tr.Status.CredentialsResourceVersion
	if tr.Status.FailedAttempts > 0 && !inputsChanged && tr.Status.NextRefreshTime != nil && now.Before(tr.Status.NextRefreshTime.Time) {
		return ctrl.Result{RequeueAfter: requeueAfter(now, tr.Status.NextRefreshTime.Time)}, nil
	}
	// When the API server itself just said there is no target Secret, a
	// login is due whatever the cache may still miss of our own writes:
	// deciding again would only repeat that read (and two more).
	if !fresh && !(targetFromServer && target == nil) {
		latest := &tokensyncv1alpha1.TokenRequest{}
		if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(tr), latest); err != nil {
			return ctrl.Result{}, client.IgnoreNotFound(err)
		}
		if !latest.DeletionTimestamp.IsZero() {
			return ctrl.Result{}, nil
		}
		return r.reconcile(ctx, latest, true)
	}

	switch {
	case !holds || !held.Intact:
		log.Info("Logging in: the target Secret holds no token", "secret", targetName)
	case forced:
		log.Info("Logging in: refresh forced by annotation", "annotation", tokensyncv1alpha1.AnnotationForceRefresh)
	case rotated:
		log.Info("Logging in: the credentials Secret changed", "credentialsSecret", tr.Spec.CredentialsSecretRef.Name)
	case !now.Before(held.ExpiresAt):
		log.Info("Logging in: the token has expired", "expiredAt", held.ExpiresAt)
	case now.Before(refreshTime):
		log.Info("Logging in: retrying after a failed attempt", "failedAttempts", tr.Status.FailedAttempts)
	default:
		log.Info("Logging in: the token is due for refresh", "expiresAt", held.ExpiresAt)
	}
	return r.refresh(ctx, tr, reg, target, force)
}

// refresh logs in and writes the token.
func (r *TokenRequestReconciler) refresh(ctx context.Context, tr *tokensyncv1alpha1.TokenRequest, reg providers.Entry, target *corev1.Secret, force string) (ctrl.Result, error) {
	log := logf.FromContext(ctx)
	provider := string(tr.Spec.Provider)
	force = forceHonoured(tr, force)

	creds, credsVersion, err := r.readCredentials(ctx, tr)
	if apierrors.IsNotFound(err) {
		return r.failed(ctx, tr, target, "", force, outcome{
			reason: tokensyncv1alpha1.ReasonCredentialsNotFound, kind: providers.InvalidCredentials,
			message: fmt.Sprintf("credentials Secret %q not found in namespace %q: create it with keys %s",
				tr.Spec.CredentialsSecretRef.Name, tr.Namespace, reg.CredentialKeyNames()),
		})
	}
	if err != nil {
		return ctrl.Result{}, err
	}

	endpoint := reg.Endpoint(tr.Spec.Endpoint)
	if err := r.precheck(reg.Provider, provider, endpoint, creds); err != nil {
		return r.failed(ctx, tr, target, credsVersion, force, providerOutcome(tr, err))
	}

	start := time.Now()
	tok, err := reg.Provider.Login(ctx, endpoint, creds)
	loginDuration.WithLabelValues(provider).Observe(time.Since(start).Seconds())
	if err != nil {
		o := providerOutcome(tr, err)
		loginsTotal.WithLabelValues(provider, o.reason).Inc()
		if ctx.Err() != nil {
			// The manager is stopping; the next one retries without counting this.
			return ctrl.Result{}, ctx.Err()
		}
		return r.failed(ctx, tr, target, credsVersion, force, o)
	}
	loginsTotal.WithLabelValues(provider, "success").Inc()

	content := secretData(tr, tok, credsVersion)
	if err := r.writeSecret(ctx, tr, target, content); err != nil {
		if errors.Is(err, errSecretConflict) {
			return r.failed(ctx, tr, target, credsVersion, force, outcome{
				reason: tokensyncv1alpha1.ReasonSecretConflict, kind: providers.ProviderUnavailable,
				message: fmt.Sprintf("Secret %q already exists and is not controlled by this TokenRequest; "+
					"delete or rename it, or set spec.secretName to another name", tr.TargetSecretName()),
			})
		}
		return ctrl.Result{}, fmt.Errorf("write Secret %q: %w", tr.TargetSecretName(), err)
	}
	if err := r.deletePreviousSecret(ctx, tr); err != nil {
		return ctrl.Result{}, err
	}

	expiresAt, _ := time.Parse(time.RFC3339, content.Annotations[tokensyncv1alpha1.AnnotationExpiresAt])
	obtainedAt, _ := time.Parse(time.RFC3339, content.Annotations[annotationObtainedAt])
	next := refreshAt(obtainedAt, expiresAt, refreshBeforeOf(tr), jitterFor(string(tr.UID)+"/"+formatTime(expiresAt)))
	if err := r.setHealthyStatus(ctx, tr, credsVersion, force, obtainedAt, expiresAt, next); err != nil {
		return ctrl.Result{}, err
	}
	r.Recorder.Eventf(tr, nil, corev1.EventTypeNormal, "TokenRefreshed", "Refresh",
		"Wrote a new token to Secret %s; it expires at %s, next refresh at %s", tr.TargetSecretName(), formatTime(expiresAt), formatTime(next))
	log.Info("Token refreshed", "secret", tr.TargetSecretName(), "expiresAt", expiresAt, "nextRefresh", next)
	return ctrl.Result{RequeueAfter: requeueAfter(r.now(), next)}, nil
}

// precheck refuses, before any request, what is certainly wrong.
func (r *TokenRequestReconciler) precheck(p providers.Provider, provider, endpoint string, creds providers.Credentials) error {
	if v, ok := p.(providers.Validator); ok {
		if err := v.Validate(creds); err != nil {
			return err
		}
	}
	if r.EndpointPolicy != nil {
		if err := r.EndpointPolicy.Check(provider, endpoint); err != nil {
			return err
		}
	}
	return nil
}

// healthy keeps a TokenRequest whose token is valid and not yet due: no
// login, and no write unless something is out of date.
func (r *TokenRequestReconciler) healthy(ctx context.Context, tr *tokensyncv1alpha1.TokenRequest, target *corev1.Secret, held heldToken, credsVersion string, next time.Time) (ctrl.Result, error) {
	if !templateApplied(tr, target) {
		if err := r.retryOnConflict(ctx, target, func(s *corev1.Secret) { applyTemplate(tr, s) }); err != nil {
			return ctrl.Result{}, fmt.Errorf("update Secret %q labels and annotations: %w", target.Name, err)
		}
	}
	if err := r.deletePreviousSecret(ctx, tr); err != nil {
		return ctrl.Result{}, err
	}
	if err := r.setHealthyStatus(ctx, tr, credsVersion, tr.Status.LastForceRefresh, held.ObtainedAt, held.ExpiresAt, next); err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{RequeueAfter: requeueAfter(r.now(), next)}, nil
}

// setHealthyStatus records a valid token. credsVersion and force are the
// credentials resourceVersion and force-refresh value it was obtained with.
func (r *TokenRequestReconciler) setHealthyStatus(ctx context.Context, tr *tokensyncv1alpha1.TokenRequest, credsVersion, force string, obtainedAt, expiresAt, next time.Time) error {
	provider := string(tr.Spec.Provider)
	tokenExpiry.WithLabelValues(tr.Namespace, tr.Name, provider).Set(float64(expiresAt.Unix()))
	tokenRefresh.WithLabelValues(tr.Namespace, tr.Name, provider).Set(float64(next.Unix()))
	tokenRequestReady.WithLabelValues(tr.Namespace, tr.Name, provider).Set(1)
	return r.updateStatus(ctx, tr, func(st *tokensyncv1alpha1.TokenRequestStatus) {
		st.ObservedGeneration = tr.Generation
		st.SecretName = tr.TargetSecretName()
		st.ExpiresAt = metaTime(expiresAt)
		st.LastRefreshTime = metaTime(obtainedAt)
		st.NextRefreshTime = metaTime(next)
		st.FailedAttempts = 0
		st.LastForceRefresh = force
		st.CredentialsResourceVersion = credsVersion
		r.setReady(st, tr, metav1.ConditionTrue, tokensyncv1alpha1.ReasonTokenIssued,
			fmt.Sprintf("Secret %s holds a valid token until %s; next refresh at %s", tr.TargetSecretName(), formatTime(expiresAt), formatTime(next)))
	})
}

// failed records a failure: the target Secret is left alone, so a token that
// is still valid keeps working; the next attempt is scheduled by backoff.
func (r *TokenRequestReconciler) failed(ctx context.Context, tr *tokensyncv1alpha1.TokenRequest, target *corev1.Secret, credsVersion, force string, o outcome) (ctrl.Result, error) {
	now := r.now()
	attempts := tr.Status.FailedAttempts + 1
	delay := backoffFor(o.kind, attempts, r.jitter(), o.retryAfter)
	retryAt := now.Add(delay)

	message := o.message
	if held, ok := heldTokenIn(target); ok && held.Intact && now.Before(held.ExpiresAt) && target.Name == tr.TargetSecretName() {
		message += fmt.Sprintf("; the previous token in Secret %s stays valid until %s", target.Name, formatTime(held.ExpiresAt))
	}
	message += fmt.Sprintf(" (attempt %d, next retry at %s)", attempts, formatTime(retryAt))

	provider := string(tr.Spec.Provider)
	tokenRefresh.WithLabelValues(tr.Namespace, tr.Name, provider).Set(float64(retryAt.Unix()))
	tokenRequestReady.WithLabelValues(tr.Namespace, tr.Name, provider).Set(0)

	err := r.updateStatus(ctx, tr, func(st *tokensyncv1alpha1.TokenRequestStatus) {
		st.ObservedGeneration = tr.Generation
		st.FailedAttempts = attempts
		st.NextRefreshTime = metaTime(retryAt)
		st.CredentialsResourceVersion = credsVersion
		st.LastForceRefresh = force
		r.setReady(st, tr, metav1.ConditionFalse, o.reason, message)
	})
	if err != nil {
		return ctrl.Result{}, err
	}
	r.Recorder.Eventf(tr, nil, corev1.EventTypeWarning, o.reason, "Refresh", "%s", o.message)
	logf.FromContext(ctx).Info("Login failed", "reason", o.reason, "message", o.message, "attempt", attempts, "nextRetry", retryAt)
	return ctrl.Result{RequeueAfter: requeueAfter(now, retryAt)}, nil
}

func (r *TokenRequestReconciler) setReady(st *tokensyncv1alpha1.TokenRequestStatus, tr *tokensyncv1alpha1.TokenRequest, status metav1.ConditionStatus, reason, message string) {
	meta.SetStatusCondition(&st.Conditions, metav1.Condition{
		Type:               tokensyncv1alpha1.ConditionReady,
		Status:             status,
		Reason:             reason,
		Message:            message,
		ObservedGeneration: tr.Generation,
		LastTransitionTime: metav1.NewTime(r.now().UTC().Truncate(time.Second)),
	})
}

// updateStatus applies mutate to the TokenRequest's status and writes it
// only if it changed. A conflict re-reads the TokenRequest and applies the
// same change again: the login it records is never repeated.
func (r *TokenRequestReconciler) updateStatus(ctx context.Context, tr *tokensyncv1alpha1.TokenRequest, mutate func(*tokensyncv1alpha1.TokenRequestStatus)) error {
	first := true
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if !first {
			if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(tr), tr); err != nil {
				return err
			}
		}
		first = false
		want := tr.Status.DeepCopy()
		mutate(want)
		if equality.Semantic.DeepEqual(&tr.Status, want) {
			return nil
		}
		tr.Status = *want
		return r.Status().Update(ctx, tr)
	})
}

var errSecretConflict = errors.New("secret exists and is not controlled by this TokenRequest")

// targetSecret returns the target Secret if it exists and this TokenRequest
// controls it, nil if it does not exist, and errSecretConflict if another
// owner has it.
func (r *TokenRequestReconciler) targetSecret(ctx context.Context, tr *tokensyncv1alpha1.TokenRequest, name string, fresh bool) (s *corev1.Secret, fromServer bool, err error) {
	key := types.NamespacedName{Namespace: tr.Namespace, Name: name}
	s = &corev1.Secret{}
	if !fresh {
		err = r.Get(ctx, key, s)
	}
	if fresh || apierrors.IsNotFound(err) {
		// The cache holds only Secrets labelled as ours; an unlabelled Secret
		// of that name is visible only to a direct read.
		fromServer = true
		err = r.APIReader.Get(ctx, key, s)
		if apierrors.IsNotFound(err) {
			return nil, true, nil
		}
	}
	if err != nil {
		return nil, fromServer, fmt.Errorf("get Secret %q: %w", name, err)
	}
	if !metav1.IsControlledBy(s, tr) {
		return nil, fromServer, errSecretConflict
	}
	return s, fromServer, nil
}

// writeSecret creates or updates the target Secret with content.
func (r *TokenRequestReconciler) writeSecret(ctx context.Context, tr *tokensyncv1alpha1.TokenRequest, existing *corev1.Secret, content secretContent) error {
	apply := func(s *corev1.Secret) {
		s.Data = content.Data
		if s.Labels == nil {
			s.Labels = map[string]string{}
		}
		if s.Annotations == nil {
			s.Annotations = map[string]string{}
		}
		for k, v := range content.Labels {
			s.Labels[k] = v
		}
		for k, v := range content.Annotations {
			s.Annotations[k] = v
		}
	}
	if existing == nil {
		s := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: tr.TargetSecretName(), Namespace: tr.Namespace},
			Type:       corev1.SecretTypeOpaque,
		}
		apply(s)
		if err := controllerutil.SetControllerReference(tr, s, r.Scheme); err != nil {
			return err
		}
		err := r.Create(ctx, s)
		if !apierrors.IsAlreadyExists(err) {
			return err
		}
		// Created meanwhile: ours if a previous attempt's write landed late.
		existing, _, err = r.targetSecret(ctx, tr, tr.TargetSecretName(), true)
		if err != nil {
			return err
		}
		if existing == nil {
			return errSecretConflict
		}
	}
	return r.retryOnConflict(ctx, existing, apply)
}

// retryOnConflict applies mutate to s and updates it, re-reading s on a
// conflict. Nothing is written when mutate changes nothing.
func (r *TokenRequestReconciler) retryOnConflict(ctx context.Context, s *corev1.Secret, mutate func(*corev1.Secret)) error {
	first := true
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if !first {
			if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(s), s); err != nil {
				return err
			}
		}
		first = false
		before := s.DeepCopy()
		mutate(s)
		if equality.Semantic.DeepEqual(before, s) {
			return nil
		}
		return r.Update(ctx, s)
	})
}

// deletePreviousSecret deletes the Secret named before a secretName change, if ours.
func (r *TokenRequestReconciler) deletePreviousSecret(ctx context.Context, tr *tokensyncv1alpha1.TokenRequest) error {
	prev := tr.Status.SecretName
	if prev == "" || prev == tr.TargetSecretName() {
		return nil
	}
	s := &corev1.Secret{}
	if err := r.Get(ctx, types.NamespacedName{Namespace: tr.Namespace, Name: prev}, s); err != nil {
		return client.IgnoreNotFound(err)
	}
	if !metav1.IsControlledBy(s, tr) {
		return nil
	}
	if err := r.Delete(ctx, s, client.Preconditions{UID: &s.UID}); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("delete previous Secret %q: %w", prev, err)
	}
	logf.FromContext(ctx).Info("Deleted the previous target Secret after a secretName change", "secret", prev)
	return nil
}

// credentialsVersion returns the credentials Secret's resourceVersion from
// the metadata-only cache, or from the API server when fresh.
func (r *TokenRequestReconciler) credentialsVersion(ctx context.Context, tr *tokensyncv1alpha1.TokenRequest, fresh bool) (string, bool, error) {
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	reader := r.Credentials
	if fresh {
		reader = r.APIReader
	}
	err := reader.Get(ctx, types.NamespacedName{Namespace: tr.Namespace, Name: tr.Spec.CredentialsSecretRef.Name}, m)
	if apierrors.IsNotFound(err) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("get credentials Secret %q metadata: %w", tr.Spec.CredentialsSecretRef.Name, err)
	}
	return m.ResourceVersion, true, nil
}

// readCredentials reads the credentials Secret straight from the API server,
// only when a login is about to happen.
func (r *TokenRequestReconciler) readCredentials(ctx context.Context, tr *tokensyncv1alpha1.TokenRequest) (providers.Credentials, string, error) {
	s := &corev1.Secret{}
	key := types.NamespacedName{Namespace: tr.Namespace, Name: tr.Spec.CredentialsSecretRef.Name}
	if err := r.APIReader.Get(ctx, key, s); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, "", err
		}
		return nil, "", fmt.Errorf("read credentials Secret %q: %w", key.Name, err)
	}
	creds := make(providers.Credentials, len(s.Data)+len(s.StringData))
	for k, v := range s.Data {
		creds[k] = v
	}
	return creds, s.ResourceVersion, nil
}

// providerOutcome maps a provider error to a condition reason.
func providerOutcome(tr *tokensyncv1alpha1.TokenRequest, err error) outcome {
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
	return outcome{reason: string(kind), kind: kind, message: msg, retryAfter: providers.RetryAfterOf(err)}
}

// forceHonoured returns the force-refresh value to record as honoured.
func forceHonoured(tr *tokensyncv1alpha1.TokenRequest, force string) string {
	if force != "" {
		return force
	}
	return tr.Status.LastForceRefresh
}

func refreshBeforeOf(tr *tokensyncv1alpha1.TokenRequest) time.Duration {
	if tr.Spec.RefreshBefore != nil {
		return tr.Spec.RefreshBefore.Duration
	}
	return defaultRefreshBefore
}
