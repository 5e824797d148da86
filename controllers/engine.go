package controllers

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"time"

	"github.com/tokensync/tokensync/controllers/policy"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
)

// The engine: one reconcile loop, observe -> decide -> act, for every kind
// that keeps a token. A kind (a TokenRequest, a ClusterTokenRequest) says
// how its object is read, where its token is held (one Secret: the
// TokenRequest's target Secret in its namespace; the ClusterTokenRequest's
// Secret in the operator's namespace), what it makes of a held token (its
// outputs: restarts of workloads, copies in namespaces), and its own status
// fields. Everything about the token itself (when to log in, the login,
// writing the held Secret, failures, backoff and the status they leave) is
// here, written once.

// kind reads one kind's objects as subjects.
type kind interface {
	// load reads the object key with reader; a NotFound error when it is gone.
	load(ctx context.Context, reader client.Reader, key types.NamespacedName) (subject, error)
	// name is the kind's name, for messages; gateName names it to the
	// login gate ("" for TokenRequests).
	name() string
	gateName() string
}

// subject is one object the engine keeps a token for, as its kind presents it.
type subject interface {
	object() client.Object
	loginSpec() *tokensyncv1alpha1.LoginSpec
	tokenStatus() tokensyncv1alpha1.TokenStatus
	// restoreStatus puts back a status memory holds whose write failed.
	restoreStatus(unwritten any)
	credentialsRef() types.NamespacedName
	// held is the Secret the token is held in, and as whose Secret it is
	// written; secretName the name the status reports and messages quote.
	held() (types.NamespacedName, secretOwner)
	secretName() string
	// previousSecretName is a Secret of an earlier secretName the token may
	// move from, or "".
	previousSecretName() string
	// observeOutputs reads what the kind makes of the token (nothing, or
	// the copies in its namespaces); hold says why no token may be used
	// now (no namespace to put it in), nil when it may.
	observeOutputs(ctx context.Context, o *snapshot) error
	hold(ctx context.Context, o *snapshot) (*outputHold, error)
	// publish makes the kind's outputs from the held Secret, which holds a
	// valid token (newToken: just written); its status fields are written
	// with the next writeStatus.
	publish(ctx context.Context, o *snapshot, held *corev1.Secret, newToken bool) (published, error)
	// writeStatus applies mutate, and the kind's own fields publish or hold
	// set, to the status, and writes it when it changed (which it reports).
	writeStatus(ctx context.Context, mutate func(*tokensyncv1alpha1.TokenStatus)) (changed bool, err error)
}

// published is what a kind's publish did.
type published struct {
	// wake is when to look again (a restart held back); zero: not before
	// the refresh.
	wake time.Time
	// where names what holds the token now, for the event and the log:
	// "Secret x", "Secret x in 3 namespaces".
	where string
	// failed are the outputs that did not take the token (copyHeld), of
	// the written and of outputs in all, in ("namespaces") what they are;
	// those that may heal are tried again after retry.
	failed      []tokensyncv1alpha1.NamespaceFailure
	written, of int32
	in          string
	retry       time.Duration
}

// outputHold says why a kind cannot take a token now: no login, no write.
type outputHold struct {
	reason, message string
	// stalls: a person must act (Stalled True).
	stalls bool
}

// reconcile observes the object key of kind k, decides, and acts.
func (r *TokenRequestReconciler) reconcile(ctx context.Context, k kind, key types.NamespacedName) (ctrl.Result, error) {
	r.init()
	s, err := k.load(ctx, r.Client, key)
	if apierrors.IsNotFound(err) {
		// Its Secrets go with it through their owner references
		// (deletionPolicy Delete) or stay (Retain); nothing to do here.
		r.gate.cancel(key)
		r.memory.forget(key)
		return ctrl.Result{}, nil
	}
	if err != nil {
		return ctrl.Result{}, err
	}
	if !s.object().GetDeletionTimestamp().IsZero() {
		return ctrl.Result{}, nil
	}
	o, err := r.observe(ctx, k, s)
	if err != nil {
		return ctrl.Result{}, err
	}
	if o.loginErr != nil {
		return ctrl.Result{}, o.loginErr
	}
	if f := o.loginFailed; f != nil {
		// A login made off the workers failed: record it now.
		return r.failed(ctx, o, f.Failure)
	}
	return r.act(ctx, o, policy.Decide(o.Observation))
}

