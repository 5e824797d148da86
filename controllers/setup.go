package controllers

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
	"github.com/tokensync/tokensync/providers"
)

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
// manages, and to namespaces when given. Of those, it keeps the data only of
// the Secrets the operator can show it wrote (wholeInCache): a label any
// tenant can set must not make the operator hold a Secret's megabyte.
func CacheOptions(namespaces []string, operatorNamespace string) cache.Options {
	opts := cache.Options{
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Secret{}: {Label: ManagedSecretsSelector()},
		},
		DefaultTransform: secretCache{operatorNamespace: operatorNamespace, interned: newInterner()}.transform,
	}
	if len(namespaces) > 0 {
		opts.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range namespaces {
			opts.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	return opts
}

// CacheNamespaces are the namespaces the manager's cache watches: those it
// serves (--namespaces, none for all), and, when it serves
// ClusterTokenRequests in some only, the operator's, where their tokens are
// held.
func CacheNamespaces(namespaces []string, operatorNamespace string, servesClusterTokenRequests bool) []string {
	if len(namespaces) == 0 || !servesClusterTokenRequests || slices.Contains(namespaces, operatorNamespace) {
		return namespaces
	}
	return append(slices.Clone(namespaces), operatorNamespace)
}

// secretCache is what the manager's cache keeps of the Secrets it watches.
type secretCache struct {
	// operatorNamespace holds the operator's own Secrets, which no tenant writes.
	operatorNamespace string
	interned          *interner
}

// wholeInCache reports whether the cache keeps s whole: only a Secret the
// operator can show it wrote, controlled by a TokenRequest or a
// ClusterTokenRequest (an owner reference the API server lets only the
// owner's writers set, and blockOwnerDeletion only those who may update its
// finalizers), or one of the operator's own namespace. Any other Secret
// labelled as tokensync's (a retained Secret, or a tenant's with the label
// set by hand) is cached as a few names only (stripSecret), and read from
// the API server when its content matters. Readers of the cache ask this
// again to know whether what they read is whole.
func (c secretCache) wholeInCache(s *corev1.Secret) bool {
	if c.operatorNamespace != "" && s.Namespace == c.operatorNamespace {
		return true
	}
	ref := metav1.GetControllerOf(s)
	return ref != nil && (ref.Kind == "TokenRequest" || ref.Kind == "ClusterTokenRequest") &&
		strings.HasPrefix(ref.APIVersion, tokensyncv1alpha1.GroupVersion.Group+"/")
}

// maxCachedOwnerName bounds an owner annotation kept on a stripped Secret:
// an object name is at most 253 characters.
const maxCachedOwnerName = 253

// stripSecret keeps of s what the watches and indexes read (names, the
// controller reference, tokensync's label and owner annotations) and drops
// its data and every other label and annotation, whose size its writer chose.
func stripSecret(s *corev1.Secret) {
	s.Data, s.StringData = nil, nil
	if ref := metav1.GetControllerOf(s); ref != nil {
		s.OwnerReferences = []metav1.OwnerReference{*ref}
	} else {
		s.OwnerReferences = nil
	}
	labels := map[string]string{}
	if v, ok := s.Labels[tokensyncv1alpha1.LabelManagedBy]; ok {
		labels[tokensyncv1alpha1.LabelManagedBy] = v
	}
	s.Labels = labels
	annotations := map[string]string{}
	for _, k := range []string{tokensyncv1alpha1.AnnotationOwner, tokensyncv1alpha1.AnnotationClusterOwner} {
		if v, ok := s.Annotations[k]; ok && len(v) <= maxCachedOwnerName {
			annotations[k] = v
		}
	}
	s.Annotations = annotations
}

// transform drops from cached objects what the operator never reads:
// managedFields, and on TokenRequests kubectl's last-applied-configuration
// annotation, a second copy of the whole object on everything applied with
// kubectl; of a Secret not shown to be the operator's, all but a few names
// (stripSecret); and it shares the strings objects repeat (interner).
// TokenRequests are written back only through the status subresource, which
// ignores metadata, so nothing stripped here is written back; the Secrets
// kept whole keep their annotations, since the operator updates them, and
// a stripped Secret is read from the API server before it is written.
func (c secretCache) transform(in any) (any, error) {
	if o, ok := in.(client.Object); ok {
		o.SetManagedFields(nil)
	}
	switch o := in.(type) {
	case *tokensyncv1alpha1.TokenRequest:
		delete(o.Annotations, corev1.LastAppliedConfigAnnotation)
		c.interned.tokenRequest(o)
	case *corev1.Secret:
		if !c.wholeInCache(o) {
			stripSecret(o)
		}
		c.interned.secret(o)
	}
	return in, nil
}

// NewCredentialsCache returns a cache of Secret metadata only, stripped down
// to names, resourceVersions and the label tokensync.io/credentials. The manager's own cache cannot serve this:
// it keys its label selector by kind, so it would hide the unlabelled
// credentials Secrets. Stripping annotations matters: kubectl's
// last-applied-configuration annotation would otherwise copy a Secret's data
// into memory.
func NewCredentialsCache(cfg *rest.Config, base cache.Options) (cache.Cache, error) {
	interned := newInterner()
	opts := cache.Options{
		Scheme:            base.Scheme,
		Mapper:            base.Mapper,
		DefaultNamespaces: base.DefaultNamespaces,
		DefaultTransform: func(in any) (any, error) {
			if m, ok := in.(*metav1.PartialObjectMetadata); ok {
				out := &metav1.PartialObjectMetadata{
					TypeMeta:   metav1.TypeMeta{APIVersion: interned.s(m.APIVersion), Kind: interned.s(m.Kind)},
					ObjectMeta: metav1.ObjectMeta{Name: m.Name, Namespace: interned.s(m.Namespace), ResourceVersion: m.ResourceVersion},
				}
				if v, ok := m.Labels[tokensyncv1alpha1.LabelCredentials]; ok {
					out.Labels = map[string]string{tokensyncv1alpha1.LabelCredentials: interned.s(v)}
				}
				return out, nil
			}
			return in, nil
		},
	}
	return cache.New(cfg, opts)
}

// Options configure the TokenRequest controller.
type Options struct {
	// Providers are the providers TokenRequests may name.
	Providers providers.Registry
	// EndpointPolicy may be nil: any endpoint the provider accepts.
	EndpointPolicy EndpointChecker
	// FingerprintKey is the Secret holding the credentials fingerprint key.
	FingerprintKey types.NamespacedName
	// Limits bound logins per endpoint host and namespace.
	Limits LoginLimits
	// Namespaces restricts the watches (the manager's cache must be made
	// with CacheOptions of the same namespaces); empty watches all.
	Namespaces []string
	// MaxConcurrentReconciles is the number of workers; 0 means 1.
	MaxConcurrentReconciles int
	// RolloutRestartMinInterval is the least time between two restarts of
	// one rollout restart target; 0 means DefaultRolloutRestartMinInterval.
	RolloutRestartMinInterval time.Duration
	// MinLoginInterval is the least time between two logins of one
	// TokenRequest or ClusterTokenRequest; 0 means DefaultMinLoginInterval,
	// a negative value none.
	MinLoginInterval time.Duration
	// AllowUnlabelledCredentials lets any Secret be used as credentials,
	// not only those labelled tokensync.io/credentials: "true".
	AllowUnlabelledCredentials bool
	// HeldTokenLimits bound the tokens kept in memory for refused writes;
	// zero values mean DefaultHeldTokenLimits.
	HeldTokenLimits HeldTokenLimits
	// HostHealth tunes how a provider host is found down and probed
	// (shorter in tests); zero values mean DefaultHostHealth.
	HostHealth HostHealth
	// ClusterTokenRequestsOnly runs the ClusterTokenRequest controller
	// alone (beside managers sharded with Namespaces, which do not serve
	// ClusterTokenRequests; and in tests, whose other managers watch
	// namespaces of their own).
	ClusterTokenRequestsOnly bool
	// SkipNameValidation lets several managers in one process (tests) run
	// the controller.
	SkipNameValidation bool
}

// Setup wires the TokenRequest controller into mgr, whose cache must have
// been made with CacheOptions(o.Namespaces): the metadata-only cache of
// Secrets, the indexes and watches, and the fingerprint key, read (or
// created) now so that a missing namespace or RBAC rule shows at start.
// main.go and the tests call it alike; the reconciler it returns may be
// tuned (a tests' clock, a wrapped client) before mgr starts.
func Setup(mgr ctrl.Manager, o Options) (*TokenRequestReconciler, error) {
	base := CacheOptions(o.Namespaces, o.FingerprintKey.Namespace)
	base.Scheme, base.Mapper = mgr.GetScheme(), mgr.GetRESTMapper()
	credentials, err := NewCredentialsCache(mgr.GetConfig(), base)
	if err != nil {
		return nil, fmt.Errorf("create the Secrets metadata cache: %w", err)
	}
	if err := mgr.Add(credentials); err != nil {
		return nil, err
	}
	r := &TokenRequestReconciler{
		Client:         mgr.GetClient(),
		APIReader:      mgr.GetAPIReader(),
		Scheme:         mgr.GetScheme(),
		Recorder:       mgr.GetEventRecorder("tokensync"),
		Providers:      o.Providers,
		EndpointPolicy: o.EndpointPolicy,
		FingerprintKey: o.FingerprintKey,
		Limits:         o.Limits,

		RolloutRestartMinInterval:  o.RolloutRestartMinInterval,
		MinLoginInterval:           o.MinLoginInterval,
		AllowUnlabelledCredentials: o.AllowUnlabelledCredentials,
		HeldTokenLimits:            o.HeldTokenLimits,
		HostHealth:                 o.HostHealth,
	}
	if err := r.LoadFingerprintKey(context.Background()); err != nil {
		return nil, fmt.Errorf("%w (does namespace %q exist? set --operator-namespace)", err, o.FingerprintKey.Namespace)
	}
	opts := controller.Options{MaxConcurrentReconciles: o.MaxConcurrentReconciles}
	if o.SkipNameValidation {
		opts.SkipNameValidation = ptrTo(true)
	}
	r.Credentials = credentials
	r.init()
	if !o.ClusterTokenRequestsOnly {
		if err := r.SetupWithManager(mgr, credentials, opts); err != nil {
			return nil, fmt.Errorf("set up the TokenRequest controller: %w", err)
		}
	}
	// A ClusterTokenRequest writes into namespaces of every shard: only a
	// manager that watches them all serves it, else several would log in
	// for it and fight over its status.
	servesCluster := len(o.Namespaces) == 0 || o.ClusterTokenRequestsOnly
	if servesCluster {
		cr := &ClusterTokenRequestReconciler{TokenRequestReconciler: r, WatchedNamespaces: o.Namespaces}
		if err := cr.SetupWithManager(mgr, opts); err != nil {
			return nil, fmt.Errorf("set up the ClusterTokenRequest controller: %w", err)
		}
	}
	// The per-TokenRequest gauges come from this manager's cache while it runs.
	tokenRequestMetrics.add(r, mgr.GetCache(), servesCluster)
	if err := mgr.Add(untilStopped(func() { tokenRequestMetrics.remove(r) })); err != nil {
		return nil, err
	}
	if err := mgr.Add(sweeper{m: r.memory, g: r.gate}); err != nil {
		return nil, err
	}
	return r, nil
}

// untilStopped is a runnable, on every replica, that calls stopped when the
// manager stops.
type untilStopped func()

func (f untilStopped) Start(ctx context.Context) error {
	<-ctx.Done()
	f()
	return nil
}

// NeedLeaderElection: the metrics of a replica that does not lead are read
// from its cache too.
func (untilStopped) NeedLeaderElection() bool { return false }

var _ manager.LeaderElectionRunnable = untilStopped(nil)

// SetupWithManager registers the reconciler. credentials is the cache made
// by NewCredentialsCache, added to the manager by the caller; Setup does both.
func (r *TokenRequestReconciler) SetupWithManager(mgr ctrl.Manager, credentials cache.Cache, opts controller.Options) error {
	if err := r.indexTokenRequests(context.Background(), mgr.GetCache()); err != nil {
		return err
	}
	r.Credentials = credentials
	r.init()

	secretMeta := &metav1.PartialObjectMetadata{}
	secretMeta.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))

	return ctrl.NewControllerManagedBy(mgr).
		// Status writes are ours and need no reconcile; spec edits and
		// annotations (force-refresh) do.
		For(&tokensyncv1alpha1.TokenRequest{}, builder.WithPredicates(
			predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		// Target Secrets are mapped by name, not by owner reference: with
		// deletionPolicy Retain they carry none.
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.requestsForTarget),
			builder.WithPredicates(targetSecretTampered())).
		WatchesRawSource(source.Kind(credentials, secretMeta, r.secretEvents())).
		// A login's end reconciles its TokenRequest (loginGate); the gate's
		// logins run in the controller's context.
		WatchesRawSource(source.Func(func(ctx context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
			r.gate.start(ctx, "", func(who types.NamespacedName) { q.Add(reconcile.Request{NamespacedName: who}) })
			return nil
		})).
		WithOptions(opts).
		Complete(r)
}

