package controllers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/tokensync/tokensync/controllers/policy"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
)

// The Secret writer: writes (and, for a type change, re-creates) the
// target Secret with its token, template and ownership; adopts a retained
// Secret of the same name; deletes the Secret of an earlier secretName;
// and records a refused write, whose token is kept in memory.

var errSecretConflict = errors.New("secret exists and is not controlled by this TokenRequest")

// secretOwner is what a target Secret belongs to: a TokenRequest, or a
// ClusterTokenRequest (the same Secret in each namespace it selects).
type secretOwner struct {
	obj  client.Object
	spec *tokensyncv1alpha1.LoginSpec
	// retainKey names the annotation that marks a Secret retained by it
	// (deletionPolicy Retain), whose value is its name.
	retainKey string
	// remember records tokensync's own write of a Secret (nil: nothing to record).
	remember func(*corev1.Secret)
}

// ownerOf is a TokenRequest as the owner of its target Secret.
func (r *TokenRequestReconciler) ownerOf(tr *tokensyncv1alpha1.TokenRequest) secretOwner {
	return secretOwner{obj: tr, spec: &tr.Spec.LoginSpec, retainKey: tokensyncv1alpha1.AnnotationOwner,
		remember: func(s *corev1.Secret) {
			r.memory.with(client.ObjectKeyFromObject(tr), tr.UID, func(e *remembered) { e.secretName, e.secretRV = s.Name, s.ResourceVersion })
		}}
}