// observe gathers what decide needs, from the caches, asking the API server
// only where a cache may be behind: for the object and the held Secret when
// tokensync's own last write is newer than the cache's copy, for a Secret
// the managed cache cannot see, and for the credentials' values when their
// version is one no fingerprint is known for.
func (r *TokenRequestReconciler) observe(ctx context.Context, k kind, s subject) (*snapshot, error) {
	obj := s.object()
	key := client.ObjectKeyFromObject(obj)
	var rem remembered
	r.memory.with(key, obj.GetUID(), func(e *remembered) { rem = *e })
	if cacheBehind(obj.GetResourceVersion(), rem.statusRV) {
		fresh, err := k.load(ctx, r.APIReader, key)
		if err != nil {
			return nil, err
		}
		s, obj = fresh, fresh.object()
	}
	heldKey, owner := s.held()
	o := &snapshot{subject: s, key: key, owner: owner, kind: k.gateName(), kindName: k.name(), credentialsRef: s.credentialsRef(), targetKey: heldKey}
	if rem.unwrittenStatus != nil {
		s.restoreStatus(rem.unwrittenStatus)
		o.unwrittenStatus = true
	}
	r.observeSpec(o, obj, s.loginSpec(), s.tokenStatus(), s.secretName(), rem)

	target, exists, foreign, err := r.targetSecret(ctx, owner, heldKey, rem)
	if err != nil {
		return nil, err
	}
	o.target = target
	o.Target = policy.TargetState{Exists: exists, Foreign: foreign}
	if target != nil {
		if o.Target.Held, o.Target.Holds, err = r.heldIn(ctx, obj, target); err != nil {
			return nil, err
		}
	}
	if prev := s.previousSecretName(); prev != "" && prev != heldKey.Name {
		if err := r.observePrevious(ctx, o, types.NamespacedName{Namespace: heldKey.Namespace, Name: prev}); err != nil {
			return nil, err
		}
	}
	if err := r.observeCredentials(ctx, o); err != nil {
		return nil, err
	}
	if err := s.observeOutputs(ctx, o); err != nil {
		return nil, err
	}
	r.memory.takeLoginResult(key, obj.GetUID(), rem)
	return o, nil
}

// heldIn reads the bookkeeping of a Secret of obj's.
func (r *TokenRequestReconciler) heldIn(ctx context.Context, obj client.Object, s *corev1.Secret) (policy.HeldToken, bool, error) {
	fp, err := r.fingerprints.token(ctx, obj.GetUID(), s.Data[tokensyncv1alpha1.SecretKeyToken])
	if err != nil {
		return policy.HeldToken{}, false, err
	}
	held, ok := heldTokenIn(s, fp)
	return held, ok, nil
}

// observePrevious finds the Secret of an earlier secretName, when it is
// the owner's, and the token it holds.
func (r *TokenRequestReconciler) observePrevious(ctx context.Context, o *snapshot, key types.NamespacedName) error {
	s := &corev1.Secret{}
	err := r.Get(ctx, key, s)
	if err == nil && !r.wholeInCache(s) {
		err = r.APIReader.Get(ctx, key, s)
	}
	if client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("get previous Secret %q: %w", key.Name, err)
	}
	if err != nil || !o.owner.owns(s) {
		return nil
	}
	o.previous = s
	held, ok, err := r.heldIn(ctx, o.owner.obj, s)
	if err != nil {
		return err
	}
	if ok {
		o.Previous = &held
	}
	return nil
}

// targetSecret finds the Secret key the owner holds its token in: from the
// managed cache when it is current, else from the API server. foreign is
// true when a Secret of that name exists that the owner does not control
// (it is then not returned).
func (r *TokenRequestReconciler) targetSecret(ctx context.Context, owner secretOwner, key types.NamespacedName, rem remembered) (s *corev1.Secret, exists, foreign bool, err error) {
	s = &corev1.Secret{}
	ours := rem.secretName == key.Name && (rem.secretNamespace == "" || rem.secretNamespace == key.Namespace)
	err = r.Get(ctx, key, s)
	switch {
	case err == nil && ours && cacheBehind(s.ResourceVersion, rem.secretRV),
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
		if apierrors.IsNotFound(metaErr) && !ours {
			return nil, false, false, nil
		}
		err = r.APIReader.Get(ctx, key, s)
	}
	if apierrors.IsNotFound(err) {
		return nil, false, false, nil
	}
	if err != nil {
		return nil, false, false, fmt.Errorf("get Secret %q: %w", key.Name, err)
	}
	if !owner.owns(s) {
		return nil, true, true, nil
	}
	return s, true, false, nil
}

