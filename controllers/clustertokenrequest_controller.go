package controllers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
)

// A ClusterTokenRequest is a TokenRequest whose token has many Secrets: the
// Secret spec.secretName in every namespace it selects, all holding the
// token of one login. Its reconciler shares the TokenRequest reconciler's
// providers, endpoint policy, login gate, memory and fingerprints, and the
// same pure policies (decide, the reason table, afterFailure and
// afterSuccess): the decision looks at the token held, read from any one of
// its Secrets (each records what it holds), so a restart or a leader change
// costs no login. What differs is the fan-out: a namespace that starts to
// match gets its Secret from the token held, with no login; one that stops
// matching has it deleted (or left, with deletionPolicy Retain); a foreign
// Secret of that name, or a refused write, is reported for its namespace
// and touches no other.

// +kubebuilder:rbac:groups=tokensync.io,resources=clustertokenrequests,verbs=get;list;watch
// +kubebuilder:rbac:groups=tokensync.io,resources=clustertokenrequests/status,verbs=update
// +kubebuilder:rbac:groups=tokensync.io,resources=clustertokenrequests/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch

// clusterKind names the ClusterTokenRequest controller to the login gate.
const clusterKind = "ClusterTokenRequest"

// indexClusterOwner indexes the managed Secrets by the ClusterTokenRequest
// they belong to (its controller reference, or its retain annotation).
const indexClusterOwner = "tokensync.io/cluster-owner"

// ClusterTokenRequestReconciler keeps each ClusterTokenRequest's token in
// the Secrets of the namespaces it selects.
type ClusterTokenRequestReconciler struct {
	*TokenRequestReconciler
	// WatchedNamespaces, when set, are the only namespaces the operator
	// watches (--namespaces): no others are written.
	WatchedNamespaces []string
	// clusterSecretRetry is how soon a namespace whose write was refused is
	// tried again (zero: clusterWriteRetry).
	clusterSecretRetry time.Duration
}

// clusterWriteRetry: a namespace whose Secret write was refused (a quota,
// a policy) is tried again this soon; other namespaces are not held up.
const clusterWriteRetry = 30 * time.Second

// clusterOwnerOf is a ClusterTokenRequest as the owner of its Secrets.
func (r *ClusterTokenRequestReconciler) clusterOwnerOf(ctr *tokensyncv1alpha1.ClusterTokenRequest) secretOwner {
	return secretOwner{obj: ctr, spec: &ctr.Spec.LoginSpec, retainKey: tokensyncv1alpha1.AnnotationClusterOwner,
		remember: func(s *corev1.Secret) {
			r.memory.with(types.NamespacedName{Name: ctr.Name}, ctr.UID, func(e *remembered) {
				e.secretNamespace, e.secretName, e.secretRV = s.Namespace, s.Name, s.ResourceVersion
			})
		}}
}

