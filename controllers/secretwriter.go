package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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

// writeSecret creates or updates the target Secret: mutate puts the token
// on it, then spec.secretTemplate (data, labels, annotations) and the
// ownership deletionPolicy asks for are applied. Nothing is written when
// nothing changes. A Secret of another type than spec.secretTemplate.type
// asks for is deleted and created again at once with the same content:
// Kubernetes does not let a Secret's type change. dryRun asks the API server
// whether it would accept the write, without storing it. It returns the
// Secret's resourceVersion; a template that does not render is a
// *templateError, and nothing is written.
func (r *TokenRequestReconciler) writeSecret(ctx context.Context, o *snapshot, existing *corev1.Secret, mutate func(*corev1.Secret), dryRun bool) (string, error) {
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
func (r *TokenRequestReconciler) recreateSecret(ctx context.Context, o *snapshot, existing *corev1.Secret, build func(*corev1.Secret) (*corev1.Secret, error), wantType corev1.SecretType) (string, error) {
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

// writeRefused records a refused Secret write. The token obtained stays in
// memory and the write is retried with backoff; no new login is spent on it.
func (r *TokenRequestReconciler) writeRefused(ctx context.Context, o *snapshot, err error) (ctrl.Result, error) {
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