// loginInFlightRecheck: an object waiting for its login looks again after
// this long, should the login's end not reconcile it.
const loginInFlightRecheck = 2 * time.Minute

// act carries out a decision.
func (r *TokenRequestReconciler) act(ctx context.Context, o *snapshot, d policy.Decision) (ctrl.Result, error) {
	log := logf.FromContext(ctx).WithValues("decision", d.Action, "reason", d.Reason)
	if o.unwrittenStatus && d.Action != policy.ActLogin && d.Action != policy.ActWrite {
		// Write the status the last reconcile could not; the actions below
		// that write a status write it themselves.
		if _, err := o.subject.writeStatus(ctx, func(*tokensyncv1alpha1.TokenStatus) {}); err != nil {
			return ctrl.Result{}, err
		}
	}
	if d.Action != policy.ActLogin && d.Reason != policy.ReasonLoginInFlight && d.Reason != policy.ReasonWaitingOnHost {
		// A login still waiting for its turn is no longer needed (one
		// running ends on its own; its token is used only if still wanted).
		// Not when the decision is to wait for that very login: its end
		// is what reconciles again.
		r.gate.dropWaiting(o.key)
	}
	if d.Action != policy.ActSuspend && d.Action != policy.ActStop {
		h, err := o.subject.hold(ctx, o)
		if err != nil {
			return ctrl.Result{}, err
		}
		if h != nil {
			return r.held(ctx, o, h)
		}
	}
	switch d.Action {
	case policy.ActKeep:
		return r.keep(ctx, o, d)
	case policy.ActWait:
		if d.Reason == policy.ReasonWaitingOnHost {
			return r.waitOnHost(ctx, o, d.Message, d.At)
		}
		log.V(1).Info("Waiting", "why", d.Message, "until", d.At)
		if d.At.IsZero() {
			// The login's end reconciles again. A look after a while in
			// case it never does costs one reconcile and no request.
			return ctrl.Result{RequeueAfter: loginInFlightRecheck}, nil
		}
		return ctrl.Result{RequeueAfter: policy.RequeueAfter(o.Now, d.At)}, nil
	case policy.ActStop:
		return r.stop(ctx, o, d)
	case policy.ActSuspend:
		return r.suspend(ctx, o, d)
	case policy.ActWrite:
		log.Info("Writing a token without a login", "why", d.Message, "secret", o.SecretName)
		return r.write(ctx, o, d)
	}
	log.Info("Logging in", "why", d.Message, "secret", o.SecretName)
	return r.login(ctx, o, d)
}

// held records that the kind cannot take a token now: no login, and no
// write; a token kept for a refused write stays for when it can. The
// change that lifts it comes as a watch event.
func (r *TokenRequestReconciler) held(ctx context.Context, o *snapshot, h *outputHold) (ctrl.Result, error) {
	now := r.now()
	changed, err := o.subject.writeStatus(ctx, func(st *tokensyncv1alpha1.TokenStatus) {
		st.ObservedGeneration = o.Generation
		st.NextRefreshTime = nil
		policy.SetCondition(st, o.Generation, now, tokensyncv1alpha1.ConditionReady, metav1.ConditionFalse, h.reason, h.message)
		policy.RemoveCondition(st, tokensyncv1alpha1.ConditionReconciling)
		if h.stalls {
			policy.SetCondition(st, o.Generation, now, tokensyncv1alpha1.ConditionStalled, metav1.ConditionTrue, h.reason, h.message)
		} else {
			policy.RemoveCondition(st, tokensyncv1alpha1.ConditionStalled)
		}
	})
	if err == nil && changed && h.stalls {
		r.Recorder.Eventf(o.owner.obj, nil, corev1.EventTypeWarning, h.reason, "Refresh", "%s", h.message)
	}
	return ctrl.Result{}, err
}