// Reconcile observes one ClusterTokenRequest and its Secrets, decides as
// for a TokenRequest, and acts on every namespace.
func (r *ClusterTokenRequestReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	r.init()
	key := types.NamespacedName{Name: req.Name}
	ctr := &tokensyncv1alpha1.ClusterTokenRequest{}
	if err := r.Get(ctx, key, ctr); err != nil {
		if apierrors.IsNotFound(err) {
			// Its Secrets go with it through their owner references
			// (deletionPolicy Delete) or stay (Retain).
			r.gate.cancel(key)
			r.memory.forget(key)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, fmt.Errorf("get ClusterTokenRequest: %w", err)
	}
	if !ctr.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	o, fan, err := r.observeCluster(ctx, ctr)
	var invalid *invalidSelectorError
	if errors.As(err, &invalid) {
		return r.invalidSelector(ctx, ctr, invalid)
	}
	if err != nil {
		return ctrl.Result{}, err
	}
	if o.loginErr != nil {
		return ctrl.Result{}, o.loginErr
	}
	if f := o.loginFailed; f != nil {
		return r.failed(ctx, o, f.failure)
	}
	d := decide(o.observation)
	return r.actCluster(ctx, o, fan, d)
}

// fanOut is what a ClusterTokenRequest's namespaces hold.
type fanOut struct {
	ctr *tokensyncv1alpha1.ClusterTokenRequest
	// selected namespaces, sorted; missing are named in spec.namespaces
	// and do not exist.
	selected, missing []string
	// current are its Secrets of spec.secretName in selected namespaces,
	// by namespace; foreign the selected namespaces whose Secret of that
	// name is not its.
	current map[string]*corev1.Secret
	foreign map[string]bool
	// others are its Secrets elsewhere: in namespaces no longer selected,
	// or of an earlier spec.secretName.
	others []*corev1.Secret
	// source is the Secret the held token was read from (nil: none).
	source *corev1.Secret
	// token is the token held, tokenFP its fingerprint.
	token   []byte
	tokenFP string
}

// observeCluster gathers what decide needs, and the namespaces' state.
func (r *ClusterTokenRequestReconciler) observeCluster(ctx context.Context, ctr *tokensyncv1alpha1.ClusterTokenRequest) (*snapshot, *fanOut, error) {
	key := types.NamespacedName{Name: ctr.Name}
	var rem remembered
	r.memory.with(key, ctr.UID, func(e *remembered) { rem = *e })
	if cacheBehind(ctr.ResourceVersion, rem.statusRV) {
		fresh := &tokensyncv1alpha1.ClusterTokenRequest{}
		if err := r.APIReader.Get(ctx, key, fresh); err != nil {
			return nil, nil, fmt.Errorf("get ClusterTokenRequest: %w", err)
		}
		ctr = fresh
	}
	o := &snapshot{key: key, kind: clusterKind, owner: r.clusterOwnerOf(ctr),
		credentialsRef: types.NamespacedName{Namespace: ctr.Spec.CredentialsSecretRef.Namespace, Name: ctr.Spec.CredentialsSecretRef.Name},
		writeStatus: func(ctx context.Context, mutate func(*tokensyncv1alpha1.TokenStatus)) (bool, error) {
			return r.updateClusterStatus(ctx, ctr, func(st *tokensyncv1alpha1.ClusterTokenRequestStatus) { mutate(&st.TokenStatus) })
		}}
	if rem.unwrittenClusterStatus != nil {
		ctr.Status = *rem.unwrittenClusterStatus.DeepCopy()
		o.unwrittenStatus = true
	}
	r.observeSpec(o, ctr, &ctr.Spec.LoginSpec, ctr.Status.TokenStatus, ctr.Spec.SecretName, rem)

	fan := &fanOut{ctr: ctr, current: map[string]*corev1.Secret{}, foreign: map[string]bool{}}
	var err error
	if fan.selected, fan.missing, err = r.selectedNamespaces(ctx, ctr); err != nil {
		return nil, nil, err
	}
	if err := r.observeSecrets(ctx, o, fan, rem); err != nil {
		return nil, nil, err
	}
	if err := r.observeCredentials(ctx, o); err != nil {
		return nil, nil, err
	}
	r.memory.takeLoginResult(key, ctr.UID, rem)
	return o, fan, nil
}

// selectedNamespaces are the namespaces ctr selects that exist, are not
// being deleted and are watched; missing are those spec.namespaces names
// that do not exist. A selector that cannot be evaluated is an
// *invalidSelectorError, and a failed list an error: neither is "none
// selected", so no Secret is deleted for either.
func (r *ClusterTokenRequestReconciler) selectedNamespaces(ctx context.Context, ctr *tokensyncv1alpha1.ClusterTokenRequest) (selected, missing []string, err error) {
	var selector labels.Selector
	if ls := ctr.Spec.NamespaceSelector; ls != nil {
		if selector, err = metav1.LabelSelectorAsSelector(ls); err != nil {
			// Admission refuses what CEL can judge; a label key or value
			// that is not one, or a CRD older than those rules, gets here.
			return nil, nil, &invalidSelectorError{err: err}
		}
	}
	list := &metav1.PartialObjectMetadataList{}
	list.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("NamespaceList"))
	if err := r.List(ctx, list); err != nil {
		return nil, nil, fmt.Errorf("list namespaces: %w", err)
	}
	exists := map[string]bool{}
	for _, ns := range list.Items {
		exists[ns.Name] = true
		if !ns.DeletionTimestamp.IsZero() || !r.watched(ns.Name) {
			continue
		}
		if (selector != nil && selector.Matches(labels.Set(ns.Labels))) || slices.Contains(ctr.Spec.Namespaces, ns.Name) {
			selected = append(selected, ns.Name)
		}
	}
	for _, name := range ctr.Spec.Namespaces {
		if !exists[name] && r.watched(name) {
			missing = append(missing, name)
		}
	}
	slices.Sort(selected)
	slices.Sort(missing)
	return selected, missing, nil
}

// invalidSelectorError: spec.namespaceSelector cannot be evaluated.
type invalidSelectorError struct{ err error }

func (e *invalidSelectorError) Error() string {
	return "spec.namespaceSelector cannot be evaluated: " + e.err.Error()
}

