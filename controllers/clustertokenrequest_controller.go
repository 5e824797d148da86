package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tokensync/tokensync/controllers/policy"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
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

// A ClusterTokenRequest is a token of one login with many copies: the
// Secret spec.secretName in every namespace it selects. The engine
// (engine.go) keeps its token as it keeps a TokenRequest's, held in a
// Secret of the operator's namespace that only the operator writes and
// reads, so a restart or a leader change costs no login and nothing a
// tenant writes is ever taken as the token held. What is its own is here:
// which namespaces it selects, its copies (outputs, made from the held
// Secret: one that differs is put back, with no login), removing the
// copies of namespaces that no longer match (only once they were
// evaluated: an error never deletes), and its watches.

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

// Reconcile observes one ClusterTokenRequest, its held Secret and its
// copies, decides as for a TokenRequest, and acts (the engine).
func (r *ClusterTokenRequestReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	return r.reconcile(ctx, clusterTokenRequestKind{r}, types.NamespacedName{Name: req.Name})
}

// HeldSecretName is the name of the Secret in the operator's namespace that
// holds a ClusterTokenRequest's token: "ctr-" and its name, or, for a name
// too long for that, the name cut short with a hash of the whole.
func HeldSecretName(clusterTokenRequest string) string {
	name := "ctr-" + clusterTokenRequest
	if len(name) <= 253 {
		return name
	}
	sum := sha256.Sum256([]byte(clusterTokenRequest))
	return strings.TrimRight(name[:240], ".-") + "-" + hex.EncodeToString(sum[:6])
}

// clusterTokenRequestKind presents ClusterTokenRequests to the engine.
type clusterTokenRequestKind struct {
	r *ClusterTokenRequestReconciler
}

func (clusterTokenRequestKind) name() string     { return "ClusterTokenRequest" }
func (clusterTokenRequestKind) gateName() string { return clusterKind }

func (k clusterTokenRequestKind) load(ctx context.Context, reader client.Reader, key types.NamespacedName) (subject, error) {
	ctr := &tokensyncv1alpha1.ClusterTokenRequest{}
	if err := reader.Get(ctx, key, ctr); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, err
		}
		return nil, fmt.Errorf("get ClusterTokenRequest: %w", err)
	}
	return &clusterSubject{r: k.r, ctr: ctr}, nil
}

// clusterSubject is a ClusterTokenRequest and what its namespaces hold.
type clusterSubject struct {
	r   *ClusterTokenRequestReconciler
	ctr *tokensyncv1alpha1.ClusterTokenRequest
	// invalid: spec.namespaceSelector cannot be evaluated; which namespaces
	// match is unknown, so nothing is written or deleted.
	invalid error
	// selected namespaces, sorted; missing are named in spec.namespaces
	// and do not exist.
	selected, missing []string
	// copies are its Secrets of spec.secretName in selected namespaces, by
	// namespace; foreign the selected namespaces whose Secret of that name
	// is not its.
	copies  map[string]*corev1.Secret
	foreign map[string]bool
	// others are its copies elsewhere: in namespaces evaluated and no
	// longer selected, or of an earlier spec.secretName.
	others []*corev1.Secret
	// outputs are the status fields of its namespaces, written with the
	// next status (nil: none to write).
	outputs func(*tokensyncv1alpha1.ClusterTokenRequestStatus)
}

func (s *clusterSubject) object() client.Object                      { return s.ctr }
func (s *clusterSubject) loginSpec() *tokensyncv1alpha1.LoginSpec    { return &s.ctr.Spec.LoginSpec }
func (s *clusterSubject) tokenStatus() tokensyncv1alpha1.TokenStatus { return s.ctr.Status.TokenStatus }
func (s *clusterSubject) secretName() string                         { return s.ctr.Spec.SecretName }

// previousSecretName: the held Secret's name never changes.
func (s *clusterSubject) previousSecretName() string { return "" }

func (s *clusterSubject) restoreStatus(unwritten any) {
	if st, ok := unwritten.(*tokensyncv1alpha1.ClusterTokenRequestStatus); ok {
		s.ctr.Status = *st.DeepCopy()
	}
}

func (s *clusterSubject) credentialsRef() types.NamespacedName {
	ref := s.ctr.Spec.CredentialsSecretRef
	return types.NamespacedName{Namespace: ref.Namespace, Name: ref.Name}
}

// heldSpec is the held Secret's own spec: no template (that is for the
// copies), owned by the ClusterTokenRequest and deleted with it.
var heldSpec = &tokensyncv1alpha1.LoginSpec{}

func (s *clusterSubject) held() (types.NamespacedName, secretOwner) {
	key := types.NamespacedName{Namespace: s.r.FingerprintKey.Namespace, Name: HeldSecretName(s.ctr.Name)}
	return key, secretOwner{obj: s.ctr, spec: heldSpec, retainKey: tokensyncv1alpha1.AnnotationClusterOwner}
}