// keep looks after a token that is valid and not due: no login, and no
// write unless something is out of date (the held Secret's template or
// ownership, the kind's outputs).
func (r *TokenRequestReconciler) keep(ctx context.Context, o *snapshot, d policy.Decision) (ctrl.Result, error) {
	held := o.Target.Held
	s, err := r.writeSecretOf(ctx, o.owner, o.targetKey, o.target, func(*corev1.Secret) {}, false)
	if err != nil {
		var te *templateError
		if errors.As(err, &te) {
			return r.failed(ctx, o, policy.TemplateFailure(te.Error()))
		}
		// Only metadata was to be written; the token stays valid.
		return ctrl.Result{}, fmt.Errorf("update Secret %q: %w", o.targetKey.Name, err)
	}
	if err := r.deletePreviousSecret(ctx, o); err != nil {
		return ctrl.Result{}, err
	}
	pub, res, err := r.publish(ctx, o, s, false)
	if pub == nil {
		return res, err
	}
	wasMissing := meta.IsStatusConditionFalse(o.Status.Conditions, tokensyncv1alpha1.ConditionCredentialsFound)
	h := policy.HealthyToken{ObtainedAt: held.ObtainedAt, ExpiresAt: held.ExpiresAt, Next: d.At}
	if d.CredentialsMissing {
		h.CredentialsMissing = r.credentialsMissingMessage(o, held.ExpiresAt)
	}
	if err := r.setHealthy(ctx, o, h, pub); err != nil {
		return ctrl.Result{}, err
	}
	if d.CredentialsMissing && !wasMissing {
		r.Recorder.Eventf(o.owner.obj, nil, corev1.EventTypeWarning, tokensyncv1alpha1.ReasonCredentialsNotFound, "Refresh", "%s", h.CredentialsMissing)
		logf.FromContext(ctx).Info("The credentials Secret is gone; keeping the valid token", "credentialsSecret", o.credentialsRef.Name, "expiresAt", held.ExpiresAt)
	}
	return ctrl.Result{RequeueAfter: policy.RequeueAfter(o.Now, earliest(d.At, pub.wakeAt(r.now())))}, nil
}

// publish runs the kind's publish; a template that does not render is
// recorded as a failure (pub nil, res and err to return).
func (r *TokenRequestReconciler) publish(ctx context.Context, o *snapshot, held *corev1.Secret, newToken bool) (*published, ctrl.Result, error) {
	pub, err := o.subject.publish(ctx, o, held, newToken)
	var te *templateError
	switch {
	case errors.As(err, &te):
		res, err := r.failed(ctx, o, policy.TemplateFailure(te.Error()))
		return nil, res, err
	case err != nil:
		return nil, ctrl.Result{}, err
	}
	return &pub, ctrl.Result{}, nil
}