// invalidSelector records a selector that cannot be evaluated: Ready False
// and Stalled until the spec changes. Which namespaces match is unknown, so
// nothing is written or deleted: every Secret stays as it is, and no login
// is made for them.
func (r *ClusterTokenRequestReconciler) invalidSelector(ctx context.Context, ctr *tokensyncv1alpha1.ClusterTokenRequest, invalid *invalidSelectorError) (ctrl.Result, error) {
	now := r.now()
	reason := tokensyncv1alpha1.ReasonInvalidNamespaceSelector
	message := invalid.Error() + "; fix the selector: until then no Secret is written or deleted in any namespace"
	changed, err := r.updateClusterStatus(ctx, ctr, func(st *tokensyncv1alpha1.ClusterTokenRequestStatus) {
		st.ObservedGeneration = ctr.Generation
		st.NextRefreshTime = nil
		setCondition(&st.TokenStatus, ctr.Generation, now, tokensyncv1alpha1.ConditionReady, metav1.ConditionFalse, reason, message)
		setCondition(&st.TokenStatus, ctr.Generation, now, tokensyncv1alpha1.ConditionStalled, metav1.ConditionTrue, reason, message)
		removeCondition(&st.TokenStatus, tokensyncv1alpha1.ConditionReconciling)
	})
	if err != nil {
		return ctrl.Result{}, err
	}
	if changed {
		r.Recorder.Eventf(ctr, nil, corev1.EventTypeWarning, reason, "Select", "%s", message)
		logf.FromContext(ctx).Info("Namespace selector cannot be evaluated; no Secret written or deleted", "error", invalid.err.Error())
	}
	// A spec change reconciles (its generation changes); nothing else can fix it.
	return ctrl.Result{}, nil
}

func (r *ClusterTokenRequestReconciler) watched(ns string) bool {
	return len(r.WatchedNamespaces) == 0 || slices.Contains(r.WatchedNamespaces, ns)
}

// observeSecrets finds ctr's Secrets (the managed cache's index of them,
// and the API server where the cache may be behind tokensync's own last
// write), the foreign Secrets in its way, and the token held: the latest
// valid one its Secrets hold.
func (r *ClusterTokenRequestReconciler) observeSecrets(ctx context.Context, o *snapshot, fan *fanOut, rem remembered) error {
	ctr := fan.ctr
	owner := o.owner
	list := &corev1.SecretList{}
	if err := r.List(ctx, list, client.MatchingFields{indexClusterOwner: ctr.Name}); err != nil {
		return fmt.Errorf("list the Secrets of ClusterTokenRequest %s: %w", ctr.Name, err)
	}
	mine := map[types.NamespacedName]*corev1.Secret{}
	for i := range list.Items {
		s := &list.Items[i]
		if !owner.owns(s) {
			continue
		}
		if !r.wholeInCache(s) {
			// A retained Secret, cached without its content.
			fresh := &corev1.Secret{}
			err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(s), fresh)
			if apierrors.IsNotFound(err) {
				continue
			} else if err != nil {
				return fmt.Errorf("get Secret %s/%s: %w", s.Namespace, s.Name, err)
			}
			if !owner.owns(fresh) {
				continue
			}
			s = fresh
		}
		mine[client.ObjectKeyFromObject(s)] = s
	}
	// Tokensync's last write, if the cache has not shown it yet.
	if last := (types.NamespacedName{Namespace: rem.secretNamespace, Name: rem.secretName}); rem.secretRV != "" {
		if s := mine[last]; s == nil || cacheBehind(s.ResourceVersion, rem.secretRV) {
			fresh := &corev1.Secret{}
			err := r.APIReader.Get(ctx, last, fresh)
			switch {
			case err == nil && owner.owns(fresh):
				mine[last] = fresh
			case client.IgnoreNotFound(err) != nil:
				return fmt.Errorf("get Secret %s: %w", last, err)
			}
		}
	}
	selected := map[string]bool{}
	for _, ns := range fan.selected {
		selected[ns] = true
		k := types.NamespacedName{Namespace: ns, Name: ctr.Spec.SecretName}
		if s := mine[k]; s != nil {
			fan.current[ns] = s
			continue
		}
		// Not ours, or not ours yet: is there a Secret of that name?
		m := &metav1.PartialObjectMetadata{}
		m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
		if err := r.Credentials.Get(ctx, k, m); apierrors.IsNotFound(err) {
			continue
		} else if err != nil {
			return fmt.Errorf("get Secret %s metadata: %w", k, err)
		}
		s := &corev1.Secret{}
		err := r.APIReader.Get(ctx, k, s)
		switch {
		case apierrors.IsNotFound(err):
		case err != nil:
			return fmt.Errorf("get Secret %s: %w", k, err)
		case owner.owns(s):
			fan.current[ns] = s
		default:
			fan.foreign[ns] = true
		}
	}
	for k, s := range mine {
		if k.Name != ctr.Spec.SecretName || !selected[k.Namespace] {
			fan.others = append(fan.others, s)
		}
	}
	slices.SortFunc(fan.others, func(a, b *corev1.Secret) int {
		return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})

	// The token held: the latest valid one of its current Secrets.
	var best heldToken
	for _, ns := range fan.selected {
		s := fan.current[ns]
		if s == nil {
			continue
		}
		fp, err := r.fingerprints.token(ctx, s.Data[tokensyncv1alpha1.SecretKeyToken])
		if err != nil {
			return err
		}
		held, ok := heldTokenIn(s, fp)
		if !ok || !held.Intact {
			continue
		}
		if fan.source == nil || held.ExpiresAt.After(best.ExpiresAt) {
			fan.source, best = s, held
			fan.token, fan.tokenFP = s.Data[tokensyncv1alpha1.SecretKeyToken], s.Annotations[annotationTokenFingerprint]
		}
	}
	switch {
	case fan.source != nil:
		o.target = fan.source
		o.targetKey = client.ObjectKeyFromObject(fan.source)
		o.Target = targetState{Exists: true, Holds: true, Held: best}
	case len(fan.selected) > 0:
		o.targetKey = types.NamespacedName{Namespace: fan.selected[0], Name: ctr.Spec.SecretName}
		o.target = fan.current[fan.selected[0]]
		o.Target = targetState{Exists: len(fan.current) > 0}
	}
	// After a secretName change, the token may move from an earlier Secret.
	if prev := ctr.Status.SecretName; prev != "" && prev != ctr.Spec.SecretName && fan.source == nil {
		for _, s := range fan.others {
			if s.Name != prev {
				continue
			}
			fp, err := r.fingerprints.token(ctx, s.Data[tokensyncv1alpha1.SecretKeyToken])
			if err != nil {
				return err
			}
			if held, ok := heldTokenIn(s, fp); ok && held.Intact {
				o.previous, o.Previous = s, &held
				break
			}
		}
	}
	return nil
}