// copyOwner is the ClusterTokenRequest as the owner of its copies.
func (s *clusterSubject) copyOwner() secretOwner {
	return secretOwner{obj: s.ctr, spec: &s.ctr.Spec.LoginSpec, retainKey: tokensyncv1alpha1.AnnotationClusterOwner}
}

func (s *clusterSubject) writeStatus(ctx context.Context, mutate func(*tokensyncv1alpha1.TokenStatus)) (bool, error) {
	ctr := s.ctr
	return writeStatusOf(ctx, s.r.TokenRequestReconciler, "ClusterTokenRequest", ctr, &ctr.Status, func(ctx context.Context) error {
		fresh := &tokensyncv1alpha1.ClusterTokenRequest{}
		if err := s.r.APIReader.Get(ctx, client.ObjectKeyFromObject(ctr), fresh); err != nil {
			return err
		}
		fresh.DeepCopyInto(ctr)
		return nil
	}, func(st *tokensyncv1alpha1.ClusterTokenRequestStatus) {
		mutate(&st.TokenStatus)
		if s.outputs != nil {
			s.outputs(st)
		}
	})
}

// observeOutputs finds the namespaces selected and the copies in them.
func (s *clusterSubject) observeOutputs(ctx context.Context, o *snapshot) error {
	var err error
	s.selected, s.missing, err = s.r.selectedNamespaces(ctx, s.ctr)
	var invalid *invalidSelectorError
	if errors.As(err, &invalid) {
		s.invalid = invalid
		return nil
	}
	if err != nil {
		return err
	}
	return s.observeCopies(ctx, o)
}