// write writes a token that needs no login to the held Secret, the one
// place a token is written: the pending one (just obtained, or kept after
// a refused write), or the previous Secret's after a secretName change.
// Then the kind publishes it.
func (r *TokenRequestReconciler) write(ctx context.Context, o *snapshot, d policy.Decision) (ctrl.Result, error) {
	var (
		mutate  func(*corev1.Secret)
		h       policy.HealthyToken
		tokenOf string // where the token came from, for the event
	)
	if d.FromPrevious {
		prev := o.previous
		mutate = func(s *corev1.Secret) { copyToken(s, prev) }
		h = policy.HealthyToken{ObtainedAt: o.Previous.ObtainedAt, ExpiresAt: o.Previous.ExpiresAt}
		tokenOf = prev.Name
	} else {
		is := o.Pending.Issued
		mutate = func(s *corev1.Secret) { applyToken(s, is) }
		h = policy.HealthyToken{ObtainedAt: is.Token.ObtainedAt, ExpiresAt: is.Token.ExpiresAt, Force: o.Pending.Force,
			Attempt: &tokensyncv1alpha1.LoginAttempt{
				Time: metav1.NewTime(is.Token.ObtainedAt.UTC().Truncate(time.Second)), Provider: is.Provider, Endpoint: is.Endpoint,
				CredentialsVersion: is.CredentialsVersion, CredentialsFingerprint: is.CredentialsFingerprint,
				SettingsDigest: is.SettingsDigest, Result: tokensyncv1alpha1.ReasonSucceeded,
			}}
	}
	s, err := r.writeSecretOf(ctx, o.owner, o.targetKey, o.target, mutate, false)
	if err != nil {
		var te *templateError
		switch {
		case errors.As(err, &te):
			// The token obtained stays pending: once the template is fixed
			// it is written without a new login.
			f := policy.TemplateFailure(te.Error())
			if dropped := r.holdRefused(o); dropped != "" {
				f.Message += "; " + dropped
			}
			return r.failed(ctx, o, f)
		case errors.Is(err, errSecretConflict):
			return r.failed(ctx, o, policy.Failure{Reason: tokensyncv1alpha1.ReasonSecretConflict, Message: policy.SecretConflictMessage(o.kindName, o.targetKey.Name)})
		case d.FromPrevious:
			return ctrl.Result{}, fmt.Errorf("write Secret %q: %w", o.targetKey.Name, err)
		}
		return r.writeRefused(ctx, o, err)
	}
	r.memory.with(o.key, o.owner.obj.GetUID(), func(e *remembered) {
		r.memory.setPending(o.key, e, nil)
		e.secretNamespace, e.secretName, e.secretRV = s.Namespace, s.Name, s.ResourceVersion
	})
	if err := r.deletePreviousSecret(ctx, o); err != nil {
		return ctrl.Result{}, err
	}
	h.Next = policy.PlannedRefresh(o.UID, h.ObtainedAt, h.ExpiresAt, o.RefreshBefore)
	pub, res, err := r.publish(ctx, o, s, !d.FromPrevious)
	if pub == nil {
		// The token is stored; what failed is recorded.
		return res, err
	}
	if err := r.setHealthy(ctx, o, h, pub); err != nil {
		// The token is stored; the next reconcile finds it and writes the status.
		return ctrl.Result{}, err
	}
	if d.FromPrevious {
		r.Recorder.Eventf(o.owner.obj, nil, corev1.EventTypeNormal, "TokenMoved", "Refresh",
			"Moved the valid token from Secret %s to %s without a login; it expires at %s", tokenOf, pub.where, policy.FormatTime(h.ExpiresAt))
	} else {
		r.Recorder.Eventf(o.owner.obj, nil, corev1.EventTypeNormal, "TokenRefreshed", "Refresh",
			"Logged in because %s; wrote a new token to %s; it expires at %s, next refresh at %s", d.Message, pub.where, policy.FormatTime(h.ExpiresAt), policy.FormatTime(h.Next))
	}
	logf.FromContext(ctx).Info("Token written", "to", pub.where, "reason", d.Reason, "expiresAt", h.ExpiresAt, "nextRefresh", h.Next)
	return ctrl.Result{RequeueAfter: policy.RequeueAfter(r.now(), earliest(h.Next, pub.wakeAt(r.now())))}, nil
}