// actCluster carries out a decision for every namespace.
func (r *ClusterTokenRequestReconciler) actCluster(ctx context.Context, o *snapshot, fan *fanOut, d decision) (ctrl.Result, error) {
	log := logf.FromContext(ctx).WithValues("decision", d.Action, "reason", d.Reason)
	if d.Action == actKeep || d.Action == actWrite {
		// A login still waiting for its turn is no longer needed.
		r.gate.dropWaiting(o.key)
	}
	if len(fan.selected) == 0 && d.Action != actSuspend && d.Action != actStop {
		// Nowhere to keep a token: no login, and no Secret to write.
		return r.noNamespaces(ctx, o, fan)
	}
	switch d.Action {
	case actKeep:
		return r.keepCluster(ctx, o, fan, d)
	case actWrite:
		log.Info("Writing a token without a login", "why", d.Message, "namespaces", len(fan.selected))
		return r.writeCluster(ctx, o, fan, d)
	}
	// Login, wait, stop and suspend are as for a TokenRequest.
	return r.act(ctx, o, d)
}

// noNamespaces records that the ClusterTokenRequest selects no namespace;
// a token kept for a refused write stays for when one is selected.
func (r *ClusterTokenRequestReconciler) noNamespaces(ctx context.Context, o *snapshot, fan *fanOut) (ctrl.Result, error) {
	now := r.now()
	message := "no namespace is selected (spec.namespaceSelector, spec.namespaces): no login until one is"
	if len(fan.missing) > 0 {
		message += fmt.Sprintf("; spec.namespaces names namespaces that do not exist: %s", strings.Join(fan.missing, ", "))
	}
	if err := r.deleteOthers(ctx, o, fan); err != nil {
		return ctrl.Result{}, err
	}
	_, err := r.updateClusterStatus(ctx, fan.ctr, func(st *tokensyncv1alpha1.ClusterTokenRequestStatus) {
		st.ObservedGeneration = o.Generation
		st.NextRefreshTime = nil
		st.Namespaces = tokensyncv1alpha1.NamespaceCounts{}
		st.FailedNamespaces = nil
		setCondition(&st.TokenStatus, o.Generation, now, tokensyncv1alpha1.ConditionReady, metav1.ConditionFalse, reasonNoNamespaces, message)
		removeCondition(&st.TokenStatus, tokensyncv1alpha1.ConditionStalled)
		removeCondition(&st.TokenStatus, tokensyncv1alpha1.ConditionReconciling)
	})
	return ctrl.Result{}, err
}

// reasonNoNamespaces: a ClusterTokenRequest selects no namespace.
const reasonNoNamespaces = "NoNamespacesSelected"

// keepCluster looks after a valid token that is not due: every selected
// namespace gets it (a namespace newly selected, a Secret deleted or out
// of date), from the Secret it was read from, with no login.
func (r *ClusterTokenRequestReconciler) keepCluster(ctx context.Context, o *snapshot, fan *fanOut, d decision) (ctrl.Result, error) {
	source := fan.source
	failed, _, err := r.fanOutToken(ctx, o, fan, fan.token, fan.tokenFP, func(s *corev1.Secret) { copyToken(s, source) })
	if err != nil {
		return r.clusterWriteError(ctx, o, err)
	}
	held := o.Target.Held
	h := healthyToken{obtainedAt: held.ObtainedAt, expiresAt: held.ExpiresAt, next: d.At}
	if d.CredentialsMissing {
		h.credentialsMissing = r.credentialsMissingMessage(o, held.ExpiresAt)
	}
	return r.setClusterHealthy(ctx, o, fan, h, failed, d, false)
}

