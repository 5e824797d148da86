package controllers

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
)

// A ClusterTokenRequest is one login's token with a copy in every namespace
// it selects. The engine keeps its token, held in a Secret of the operator's
// namespace that no tenant writes; here is what is its own: which namespaces
// it selects, its copies (outputs, made from the held Secret only), removing
// the copies of namespaces evaluated and no longer matching (an error never
// deletes), and its watches.

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
	// copyWrites are its own writes of copies and held Secrets, which its
	// watch skips.
	copyWrites ownWrites
}

// clusterWriteRetry: a namespace whose write was refused is tried again this soon.
const clusterWriteRetry = 30 * time.Second

// Reconcile observes one ClusterTokenRequest, its held Secret and its
// copies, decides as for a TokenRequest, and acts (the engine).
func (r *ClusterTokenRequestReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	return r.reconcile(ctx, r, types.NamespacedName{Name: req.Name})
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

// The ClusterTokenRequest controller is the engine's kind for them.
func (*ClusterTokenRequestReconciler) name() string     { return "ClusterTokenRequest" }
func (*ClusterTokenRequestReconciler) gateName() string { return clusterKind }

func (r *ClusterTokenRequestReconciler) load(ctx context.Context, reader client.Reader, key types.NamespacedName) (subject, error) {
	ctr := &tokensyncv1alpha1.ClusterTokenRequest{}
	if err := getObject(ctx, reader, key, ctr, r.name()); err != nil {
		return nil, err
	}
	return &clusterSubject{r: r, ctr: ctr}, nil
}

// clusterSubject is a ClusterTokenRequest and what its namespaces hold.
type clusterSubject struct {
	r   *ClusterTokenRequestReconciler
	ctr *tokensyncv1alpha1.ClusterTokenRequest
	// invalid: spec.namespaceSelector cannot be evaluated (nothing is
	// written or deleted); selected namespaces, sorted; missing, those
	// spec.namespaces names that do not exist.
	invalid           error
	selected, missing []string
	// copies plans its copies (outputs.go).
	copies copyPlan
	// outputs are its namespaces' status fields, for the next status write.
	outputs func(*tokensyncv1alpha1.ClusterTokenRequestStatus)
}

func (s *clusterSubject) object() client.Object                      { return s.ctr }
func (s *clusterSubject) loginSpec() *tokensyncv1alpha1.LoginSpec    { return &s.ctr.Spec.LoginSpec }
func (s *clusterSubject) tokenStatus() tokensyncv1alpha1.TokenStatus { return s.ctr.Status.TokenStatus }
func (s *clusterSubject) secretName() string                         { return s.ctr.Spec.SecretName }

// previousSecretName: the held Secret's name never changes.
func (s *clusterSubject) previousSecretName() string { return "" }

func (s *clusterSubject) restoreStatus(unwritten any) { restoreStatus(&s.ctr.Status, unwritten) }

func (s *clusterSubject) credentialsRef() types.NamespacedName {
	return types.NamespacedName{Namespace: s.ctr.Spec.CredentialsSecretRef.Namespace, Name: s.ctr.Spec.CredentialsSecretRef.Name}
}

// heldSpec is the held Secret's own spec: no template (that is for the
// copies), owned by the ClusterTokenRequest and deleted with it.
var heldSpec = &tokensyncv1alpha1.LoginSpec{}

func (s *clusterSubject) held() (types.NamespacedName, secretOwner) {
	key := types.NamespacedName{Namespace: s.r.FingerprintKey.Namespace, Name: HeldSecretName(s.ctr.Name)}
	return key, secretOwner{obj: s.ctr, spec: heldSpec, retainKey: tokensyncv1alpha1.AnnotationClusterOwner, remember: s.r.copyWrites.wrote}
}

func (s *clusterSubject) writeStatus(ctx context.Context, mutate func(*tokensyncv1alpha1.TokenStatus)) (bool, error) {
	return writeStatusOf(ctx, s.r.TokenRequestReconciler, "ClusterTokenRequest", s.ctr,
		func(ctr *tokensyncv1alpha1.ClusterTokenRequest) *tokensyncv1alpha1.ClusterTokenRequestStatus {
			return &ctr.Status
		},
		func(st *tokensyncv1alpha1.ClusterTokenRequestStatus) {
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
	if errors.Is(err, errInvalidSelector) {
		s.invalid = err
		return nil
	}
	if err != nil {
		return err
	}
	return s.observeCopies(ctx, o)
}

// observeCopies plans its copies from the managed cache's index of them;
// a Secret cached without its content, or not in the index, is read as the
// engine reads a held Secret. The held Secret is none of them.
func (s *clusterSubject) observeCopies(ctx context.Context, o *snapshot) error {
	r, ctr := s.r, s.ctr
	s.copies = copyPlan{kindName: "ClusterTokenRequest", owner: secretOwner{obj: ctr, spec: &ctr.Spec.LoginSpec, retainKey: tokensyncv1alpha1.AnnotationClusterOwner, remember: r.copyWrites.wrote},
		retain: ctr.Spec.DeletionPolicy == tokensyncv1alpha1.DeletionPolicyRetain}
	list := &corev1.SecretList{}
	if err := r.List(ctx, list, client.MatchingFields{indexClusterOwner: ctr.Name}); err != nil {
		return fmt.Errorf("list the Secrets of ClusterTokenRequest %s: %w", ctr.Name, err)
	}
	mine := map[types.NamespacedName]*corev1.Secret{}
	for i := range list.Items {
		if c := &list.Items[i]; client.ObjectKeyFromObject(c) != o.targetKey && s.copies.owner.owns(c) {
			mine[client.ObjectKeyFromObject(c)] = c
		}
	}
	for _, ns := range s.selected {
		k := types.NamespacedName{Namespace: ns, Name: ctr.Spec.SecretName}
		c := mine[k]
		delete(mine, k)
		if c == nil || !r.wholeInCache(c) {
			var foreign bool
			var err error
			if c, _, foreign, err = r.targetSecret(ctx, s.copies.owner, k, remembered{}); err != nil {
				return err
			}
			if foreign || k == o.targetKey { // the held Secret is never a copy
				s.copies.conflicts = append(s.copies.conflicts, k)
				continue
			}
		}
		s.copies.writes = append(s.copies.writes, secretWrite{key: k, existing: c})
	}
	for _, c := range mine {
		s.copies.stale = append(s.copies.stale, c)
	}
	for _, ns := range s.missing {
		s.copies.unreachable = append(s.copies.unreachable, tokensyncv1alpha1.NamespaceFailure{Name: ns, Reason: reasonNamespaceNotFound,
			Message: fmt.Sprintf("namespace %q is named in spec.namespaces and does not exist", ns)})
	}
	slices.SortFunc(s.copies.stale, func(a, b *corev1.Secret) int {
		return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})
	return nil
}

// selectedNamespaces are the namespaces ctr selects that exist, are not
// being deleted and are watched; missing are those spec.namespaces names
// that do not exist. A selector that cannot be evaluated is an
// errInvalidSelector, and a failed list an error: neither is "none
// selected", so no Secret is deleted for either.
func (r *ClusterTokenRequestReconciler) selectedNamespaces(ctx context.Context, ctr *tokensyncv1alpha1.ClusterTokenRequest) (selected, missing []string, err error) {
	var selector labels.Selector
	if ls := ctr.Spec.NamespaceSelector; ls != nil {
		if selector, err = metav1.LabelSelectorAsSelector(ls); err != nil {
			// Admission refuses what CEL can judge; a label key or value
			// that is not one, or a CRD older than those rules, gets here.
			return nil, nil, fmt.Errorf("%w: %w", errInvalidSelector, err)
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

var errInvalidSelector = errors.New("spec.namespaceSelector cannot be evaluated")

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
	if err := s.r.deleteStale(ctx, s.copies.stale, s.copies.retain); err != nil {
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

// publish puts the held token in every selected namespace, as copies
// (outputs.go): one that differs from it is written from the held Secret,
// with no login; a namespace that cannot be written is reported and holds
// up no other. The copies of namespaces evaluated and no longer selected
// (and of an earlier secretName) go, or stay with deletionPolicy Retain.
func (s *clusterSubject) publish(ctx context.Context, o *snapshot, held *corev1.Secret, _ bool) (published, error) {
	failed, err := s.r.copyHeld(ctx, held, s.copies)
	if err != nil {
		return published{}, err
	}
	counts := tokensyncv1alpha1.NamespaceCounts{Selected: int32(len(s.selected)), Failed: int32(len(failed))}
	counts.Written = counts.Selected - int32(len(failed)-len(s.missing))
	s.outputs = func(st *tokensyncv1alpha1.ClusterTokenRequestStatus) {
		st.Namespaces = counts
		st.FailedNamespaces = failed[:min(len(failed), tokensyncv1alpha1.MaxFailedNamespaces)]
	}
	return published{where: fmt.Sprintf("Secret %s in %d namespaces", s.ctr.Spec.SecretName, counts.Written), failed: failed,
		written: counts.Written, of: counts.Selected, in: "namespaces", retry: cmp.Or(s.r.clusterSecretRetry, clusterWriteRetry)}, nil
}

// reasonNamespaceNotFound: spec.namespaces names a namespace that does not exist.
const reasonNamespaceNotFound = "NamespaceNotFound"

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
			builder.WithPredicates(secretContentChanged(), r.copyWrites.notOwn())).
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