// observeCopies finds its copies (the managed cache's index of them, read
// from the API server when cached without content) and the foreign
// Secrets in their way. The held Secret is none of them.
func (s *clusterSubject) observeCopies(ctx context.Context, o *snapshot) error {
	r, ctr, owner := s.r, s.ctr, s.copyOwner()
	s.copies, s.foreign = map[string]*corev1.Secret{}, map[string]bool{}
	list := &corev1.SecretList{}
	if err := r.List(ctx, list, client.MatchingFields{indexClusterOwner: ctr.Name}); err != nil {
		return fmt.Errorf("list the Secrets of ClusterTokenRequest %s: %w", ctr.Name, err)
	}
	mine := map[types.NamespacedName]*corev1.Secret{}
	for i := range list.Items {
		c := &list.Items[i]
		if client.ObjectKeyFromObject(c) == o.targetKey || !owner.owns(c) {
			continue
		}
		if !r.wholeInCache(c) {
			// A retained copy, cached without its content.
			fresh := &corev1.Secret{}
			err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(c), fresh)
			if apierrors.IsNotFound(err) {
				continue
			} else if err != nil {
				return fmt.Errorf("get Secret %s/%s: %w", c.Namespace, c.Name, err)
			}
			if !owner.owns(fresh) {
				continue
			}
			c = fresh
		}
		mine[client.ObjectKeyFromObject(c)] = c
	}
	selected := map[string]bool{}
	for _, ns := range s.selected {
		selected[ns] = true
		k := types.NamespacedName{Namespace: ns, Name: ctr.Spec.SecretName}
		if c := mine[k]; c != nil {
			s.copies[ns] = c
			continue
		}
		if k == o.targetKey {
			s.foreign[ns] = true // the held Secret is never a copy
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
		c := &corev1.Secret{}
		err := r.APIReader.Get(ctx, k, c)
		switch {
		case apierrors.IsNotFound(err):
		case err != nil:
			return fmt.Errorf("get Secret %s: %w", k, err)
		case owner.owns(c):
			s.copies[ns] = c
		default:
			s.foreign[ns] = true
		}
	}
	for k, c := range mine {
		if k.Name != ctr.Spec.SecretName || !selected[k.Namespace] {
			s.others = append(s.others, c)
		}
	}
	slices.SortFunc(s.others, func(a, b *corev1.Secret) int {
		return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})
	return nil
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

func (r *ClusterTokenRequestReconciler) watched(ns string) bool {
	return len(r.WatchedNamespaces) == 0 || slices.Contains(r.WatchedNamespaces, ns)
}

// reasonNoNamespaces: a ClusterTokenRequest selects no namespace.
const reasonNoNamespaces = "NoNamespacesSelected"

// hold keeps the token from being used while there is nowhere to put it: a
// selector that cannot be evaluated (Stalled; every copy stays), or no
// namespace selected (the copies of namespaces that no longer match go).
func (s *clusterSubject) hold(ctx context.Context, o *snapshot) (*outputHold, error) {
	if s.invalid != nil {
		logf.FromContext(ctx).Info("Namespace selector cannot be evaluated; no Secret written or deleted", "error", s.invalid.Error())
		return &outputHold{reason: tokensyncv1alpha1.ReasonInvalidNamespaceSelector, stalls: true,
			message: s.invalid.Error() + "; fix the selector: until then no Secret is written or deleted in any namespace"}, nil
	}
	if len(s.selected) > 0 {
		return nil, nil
	}
	if err := s.deleteOthers(ctx); err != nil {
		return nil, err
	}
	message := "no namespace is selected (spec.namespaceSelector, spec.namespaces): no login until one is"
	if len(s.missing) > 0 {
		message += fmt.Sprintf("; spec.namespaces names namespaces that do not exist: %s", strings.Join(s.missing, ", "))
	}
	s.outputs = func(st *tokensyncv1alpha1.ClusterTokenRequestStatus) {
		st.Namespaces = tokensyncv1alpha1.NamespaceCounts{}
		st.FailedNamespaces = nil
	}
	return &outputHold{reason: reasonNoNamespaces, message: message}, nil
}

// publish puts the held token in every selected namespace: each copy that
// differs from it (its data, tokensync's annotations, the template, the
// ownership) is written from the held Secret, with no login; a namespace
// that cannot be written is reported and holds up no other. Then the
// copies of namespaces no longer selected (and of an earlier secretName)
// are deleted, or left with deletionPolicy Retain.
func (s *clusterSubject) publish(ctx context.Context, o *snapshot, held *corev1.Secret, _ bool) (published, error) {
	failed, err := s.writeCopies(ctx, held)
	if err != nil {
		return published{}, err
	}
	if err := s.deleteOthers(ctx); err != nil {
		return published{}, err
	}
	ctr, now := s.ctr, s.r.now()
	for _, ns := range s.missing {
		failed = append(failed, tokensyncv1alpha1.NamespaceFailure{Name: ns, Reason: reasonNamespaceNotFound,
			Message: fmt.Sprintf("namespace %q is named in spec.namespaces and does not exist", ns)})
	}
	slices.SortFunc(failed, func(a, b tokensyncv1alpha1.NamespaceFailure) int { return strings.Compare(a.Name, b.Name) })
	counts := tokensyncv1alpha1.NamespaceCounts{Selected: int32(len(s.selected)), Failed: int32(len(failed))}
	counts.Written = counts.Selected - int32(len(failed)-len(s.missing))
	pub := published{where: fmt.Sprintf("Secret %s in %d namespaces", ctr.Spec.SecretName, counts.Written)}
	stalls := slices.ContainsFunc(failed, func(f tokensyncv1alpha1.NamespaceFailure) bool { return policy.RuleOf(f.Reason).Stalls })
	s.outputs = func(st *tokensyncv1alpha1.ClusterTokenRequestStatus) {
		st.Namespaces = counts
		st.FailedNamespaces = nil
		if len(failed) == 0 {
			return
		}
		st.FailedNamespaces = failed[:min(len(failed), tokensyncv1alpha1.MaxFailedNamespaces)]
		first, until := failed[0], "its expiry"
		if st.ExpiresAt != nil {
			until = policy.FormatTime(st.ExpiresAt.Time)
		}
		message := fmt.Sprintf("the token is valid until %s in %d of %d namespaces; not in %d: %s (%s: %s)",
			until, counts.Written, counts.Selected, len(failed), namespaceNames(failed), first.Reason, first.Message)
		policy.SetCondition(&st.TokenStatus, o.Generation, now, tokensyncv1alpha1.ConditionReady, metav1.ConditionFalse, first.Reason, message)
		if stalls {
			policy.SetCondition(&st.TokenStatus, o.Generation, now, tokensyncv1alpha1.ConditionStalled, metav1.ConditionTrue, first.Reason, message)
		} else {
			policy.SetCondition(&st.TokenStatus, o.Generation, now, tokensyncv1alpha1.ConditionReconciling, metav1.ConditionTrue, tokensyncv1alpha1.ReasonRetrying, message)
		}
	}
	if len(failed) > 0 {
		s.r.Recorder.Eventf(ctr, nil, corev1.EventTypeWarning, failed[0].Reason, "Write",
			"Secret %s not written in %d of %d namespaces: %s", ctr.Spec.SecretName, len(failed), counts.Selected, namespaceNames(failed))
		if !stalls {
			every := s.r.clusterSecretRetry
			if every <= 0 {
				every = clusterWriteRetry
			}
			pub.wake = now.Add(every)
		}
	}
	return pub, nil
}

// copyOf puts the held Secret's token on a copy: its data and bookkeeping,
// but not the fingerprint of the credentials, which is no tenant's.
func copyOf(s, held *corev1.Secret) {
	copyToken(s, held)
	delete(s.Annotations, annotationCredentialsFingerprint)
	delete(s.Annotations, annotationCredentialsVersion)
}

// writeCopies writes the held token to every selected namespace; failed
// are the namespaces that refused it. err is a template that does not
// render (nothing is written anywhere) or an API error of the operator's own.
func (s *clusterSubject) writeCopies(ctx context.Context, held *corev1.Secret) (failed []tokensyncv1alpha1.NamespaceFailure, err error) {
	ctr, owner := s.ctr, s.copyOwner()
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
	conflict := func(ns string) tokensyncv1alpha1.NamespaceFailure {
		return tokensyncv1alpha1.NamespaceFailure{Name: ns, Reason: tokensyncv1alpha1.ReasonSecretConflict,
			Message: policy.SecretConflictMessage("ClusterTokenRequest", ctr.Spec.SecretName)}
	}
	for _, ns := range s.selected {
		if s.foreign[ns] {
			fail(conflict(ns))
			continue
		}
		existing := s.copies[ns]
		parallel <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-parallel; wg.Done() }()
			key := types.NamespacedName{Namespace: ns, Name: ctr.Spec.SecretName}
			_, werr := s.r.writeSecretOf(ctx, owner, key, existing, func(c *corev1.Secret) { copyOf(c, held) }, false)
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
				fail(conflict(ns))
			default:
				// The API server refused this namespace's write (a quota, a
				// policy, the namespace going away): reported there.
				f := writeFailure(ctr.Spec.SecretName, werr)
				fail(tokensyncv1alpha1.NamespaceFailure{Name: ns, Reason: f.Reason, Message: f.Message})
			}
		}()
	}
	wg.Wait()
	if fatal != nil {
		return nil, fatal
	}
	return failed, nil
}