// writeCluster writes a token that needs no login (just obtained, kept
// after refused writes, or from the Secrets of an earlier secretName) to
// every selected namespace.
func (r *ClusterTokenRequestReconciler) writeCluster(ctx context.Context, o *snapshot, fan *fanOut, d decision) (ctrl.Result, error) {
	var (
		mutate  func(*corev1.Secret)
		h       healthyToken
		token   []byte
		tokenFP string
	)
	if d.FromPrevious {
		prev := o.previous
		mutate = func(s *corev1.Secret) { copyToken(s, prev) }
		h = healthyToken{obtainedAt: o.Previous.ObtainedAt, expiresAt: o.Previous.ExpiresAt}
		token, tokenFP = prev.Data[tokensyncv1alpha1.SecretKeyToken], prev.Annotations[annotationTokenFingerprint]
	} else {
		is := o.Pending.issued
		mutate = func(s *corev1.Secret) { applyToken(s, is) }
		h = healthyToken{obtainedAt: is.Token.ObtainedAt, expiresAt: is.Token.ExpiresAt, force: o.Pending.force,
			attempt: &tokensyncv1alpha1.LoginAttempt{
				Time: metav1.NewTime(is.Token.ObtainedAt.UTC().Truncate(time.Second)), Provider: is.Provider, Endpoint: is.Endpoint,
				CredentialsVersion: is.CredentialsVersion, CredentialsFingerprint: is.CredentialsFingerprint,
				SettingsDigest: is.SettingsDigest, Result: tokensyncv1alpha1.ReasonSucceeded,
			}}
		token, tokenFP = []byte(is.Token.Value), is.TokenFingerprint
	}
	h.next = refreshAt(h.obtainedAt, h.expiresAt, o.RefreshBefore, jitterFor(o.UID+"/"+formatTime(h.expiresAt)))
	failed, refusal, err := r.fanOutToken(ctx, o, fan, token, tokenFP, mutate)
	if err != nil {
		return r.clusterWriteError(ctx, o, err)
	}
	written := int32(len(fan.selected) - len(failed))
	if written == 0 && !d.FromPrevious {
		// Not one namespace took it: kept, and the writes retried without a
		// new login, as for a TokenRequest.
		if refusal == nil {
			refusal = errors.New(failed[0].Message)
		}
		return r.writeRefused(ctx, o, refusal)
	}
	r.memory.with(o.key, fan.ctr.UID, func(e *remembered) { r.memory.setPending(o.key, e, nil) })
	return r.setClusterHealthy(ctx, o, fan, h, failed, d, true)
}