// targetSecretTampered passes the target Secret events that need a
// reconcile: deletions, and writes that left no token, changed the token
// without its recorded fingerprint (an edit by hand), or changed its labels
// or non-tokensync annotations. The operator's own writes change the token
// together with its fingerprint, or only tokensync.io/ annotations; without
// this filter each of them came back as a second reconcile.
func targetSecretTampered() predicate.Predicate {
	return predicate.Funcs{
		CreateFunc: func(e event.CreateEvent) bool { return !recordsToken(e.Object) },
		UpdateFunc: func(e event.UpdateEvent) bool {
			oldS, okOld := e.ObjectOld.(*corev1.Secret)
			newS, okNew := e.ObjectNew.(*corev1.Secret)
			if !okOld || !okNew || !recordsToken(newS) {
				return true
			}
			tokenChanged := !bytes.Equal(oldS.Data[tokensyncv1alpha1.SecretKeyToken], newS.Data[tokensyncv1alpha1.SecretKeyToken])
			fingerprintChanged := oldS.Annotations[annotationTokenFingerprint] != newS.Annotations[annotationTokenFingerprint]
			return tokenChanged && !fingerprintChanged ||
				!maps.Equal(oldS.Labels, newS.Labels) ||
				!maps.Equal(foreignAnnotations(oldS), foreignAnnotations(newS))
		},
	}
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

// ownWrites remembers the resourceVersion of each Secret the operator
// last wrote, so that a watch passes every change to it but the operator's
// own: a copy's write reconciles nothing, a tenant's edit of it does.
type ownWrites struct{ rv sync.Map }

func (w *ownWrites) wrote(s *corev1.Secret) {
	w.rv.Store(client.ObjectKeyFromObject(s), s.ResourceVersion)
}

// notOwn passes the events that are not the operator's last write; a
// deletion passes, and forgets the Secret.
func (w *ownWrites) notOwn() predicate.Predicate {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			rv, ok := w.rv.Load(client.ObjectKeyFromObject(e.ObjectNew))
			return !ok || rv != e.ObjectNew.GetResourceVersion()
		},
		DeleteFunc: func(e event.DeleteEvent) bool {
			w.rv.Delete(client.ObjectKeyFromObject(e.Object))
			return true
		},
	}
}