// fanOutWorkers bounds the Secret writes of one ClusterTokenRequest in
// flight at once, as many as the TokenRequest controller's default workers.
const fanOutWorkers = 16

// deleteOthers deletes its copies of namespaces evaluated and no longer
// selected and of an earlier secretName; with deletionPolicy Retain they stay.
func (s *clusterSubject) deleteOthers(ctx context.Context) error {
	if s.ctr.Spec.DeletionPolicy == tokensyncv1alpha1.DeletionPolicyRetain {
		return nil
	}
	for _, c := range s.others {
		if err := s.r.Delete(ctx, c, client.Preconditions{UID: &c.UID}); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("delete Secret %s/%s: %w", c.Namespace, c.Name, err)
		}
		logf.FromContext(ctx).Info("Deleted a Secret of a namespace no longer selected (or of an earlier secretName)", "secret", c.Namespace+"/"+c.Name)
	}
	return nil
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
		// Any change to a copy or the held Secret: a copy is put back from
		// the held Secret (its own writes come back as a reconcile that
		// finds every copy as it should be, and writes nothing).
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(requestForClusterSecret),
			builder.WithPredicates(secretContentChanged())).
		WatchesRawSource(source.Kind(credentials, secretMeta, r.clusterSecretEvents())).
		WatchesRawSource(source.Func(func(ctx context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
			r.gate.start(ctx, clusterKind, func(who types.NamespacedName) { q.Add(reconcile.Request{NamespacedName: who}) })
			return nil
		})).
		WithOptions(opts).
		Complete(r)
}

// secretContentChanged passes creations, deletions and updates that
// changed a Secret's data, type, labels or annotations.
func secretContentChanged() predicate.Predicate {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			oldS, okOld := e.ObjectOld.(*corev1.Secret)
			newS, okNew := e.ObjectNew.(*corev1.Secret)
			if !okOld || !okNew {
				return true
			}
			return oldS.Type != newS.Type || !maps.EqualFunc(oldS.Data, newS.Data, func(a, b []byte) bool { return string(a) == string(b) }) ||
				!maps.Equal(oldS.Labels, newS.Labels) || !maps.Equal(oldS.Annotations, newS.Annotations) ||
				!slices.Equal(oldS.OwnerReferences, newS.OwnerReferences)
		},
	}
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
// copies have its name (a foreign Secret gone lets that namespace be
// written at once).
func (r *ClusterTokenRequestReconciler) clusterSecretEvents() handler.TypedEventHandler[*metav1.PartialObjectMetadata, reconcile.Request] {
	return secretMetadataEvents(func(ctx context.Context, s *metav1.PartialObjectMetadata, deleted bool) []reconcile.Request {
		return r.clusterTokenRequests(ctx, func(ctr *tokensyncv1alpha1.ClusterTokenRequest) bool {
			ref := ctr.Spec.CredentialsSecretRef
			return ref.Namespace == s.Namespace && ref.Name == s.Name || deleted && ctr.Spec.SecretName == s.Name
		})
	})
}