// fanOutToken writes the token mutate puts on a Secret to every selected
// namespace whose Secret does not hold it yet (token, recorded with its
// fingerprint tokenFP; a token edited by hand is put back), or
// whose template is out of date, and deletes (or, with deletionPolicy
// Retain, leaves) the Secrets of namespaces no longer selected and of an
// earlier secretName. A namespace that cannot be written is reported in
// failed and holds up no other (refusal is the first refused write's
// error); err is a template that does not render
// (nothing is written anywhere) or an API error of the operator's own.
func (r *ClusterTokenRequestReconciler) fanOutToken(ctx context.Context, o *snapshot, fan *fanOut, token []byte, tokenFP string, mutate func(*corev1.Secret)) (failed []tokensyncv1alpha1.NamespaceFailure, refusal error, err error) {
	ctr := fan.ctr
	var (
		mu       sync.Mutex
		fatal    error
		parallel = make(chan struct{}, fanOutWorkers)
		wg       sync.WaitGroup
	)
	fail := func(f tokensyncv1alpha1.NamespaceFailure) {
		mu.Lock()
		defer mu.Unlock()
		failed = append(failed, f)
	}
	for _, ns := range fan.selected {
		if fan.foreign[ns] {
			fail(tokensyncv1alpha1.NamespaceFailure{Name: ns, Reason: tokensyncv1alpha1.ReasonSecretConflict,
				Message: secretConflictMessage("ClusterTokenRequest", ctr.Spec.SecretName)})
			continue
		}
		existing := fan.current[ns]
		put := mutate
		if existing != nil && tokenFP != "" && existing.Annotations[annotationTokenFingerprint] == tokenFP &&
			bytes.Equal(existing.Data[tokensyncv1alpha1.SecretKeyToken], token) {
			put = func(*corev1.Secret) {} // holds the token: only the template and ownership
		}
		parallel <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-parallel; wg.Done() }()
			key := types.NamespacedName{Namespace: ns, Name: ctr.Spec.SecretName}
			_, werr := r.writeSecretOf(ctx, o.owner, key, existing, put, false)
			var te *templateError
			switch {
			case werr == nil:
			case errors.As(werr, &te), apierrors.ReasonForError(werr) == metav1.StatusReasonUnknown && !errors.Is(werr, errSecretConflict):
				// A template that does not render fails everywhere alike;
				// an error of the operator's own is for the controller's backoff.
				mu.Lock()
				if fatal == nil {
					fatal = werr
				}
				mu.Unlock()
			case errors.Is(werr, errSecretConflict):
				fail(tokensyncv1alpha1.NamespaceFailure{Name: ns, Reason: tokensyncv1alpha1.ReasonSecretConflict,
					Message: secretConflictMessage("ClusterTokenRequest", ctr.Spec.SecretName)})
			default:
				// The API server refused this namespace's write (a quota, a
				// policy, the namespace going away): reported there.
				f := writeFailure(ctr.Spec.SecretName, werr)
				fail(tokensyncv1alpha1.NamespaceFailure{Name: ns, Reason: f.reason, Message: f.message})
				mu.Lock()
				if refusal == nil {
					refusal = werr
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if fatal != nil {
		return nil, nil, fatal
	}
	if err := r.deleteOthers(ctx, o, fan); err != nil {
		return nil, nil, err
	}
	return failed, refusal, nil
}

// fanOutWorkers bounds the Secret writes of one ClusterTokenRequest in
// flight at once, as many as the TokenRequest controller's default workers.
const fanOutWorkers = 16

// deleteOthers deletes ctr's Secrets of namespaces no longer selected and
// of an earlier secretName; with deletionPolicy Retain they stay.
func (r *ClusterTokenRequestReconciler) deleteOthers(ctx context.Context, o *snapshot, fan *fanOut) error {
	if fan.ctr.Spec.DeletionPolicy == tokensyncv1alpha1.DeletionPolicyRetain {
		return nil
	}
	for _, s := range fan.others {
		if err := r.Delete(ctx, s, client.Preconditions{UID: &s.UID}); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("delete Secret %s/%s: %w", s.Namespace, s.Name, err)
		}
		logf.FromContext(ctx).Info("Deleted a Secret of a namespace no longer selected (or of an earlier secretName)", "secret", s.Namespace+"/"+s.Name)
	}
	return nil
}

// clusterWriteError records a template that does not render, or returns an
// error of the operator's own for the controller's backoff.
func (r *ClusterTokenRequestReconciler) clusterWriteError(ctx context.Context, o *snapshot, err error) (ctrl.Result, error) {
	var te *templateError
	if errors.As(err, &te) {
		f := templateFailure(te.Error())
		if dropped := r.holdRefused(o); dropped != "" {
			f.message += "; " + dropped
		}
		return r.failed(ctx, o, f)
	}
	return ctrl.Result{}, err
}

// setClusterHealthy records the token held and what each namespace holds.
// A namespace that failed makes Ready False (with its reason, Stalled when
// a person must act) while the others keep their valid token.
func (r *ClusterTokenRequestReconciler) setClusterHealthy(ctx context.Context, o *snapshot, fan *fanOut, h healthyToken, failed []tokensyncv1alpha1.NamespaceFailure, d decision, wrote bool) (ctrl.Result, error) {
	ctr := fan.ctr
	now := r.now()
	for _, ns := range fan.missing {
		failed = append(failed, tokensyncv1alpha1.NamespaceFailure{Name: ns, Reason: reasonNamespaceNotFound,
			Message: fmt.Sprintf("namespace %q is named in spec.namespaces and does not exist", ns)})
	}
	slices.SortFunc(failed, func(a, b tokensyncv1alpha1.NamespaceFailure) int { return strings.Compare(a.Name, b.Name) })
	counts := tokensyncv1alpha1.NamespaceCounts{Selected: int32(len(fan.selected)), Failed: int32(len(failed))}
	counts.Written = counts.Selected - int32(len(failed)-len(fan.missing))
	var warning string
	retry := false
	_, err := r.updateClusterStatus(ctx, ctr, func(st *tokensyncv1alpha1.ClusterTokenRequestStatus) {
		st.TokenStatus, warning = afterSuccess(st.TokenStatus, &o.observation, h, now)
		st.SecretName = ctr.Spec.SecretName
		st.Namespaces = counts
		st.FailedNamespaces = nil
		if len(failed) == 0 {
			return
		}
		st.FailedNamespaces = failed[:min(len(failed), tokensyncv1alpha1.MaxFailedNamespaces)]
		first := failed[0]
		message := fmt.Sprintf("%s until %s in %d of %d namespaces; not in %d: %s (%s: %s)",
			"the token is valid", formatTime(h.expiresAt), counts.Written, counts.Selected, len(failed), namespaceNames(failed), first.Reason, first.Message)
		setCondition(&st.TokenStatus, o.Generation, now, tokensyncv1alpha1.ConditionReady, metav1.ConditionFalse, first.Reason, message)
		if slices.ContainsFunc(failed, func(f tokensyncv1alpha1.NamespaceFailure) bool { return ruleOf(f.Reason).stalls }) {
			setCondition(&st.TokenStatus, o.Generation, now, tokensyncv1alpha1.ConditionStalled, metav1.ConditionTrue, first.Reason, message)
		} else {
			retry = true
			setCondition(&st.TokenStatus, o.Generation, now, tokensyncv1alpha1.ConditionReconciling, metav1.ConditionTrue, tokensyncv1alpha1.ReasonRetrying, message)
		}
	})
	if err != nil {
		// The tokens are stored; the next reconcile finds them and writes the status.
		return ctrl.Result{}, err
	}
	if warning != "" {
		r.Recorder.Eventf(ctr, nil, corev1.EventTypeWarning, "ShortRefreshWindow", "Refresh", "%s", warning)
	}
	if len(failed) > 0 {
		r.Recorder.Eventf(ctr, nil, corev1.EventTypeWarning, failed[0].Reason, "Write",
			"Secret %s not written in %d of %d namespaces: %s", ctr.Spec.SecretName, len(failed), counts.Selected, namespaceNames(failed))
	}
	if wrote {
		if d.FromPrevious {
			r.Recorder.Eventf(ctr, nil, corev1.EventTypeNormal, "TokenMoved", "Refresh",
				"Moved the valid token to Secret %s in %d namespaces without a login; it expires at %s", ctr.Spec.SecretName, counts.Written, formatTime(h.expiresAt))
		} else {
			r.Recorder.Eventf(ctr, nil, corev1.EventTypeNormal, "TokenRefreshed", "Refresh",
				"Logged in because %s; wrote a new token to Secret %s in %d namespaces; it expires at %s, next refresh at %s",
				d.Message, ctr.Spec.SecretName, counts.Written, formatTime(h.expiresAt), formatTime(h.next))
		}
		logf.FromContext(ctx).Info("Token written", "secret", ctr.Spec.SecretName, "namespaces", counts.Written, "failed", len(failed),
			"reason", d.Reason, "expiresAt", h.expiresAt, "nextRefresh", h.next)
	}
	next := h.next
	if retry {
		every := r.clusterSecretRetry
		if every <= 0 {
			every = clusterWriteRetry
		}
		next = earliest(next, now.Add(every))
	}
	return ctrl.Result{RequeueAfter: requeueAfter(now, next)}, nil
}

// reasonNamespaceNotFound: spec.namespaces names a namespace that does not exist.
const reasonNamespaceNotFound = "NamespaceNotFound"

// namespaceNames lists failed namespaces for a message, at most ten.
func namespaceNames(failed []tokensyncv1alpha1.NamespaceFailure) string {
	names := make([]string, 0, min(len(failed), 10))
	for _, f := range failed[:min(len(failed), 10)] {
		names = append(names, f.Name)
	}
	s := strings.Join(names, ", ")
	if len(failed) > 10 {
		s += fmt.Sprintf(" and %d more", len(failed)-10)
	}
	return s
}

// updateClusterStatus applies mutate to the ClusterTokenRequest's status
// and writes it only if it changed, as updateStatus does for a
// TokenRequest: a conflict re-reads and applies the same change again, and
// a status that could not be written is kept in memory.
func (r *ClusterTokenRequestReconciler) updateClusterStatus(ctx context.Context, ctr *tokensyncv1alpha1.ClusterTokenRequest, mutate func(*tokensyncv1alpha1.ClusterTokenRequestStatus)) (bool, error) {
	key := types.NamespacedName{Name: ctr.Name}
	var unwritten bool
	r.memory.with(key, ctr.UID, func(e *remembered) { unwritten = e.unwrittenClusterStatus != nil })
	first, changed := true, false
	var want *tokensyncv1alpha1.ClusterTokenRequestStatus
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if !first {
			fresh := &tokensyncv1alpha1.ClusterTokenRequest{}
			if err := r.APIReader.Get(ctx, key, fresh); err != nil {
				return err
			}
			fresh.DeepCopyInto(ctr)
		}
		first = false
		want = ctr.Status.DeepCopy()
		mutate(want)
		if !unwritten && equality.Semantic.DeepEqual(&ctr.Status, want) {
			return nil
		}
		changed = true
		ctr.Status = *want
		return r.Status().Update(ctx, ctr)
	})
	r.memory.with(key, ctr.UID, func(e *remembered) {
		if err != nil {
			if want != nil {
				e.unwrittenClusterStatus = want.DeepCopy()
			}
			return
		}
		e.unwrittenClusterStatus = nil
		e.statusRV = ctr.ResourceVersion
	})
	if err != nil {
		return changed, fmt.Errorf("update ClusterTokenRequest status: %w", err)
	}
	return changed, nil
}