// recordsToken reports whether a Secret carries a token and its bookkeeping.
func recordsToken(o client.Object) bool {
	s, ok := o.(*corev1.Secret)
	if !ok {
		return false
	}
	_, holds := heldTokenIn(s, "")
	return holds && len(s.Data[tokensyncv1alpha1.SecretKeyToken]) > 0
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

// indexTokenRequests keeps r.secrets from the TokenRequest informer of c.
func (r *TokenRequestReconciler) indexTokenRequests(ctx context.Context, c cache.Cache) error {
	inf, err := c.GetInformer(ctx, &tokensyncv1alpha1.TokenRequest{})
	if err != nil {
		return fmt.Errorf("get the TokenRequest informer: %w", err)
	}
	r.secrets = newSecretIndex()
	if _, err := inf.AddEventHandler(r.secrets.handler()); err != nil {
		return fmt.Errorf("index TokenRequests by Secret: %w", err)
	}
	return nil
}

// requestsForTarget maps a managed Secret to the TokenRequests naming it as target.
func (r *TokenRequestReconciler) requestsForTarget(ctx context.Context, s client.Object) []reconcile.Request {
	return r.secrets.requests(targetRole, client.ObjectKeyFromObject(s))
}

// secretEvents maps events of the metadata cache of every Secret: a
// credentials Secret's create, update (any new resourceVersion: whether its
// content changed is for the decision to find out) or delete reconciles the
// TokenRequests using it; a Secret's deletion also reconciles the
// TokenRequests naming it as target, so that one blocked by a foreign Secret
// recovers at once. Other writes to target Secrets are not mapped: the
// operator's own writes would come back as reconciles.
func (r *TokenRequestReconciler) secretEvents() handler.TypedEventHandler[*metav1.PartialObjectMetadata, reconcile.Request] {
	return secretMetadataEvents(func(_ context.Context, s *metav1.PartialObjectMetadata, deleted bool) []reconcile.Request {
		reqs := r.secrets.requests(credentialsRole, client.ObjectKeyFromObject(s))
		if deleted {
			reqs = append(reqs, r.secrets.requests(targetRole, client.ObjectKeyFromObject(s))...)
		}
		return reqs
	})
}

// secretMetadataEvents turns the metadata cache's Secret events into the
// requests affected returns: on a create, on an update that wrote a new
// resourceVersion, and on a deletion (deleted true).
func secretMetadataEvents(affected func(ctx context.Context, s *metav1.PartialObjectMetadata, deleted bool) []reconcile.Request) handler.TypedEventHandler[*metav1.PartialObjectMetadata, reconcile.Request] {
	enqueue := func(ctx context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request], s *metav1.PartialObjectMetadata, deleted bool) {
		for _, req := range affected(ctx, s, deleted) {
			q.Add(req)
		}
	}
	return handler.TypedFuncs[*metav1.PartialObjectMetadata, reconcile.Request]{
		CreateFunc: func(ctx context.Context, e event.TypedCreateEvent[*metav1.PartialObjectMetadata], q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			enqueue(ctx, q, e.Object, false)
		},
		UpdateFunc: func(ctx context.Context, e event.TypedUpdateEvent[*metav1.PartialObjectMetadata], q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			if e.ObjectOld.ResourceVersion != e.ObjectNew.ResourceVersion {
				enqueue(ctx, q, e.ObjectNew, false)
			}
		},
		DeleteFunc: func(ctx context.Context, e event.TypedDeleteEvent[*metav1.PartialObjectMetadata], q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			enqueue(ctx, q, e.Object, true)
		},
	}
}