// setHealthy records a valid token, and warns once when its refresh window
// is too short for pods that read it from a mounted volume; outputs that
// did not take it make Ready False (outputFailures).
func (r *TokenRequestReconciler) setHealthy(ctx context.Context, o *snapshot, h policy.HealthyToken, pub *published) error {
	now := r.now()
	var warning string
	changed, err := o.subject.writeStatus(ctx, func(st *tokensyncv1alpha1.TokenStatus) {
		*st, warning = policy.AfterSuccess(*st, &o.Observation, h, now)
		outputFailures(st, o.Generation, now, h.ExpiresAt, pub)
	})
	if err != nil {
		return err
	}
	if warning != "" {
		r.Recorder.Eventf(o.owner.obj, nil, corev1.EventTypeWarning, "ShortRefreshWindow", "Refresh", "%s", warning)
	}
	if len(pub.failed) > 0 && changed {
		// Once per change of what failed, as a failure's event is.
		r.Recorder.Eventf(o.owner.obj, nil, corev1.EventTypeWarning, pub.failed[0].Reason, "Write",
			"Secret %s not written in %d of %d %s: %s", o.SecretName, len(pub.failed), pub.of, pub.in, outputNames(pub.failed))
	}
	return nil
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
func (r *TokenRequestReconciler) suspend(ctx context.Context, o *snapshot, d policy.Decision) (ctrl.Result, error) {
	now := r.now()
	status, message := metav1.ConditionFalse, "spec.suspend is true: no login and no write until it is false; "
	if d.At.IsZero() {
		message += fmt.Sprintf("Secret %s holds no valid token", o.SecretName)
	} else {
		status = metav1.ConditionTrue
		message += policy.StillValid(o.SecretName, policy.FormatTime(d.At))
	}
	if _, err := o.subject.writeStatus(ctx, func(st *tokensyncv1alpha1.TokenStatus) {
		st.ObservedGeneration = o.Generation
		st.NextRefreshTime = nil
		policy.SetCondition(st, o.Generation, now, tokensyncv1alpha1.ConditionReady, status, tokensyncv1alpha1.ReasonSuspended, message)
		policy.RemoveCondition(st, tokensyncv1alpha1.ConditionStalled)
		policy.RemoveCondition(st, tokensyncv1alpha1.ConditionReconciling)
	}); err != nil {
		return ctrl.Result{}, err
	}
	logf.FromContext(ctx).V(1).Info("Suspended", "validUntil", d.At)
	if d.At.IsZero() {
		return ctrl.Result{}, nil
	}
	return ctrl.Result{RequeueAfter: policy.RequeueAfter(o.Now, d.At)}, nil
}

func (r *TokenRequestReconciler) credentialsMissingMessage(o *snapshot, expiresAt time.Time) string {
	return fmt.Sprintf("credentials Secret %q not found in namespace %q: %s but cannot be refreshed; create the Secret with keys %s",
		o.credentialsRef.Name, o.credentialsRef.Namespace, policy.StillValid(o.SecretName, policy.FormatTime(expiresAt)), o.keys().CredentialKeyNames())
}

// stop records a state that needs a person, once, with the decision's
// reason and message; nothing is requeued: the change that can fix it (a
// Secret deleted, the spec or credentials edited) comes as a watch event.
func (r *TokenRequestReconciler) stop(ctx context.Context, o *snapshot, d policy.Decision) (ctrl.Result, error) {
	if d.Record {
		return r.failed(ctx, o, policy.Failure{Reason: d.Reason, Message: d.Message})
	}
	logf.FromContext(ctx).V(1).Info("Stopped until an input changes", "why", d.Message)
	return ctrl.Result{}, nil
}

// restoreStatus puts back into status a status of its type that memory
// holds since its write failed.
func restoreStatus[S any, P interface {
	*S
	DeepCopy() *S
}](status P, unwritten any) {
	if st, ok := unwritten.(P); ok {
		*status = *st.DeepCopy()
	}
}

// getObject reads key into obj with reader; an error names the kind, and a
// NotFound stays one.
func getObject(ctx context.Context, reader client.Reader, key types.NamespacedName, obj client.Object, kindName string) error {
	err := reader.Get(ctx, key, obj)
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("get %s: %w", kindName, err)
	}
	return err
}

// writeStatusOf applies mutate to obj's status (status) and writes it only
// if it changed, which it reports. A conflict re-reads the object from the
// API server and applies the same change again: the login it records is
// never repeated. A status that could not be written is kept in memory, so
// the next decision sees it (a failed login stays backed off) and writes it.
func writeStatusOf[O interface {
	client.Object
	DeepCopyInto(O)
}, S any, P interface {
	*S
	DeepCopy() *S
}](ctx context.Context, r *TokenRequestReconciler, kindName string, obj O, status func(O) P, mutate func(P)) (bool, error) {
	key := client.ObjectKeyFromObject(obj)
	var unwritten bool
	r.memory.with(key, obj.GetUID(), func(e *remembered) { unwritten = e.unwrittenStatus != nil })
	first, changed := true, false
	var want P
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if !first {
			fresh := reflect.New(reflect.TypeFor[O]().Elem()).Interface().(O)
			if err := r.APIReader.Get(ctx, key, fresh); err != nil {
				return err
			}
			fresh.DeepCopyInto(obj)
		}
		first = false
		want = status(obj).DeepCopy()
		mutate(want)
		if !unwritten && equality.Semantic.DeepEqual(status(obj), want) {
			return nil
		}
		changed = true
		*status(obj) = *want
		return r.Status().Update(ctx, obj)
	})
	r.memory.with(key, obj.GetUID(), func(e *remembered) {
		if err != nil {
			if want != nil {
				e.unwrittenStatus = P(want.DeepCopy())
			}
			return
		}
		e.unwrittenStatus = nil
		e.statusRV = obj.GetResourceVersion()
	})
	if err != nil {
		return changed, fmt.Errorf("update %s status: %w", kindName, err)
	}
	return changed, nil
}