// SetupWithManager registers the ClusterTokenRequest controller. r shares
// the TokenRequest reconciler, which SetupWithManager has set up first.
func (r *ClusterTokenRequestReconciler) SetupWithManager(mgr ctrl.Manager, opts controller.Options) error {
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &corev1.Secret{}, indexClusterOwner, clusterOwnerOfSecret); err != nil {
		return fmt.Errorf("index Secrets by ClusterTokenRequest: %w", err)
	}
	secretMeta := &metav1.PartialObjectMetadata{}
	secretMeta.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	credentials, ok := r.Credentials.(cache.Cache)
	if !ok {
		return errors.New("the TokenRequest controller must be set up first: it makes the Secrets metadata cache")
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("clustertokenrequest").
		For(&tokensyncv1alpha1.ClusterTokenRequest{}, builder.WithPredicates(
			predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		// A namespace created, deleted, or whose labels change may start or
		// stop matching: every ClusterTokenRequest looks (they are few).
		WatchesMetadata(&corev1.Namespace{}, handler.EnqueueRequestsFromMapFunc(r.allClusterTokenRequests),
			builder.WithPredicates(namespaceMatchingMayChange())).
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(requestForClusterSecret),
			builder.WithPredicates(targetSecretTampered())).
		WatchesRawSource(source.Kind(credentials, secretMeta, r.clusterSecretEvents())).
		WatchesRawSource(source.Func(func(ctx context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
			r.gate.start(ctx, clusterKind, func(who types.NamespacedName) { q.Add(reconcile.Request{NamespacedName: who}) })
			return nil
		})).
		WithOptions(opts).
		Complete(r)
}

// clusterOwnerOfSecret indexes a Secret by the ClusterTokenRequest it
// belongs to: its controller, or the name a retained Secret records.
func clusterOwnerOfSecret(o client.Object) []string {
	if ref := metav1.GetControllerOf(o); ref != nil {
		if ref.Kind == "ClusterTokenRequest" && strings.HasPrefix(ref.APIVersion, tokensyncv1alpha1.GroupVersion.Group+"/") {
			return []string{ref.Name}
		}
		return nil
	}
	if name := o.GetAnnotations()[tokensyncv1alpha1.AnnotationClusterOwner]; name != "" {
		return []string{name}
	}
	return nil
}

// requestForClusterSecret maps a managed Secret to its ClusterTokenRequest.
func requestForClusterSecret(_ context.Context, s client.Object) []reconcile.Request {
	var out []reconcile.Request
	for _, name := range clusterOwnerOfSecret(s) {
		out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Name: name}})
	}
	return out
}

