package controllers

import (
	"context"
	"fmt"
	"maps"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
)

// credentialsIndex indexes TokenRequests by the name of their credentials Secret.
const credentialsIndex = "spec.credentialsSecretRef.name"

// ManagedSecretsSelector selects the Secrets tokensync writes. The manager's
// cache holds only these, so memory does not grow with the cluster's Secrets.
func ManagedSecretsSelector() labels.Selector {
	req, err := labels.NewRequirement(tokensyncv1alpha1.LabelManagedBy, selection.Equals, []string{tokensyncv1alpha1.ManagedByValue})
	if err != nil {
		panic(err) // constant input
	}
	return labels.NewSelector().Add(*req)
}

// CacheOptions restricts the manager's cache of Secrets to the ones tokensync
// manages, and to namespaces when given.
func CacheOptions(namespaces []string) cache.Options {
	opts := cache.Options{
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Secret{}: {Label: ManagedSecretsSelector()},
		},
		DefaultTransform: cache.TransformStripManagedFields(),
	}
	if len(namespaces) > 0 {
		opts.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range namespaces {
			opts.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	return opts
}

// NewCredentialsCache returns a cache of Secret metadata only, stripped down
// to names and resourceVersions. The manager's own cache cannot serve this:
// it keys its label selector by kind, so it would hide the unlabelled
// credentials Secrets. Stripping annotations matters: kubectl's
// last-applied-configuration annotation would otherwise copy a Secret's data
// into memory.
func NewCredentialsCache(cfg *rest.Config, base cache.Options) (cache.Cache, error) {
	opts := cache.Options{
		Scheme:            base.Scheme,
		Mapper:            base.Mapper,
		DefaultNamespaces: base.DefaultNamespaces,
		DefaultTransform: func(in any) (any, error) {
			if m, ok := in.(*metav1.PartialObjectMetadata); ok {
				return &metav1.PartialObjectMetadata{
					TypeMeta: m.TypeMeta,
					ObjectMeta: metav1.ObjectMeta{
						Name: m.Name, Namespace: m.Namespace, UID: m.UID, ResourceVersion: m.ResourceVersion,
					},
				}, nil
			}
			return in, nil
		},
	}
	return cache.New(cfg, opts)
}

// SetupWithManager registers the reconciler. credentials is the cache made
// by NewCredentialsCache; the caller adds it to the manager.
func (r *TokenRequestReconciler) SetupWithManager(mgr ctrl.Manager, credentials cache.Cache, opts controller.Options) error {
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &tokensyncv1alpha1.TokenRequest{}, credentialsIndex,
		func(o client.Object) []string {
			return []string{o.(*tokensyncv1alpha1.TokenRequest).Spec.CredentialsSecretRef.Name}
		}); err != nil {
		return fmt.Errorf("index TokenRequests by credentials Secret: %w", err)
	}
	r.Credentials = credentials

	credentialsMeta := &metav1.PartialObjectMetadata{}
	credentialsMeta.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))

	return ctrl.NewControllerManagedBy(mgr).
		// Status writes are ours and need no reconcile; spec edits and
		// annotations (force-refresh) do.
		For(&tokensyncv1alpha1.TokenRequest{}, builder.WithPredicates(
			predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Owns(&corev1.Secret{}, builder.WithPredicates(targetSecretTampered())).
		WatchesRawSource(source.Kind(credentials, credentialsMeta,
			handler.TypedEnqueueRequestsFromMapFunc(r.requestsForCredentials),
			credentialsChanged())).
		WithOptions(opts).
		Complete(r)
}

// targetSecretTampered passes the target Secret events that need a
// reconcile: deletions, and writes that left no intact token or changed its
// labels or non-tokensync annotations. The operator's own writes leave an
// intact token and change only tokensync.io/ annotations; without this
// filter each of them came back as a second reconcile of the TokenRequest,
// which, its status not yet in the cache, wrote it again into a conflict.
func targetSecretTampered() predicate.Predicate {
	return predicate.Funcs{
		CreateFunc: func(e event.CreateEvent) bool { return !holdsIntactToken(e.Object) },
		UpdateFunc: func(e event.UpdateEvent) bool {
			return !holdsIntactToken(e.ObjectNew) ||
				!maps.Equal(e.ObjectOld.GetLabels(), e.ObjectNew.GetLabels()) ||
				!maps.Equal(foreignAnnotations(e.ObjectOld), foreignAnnotations(e.ObjectNew))
		},
	}
}

func holdsIntactToken(o client.Object) bool {
	s, ok := o.(*corev1.Secret)
	if !ok {
		return false
	}
	held, holds := heldTokenIn(s)
	return holds && held.Intact
}

// foreignAnnotations are the annotations outside tokensync.io/.
func foreignAnnotations(o client.Object) map[string]string {
	out := map[string]string{}
	for k, v := range o.GetAnnotations() {
		if !strings.HasPrefix(k, "tokensync.io/") {
			out[k] = v
		}
	}
	return out
}

// credentialsChanged passes creates, deletes and updates that changed the
// resourceVersion, which the stripped-down metadata always does on a write.
func credentialsChanged() predicate.TypedPredicate[*metav1.PartialObjectMetadata] {
	return predicate.TypedFuncs[*metav1.PartialObjectMetadata]{
		UpdateFunc: func(e event.TypedUpdateEvent[*metav1.PartialObjectMetadata]) bool {
			return e.ObjectOld.ResourceVersion != e.ObjectNew.ResourceVersion
		},
	}
}

// requestsForCredentials maps a credentials Secret to the TokenRequests using it.
func (r *TokenRequestReconciler) requestsForCredentials(ctx context.Context, s *metav1.PartialObjectMetadata) []reconcile.Request {
	list := &tokensyncv1alpha1.TokenRequestList{}
	if err := r.List(ctx, list, client.InNamespace(s.Namespace), client.MatchingFields{credentialsIndex: s.Name}); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "List TokenRequests for a credentials Secret", "secret", s.Name)
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for _, tr := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&tr)})
	}
	return reqs
}