// writeSecretOf creates or updates the owner's Secret key: mutate puts the
// token on it, then the owner's spec.secretTemplate (data, labels,
// annotations) and the ownership deletionPolicy asks for are applied.
// Nothing is written when nothing changes. A Secret of another type than
// the template asks for is deleted and created again at once with the same
// content: Kubernetes does not let a Secret's type change. dryRun asks the
// API server whether it would accept the write, without storing it. It
// returns the Secret as stored; a template that does not render is a
// *templateError, and nothing is written.
func (r *TokenRequestReconciler) writeSecretOf(ctx context.Context, ow secretOwner, key types.NamespacedName, existing *corev1.Secret, mutate func(*corev1.Secret), dryRun bool) (*corev1.Secret, error) {
	var opts []client.CreateOption
	var uopts []client.UpdateOption
	if dryRun {
		opts, uopts = append(opts, client.DryRunAll), append(uopts, client.DryRunAll)
	}
	build := func(base *corev1.Secret) (*corev1.Secret, error) {
		s := base.DeepCopy()
		mutate(s)
		if err := applyTemplate(s, ow.spec.SecretTemplate); err != nil {
			return nil, err
		}
		return s, ow.own(s, r.Scheme)
	}
	wantType := ow.secretType()
	remember := func(s *corev1.Secret) {
		if !dryRun && ow.remember != nil {
			ow.remember(s)
		}
	}
	if existing == nil {
		s, err := build(&corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: key.Name, Namespace: key.Namespace},
			Type:       wantType,
		})
		if err != nil {
			return nil, err
		}
		err = r.Create(ctx, s, opts...)
		if err == nil {
			remember(s)
			return s, nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return nil, err
		}
		// Created meanwhile: ours if a previous attempt's write landed late.
		existing = &corev1.Secret{}
		if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(s), existing); err != nil {
			return nil, err
		}
		if !ow.owns(existing) {
			return nil, errSecretConflict
		}
	}
	if typeOf(existing) != wantType && !dryRun {
		return r.recreateSecret(ctx, ow, existing, build, wantType)
	}
	s := existing.DeepCopy()
	first := true
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if !first {
			if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(s), s); err != nil {
				return err
			}
			if !ow.owns(s) {
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
		remember(s)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// recreateSecret replaces a Secret whose type must change: delete (only
// the version read) and create at once, with the same token, no login. If
// the create is refused, the old Secret is put back as it was.
func (r *TokenRequestReconciler) recreateSecret(ctx context.Context, ow secretOwner, existing *corev1.Secret, build func(*corev1.Secret) (*corev1.Secret, error), wantType corev1.SecretType) (*corev1.Secret, error) {
	s, err := build(existing)
	if err != nil {
		return nil, err
	}
	s.ObjectMeta = *s.ObjectMeta.DeepCopy()
	s.ResourceVersion, s.UID, s.CreationTimestamp, s.Generation, s.ManagedFields = "", "", metav1.Time{}, 0, nil
	s.Type = wantType
	uid, rv := existing.UID, existing.ResourceVersion
	if err := r.Delete(ctx, existing, client.Preconditions{UID: &uid, ResourceVersion: &rv}); client.IgnoreNotFound(err) != nil {
		return nil, fmt.Errorf("delete Secret %q to change its type: %w", existing.Name, err)
	}
	if err := r.Create(ctx, s); err != nil {
		restore := existing.DeepCopy()
		restore.ResourceVersion, restore.UID, restore.CreationTimestamp, restore.ManagedFields = "", "", metav1.Time{}, nil
		if rerr := r.Create(ctx, restore); rerr != nil {
			logf.FromContext(ctx).Error(rerr, "Could not put back the Secret whose type change was refused", "secret", existing.Name)
		}
		return nil, fmt.Errorf("create Secret %q as type %s: %w", s.Name, wantType, err)
	}
	if ow.remember != nil {
		ow.remember(s)
	}
	r.Recorder.Eventf(ow.obj, nil, corev1.EventTypeNormal, "SecretRecreated", "Write",
		"Secret %s/%s was type %s and is now type %s: Kubernetes does not let a Secret's type change, so it was deleted and created again with the same token", s.Namespace, s.Name, typeOf(existing), wantType)
	return s, nil
}

// own makes s owned as spec.deletionPolicy asks: Delete, a controller
// owner reference (the Secret goes with its owner; a namespaced Secret may
// have a cluster-scoped owner); Retain, no owner reference at all and the
// owner's name in its retain annotation, so that neither garbage collection
// nor a foreground deletion (Argo CD's default prune) can take the Secret,
// and no finalizer is needed.
func (ow secretOwner) own(s *corev1.Secret, scheme *runtime.Scheme) error {
	if ow.spec.DeletionPolicy == tokensyncv1alpha1.DeletionPolicyRetain {
		var refs []metav1.OwnerReference
		for _, ref := range s.OwnerReferences {
			if ref.UID != ow.obj.GetUID() {
				refs = append(refs, ref)
			}
		}
		s.OwnerReferences = refs
		if s.Annotations == nil {
			s.Annotations = map[string]string{}
		}
		s.Annotations[ow.retainKey] = ow.obj.GetName()
		return nil
	}
	delete(s.Annotations, ow.retainKey)
	return controllerutil.SetControllerReference(ow.obj, s, scheme)
}

// owns reports whether s is the owner's target Secret: controlled by it,
// or, without any controller, marked with its name (deletionPolicy Retain,
// or retained by an earlier owner of the same name, which is adopted).
func (ow secretOwner) owns(s *corev1.Secret) bool {
	if metav1.IsControlledBy(s, ow.obj) {
		return true
	}
	return metav1.GetControllerOf(s) == nil &&
		s.Labels[tokensyncv1alpha1.LabelManagedBy] == tokensyncv1alpha1.ManagedByValue &&
		s.Annotations[ow.retainKey] == ow.obj.GetName()
}

// secretType is the target Secret's type spec.secretTemplate asks for.
func (ow secretOwner) secretType() corev1.SecretType {
	if t := ow.spec.SecretTemplate; t != nil && t.Type != "" {
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
func (r *TokenRequestReconciler) deletePreviousSecret(ctx context.Context, o *snapshot) error {
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

// writeRefused records a refused Secret write. A refusal by a policy or a
// quota keeps the token obtained in memory (within HeldTokenLimits) and
// retries the write with backoff; no new login is spent on it. A Secret too
// large for the API server cannot be written however often it is tried:
// the token is dropped and nothing is tried until the spec changes or a
// refresh is forced (secretTooLarge), recorded in the status so that a
// restart does not log in again.
func (r *TokenRequestReconciler) writeRefused(ctx context.Context, o *snapshot, err error) (ctrl.Result, error) {
	if secretTooLarge(err) {
		r.memory.with(o.key, o.owner.obj.GetUID(), func(e *remembered) { r.memory.setPending(o.key, e, nil) })
		return r.failed(ctx, o, policy.Failure{
			Reason: tokensyncv1alpha1.ReasonSecretWriteFailed, Result: tokensyncv1alpha1.ResultSecretTooLarge,
			Message: fmt.Sprintf("a token was obtained but Secret %q would be larger than the API server accepts (%s); the token was dropped, and no login is made until the spec changes (say, a smaller spec.secretTemplate) or the %s annotation is set",
				o.targetKey.Name, apiRefusal(err), tokensyncv1alpha1.AnnotationForceRefresh),
		})
	}
	f := writeFailure(o.targetKey.Name, err)
	var retryAt time.Time
	dropped := ""
	r.memory.with(o.key, o.owner.obj.GetUID(), func(e *remembered) {
		if dropped = r.memory.holdRefused(o.key, e); dropped != "" || e.pending == nil {
			return
		}
		e.pending.Failures++
		retryAt = r.now().Add(policy.BackoffFor(f.Reason, e.pending.Failures, r.jitter(), 0))
		e.pending.RetryAt = retryAt
	})
	if dropped != "" {
		f.Message = fmt.Sprintf("a token was obtained but the API server refused to write Secret %q (%s); %s", o.targetKey.Name, apiRefusal(err), dropped)
	}
	f.RetryAt = retryAt
	return r.failed(ctx, o, f)
}

// holdRefused keeps the pending token of a write that did not happen (a
// template that does not render) within HeldTokenLimits; it returns why the
// token was dropped instead, or "".
func (r *TokenRequestReconciler) holdRefused(o *snapshot) (dropped string) {
	r.memory.with(o.key, o.owner.obj.GetUID(), func(e *remembered) { dropped = r.memory.holdRefused(o.key, e) })
	return dropped
}

// secretTooLarge reports whether the API server refused a write for the
// Secret's size: RequestEntityTooLarge (past --max-resource-write-bytes),
// a field too long (data over the 1 MiB a Secret may hold), or etcd's own
// request limit.
func secretTooLarge(err error) bool {
	if apierrors.IsRequestEntityTooLargeError(err) {
		return true
	}
	var status apierrors.APIStatus
	if !errors.As(err, &status) {
		return false
	}
	st := status.Status()
	if apierrors.IsInvalid(err) && st.Details != nil {
		for _, c := range st.Details.Causes {
			if c.Type == metav1.CauseTypeTooLong {
				return true
			}
		}
	}
	return strings.Contains(st.Message, "request is too large")
}

// writeFailure describes a refused Secret write with the API server's
// reason; the token is kept and the write retried.
func writeFailure(name string, err error) policy.Failure {
	return policy.Failure{
		Reason: tokensyncv1alpha1.ReasonSecretWriteFailed,
		Message: fmt.Sprintf("a token was obtained but the API server refused to write Secret %q (%s); the token is kept and the write retried without a new login",
			name, apiRefusal(err)),
	}
}

// apiRefusal is the API server's reason and message for a refused write.
// The message is the API server's own; it cannot hold the token, which is
// not part of any refusal, but it is cut to a sane length.
func apiRefusal(err error) string {
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
	return reason + ": " + msg
}

// secretWrite is one Secret of writeEach: its key, and the Secret as read
// (nil: none yet).
type secretWrite struct {
	key      types.NamespacedName
	existing *corev1.Secret
}

// writeEachWorkers bounds the writes of one writeEach in flight at once,
// as many as the TokenRequest controller's default workers.
const writeEachWorkers = 16

// writeEach writes the owner's Secrets with put, a few at a time; one that
// is refused holds up no other. refused has the failure of each Secret the
// API server refused (a quota, a policy, its namespace going away) or that
// is not the owner's (kindName names it in the message); err is a template that does not render, which fails
// every write alike, or an API error of the operator's own, for the
// controller's backoff.
func (r *TokenRequestReconciler) writeEach(ctx context.Context, kindName string, ow secretOwner, writes []secretWrite, put func(*corev1.Secret)) (refused map[types.NamespacedName]policy.Failure, err error) {
	var (
		mu       sync.Mutex
		parallel = make(chan struct{}, writeEachWorkers)
		wg       sync.WaitGroup
	)
	refused = map[types.NamespacedName]policy.Failure{}
	for _, w := range writes {
		parallel <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-parallel; wg.Done() }()
			_, werr := r.writeSecretOf(ctx, ow, w.key, w.existing, put, false)
			var te *templateError
			mu.Lock()
			defer mu.Unlock()
			switch {
			case werr == nil:
			case errors.Is(werr, errSecretConflict):
				refused[w.key] = policy.Failure{Reason: tokensyncv1alpha1.ReasonSecretConflict, Message: policy.SecretConflictMessage(kindName, w.key.Name)}
			case errors.As(werr, &te), apierrors.ReasonForError(werr) == metav1.StatusReasonUnknown:
				if err == nil {
					err = werr
				}
			default:
				refused[w.key] = writeFailure(w.key.Name, werr)
			}
		}()
	}
	wg.Wait()
	if err != nil {
		return nil, err
	}
	return refused, nil
}