// allClusterTokenRequests reconciles every ClusterTokenRequest.
func (r *ClusterTokenRequestReconciler) allClusterTokenRequests(ctx context.Context, _ client.Object) []reconcile.Request {
	return r.clusterTokenRequests(ctx, func(*tokensyncv1alpha1.ClusterTokenRequest) bool { return true })
}

func (r *ClusterTokenRequestReconciler) clusterTokenRequests(ctx context.Context, match func(*tokensyncv1alpha1.ClusterTokenRequest) bool) []reconcile.Request {
	list := &tokensyncv1alpha1.ClusterTokenRequestList{}
	if err := r.List(ctx, list); err != nil {
		logf.FromContext(ctx).Error(err, "List ClusterTokenRequests")
		return nil
	}
	var out []reconcile.Request
	for i := range list.Items {
		if match(&list.Items[i]) {
			out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Name: list.Items[i].Name}})
		}
	}
	return out
}

// namespaceMatchingMayChange passes the namespace events that may change
// which namespaces a selector matches: a creation, a deletion, a change of
// labels, the start of a deletion.
func namespaceMatchingMayChange() predicate.Predicate {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			return !maps.Equal(e.ObjectOld.GetLabels(), e.ObjectNew.GetLabels()) ||
				e.ObjectOld.GetDeletionTimestamp().IsZero() != e.ObjectNew.GetDeletionTimestamp().IsZero()
		},
	}
}

// clusterSecretEvents maps events of the metadata cache of every Secret: a
// credentials Secret's create, update or delete reconciles the
// ClusterTokenRequests using it; a Secret's deletion reconciles those whose
// target Secret has its name (a foreign Secret gone lets that namespace be
// written at once).
func (r *ClusterTokenRequestReconciler) clusterSecretEvents() handler.TypedEventHandler[*metav1.PartialObjectMetadata, reconcile.Request] {
	return secretMetadataEvents(func(ctx context.Context, s *metav1.PartialObjectMetadata, deleted bool) []reconcile.Request {
		return r.clusterTokenRequests(ctx, func(ctr *tokensyncv1alpha1.ClusterTokenRequest) bool {
			ref := ctr.Spec.CredentialsSecretRef
			return ref.Namespace == s.Namespace && ref.Name == s.Name || deleted && ctr.Spec.SecretName == s.Name
		})
	})
}
