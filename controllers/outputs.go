package controllers

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
	"github.com/tokensync/tokensync/controllers/policy"
)

// Outputs: where a held token goes besides the Secret that holds it. A kind
// whose token has copies (a ClusterTokenRequest's, one per namespace) plans
// them in its publish; the engine writes them here, from the held Secret
// only, and reports those that did not take the token in the status.

// copyPlan is where the held token's copies go.
type copyPlan struct {
	// kindName names the owner in a conflict's message; owner is it as the
	// copies' owner (their template and deletionPolicy).
	kindName string
	owner    secretOwner
	// writes are the copies, each as read (nil: none yet).
	writes []secretWrite
	// conflicts are copies in the way of a Secret that is not the owner's;
	// unreachable are outputs reported failed without a write.
	conflicts   []types.NamespacedName
	unreachable []tokensyncv1alpha1.NamespaceFailure
	// stale are copies no longer wanted (their place was evaluated and no
	// longer matches): deleted, unless retain.
	stale  []*corev1.Secret
	retain bool
}

// copyHeld writes the plan's copies from the held Secret (each that differs
// from it: its data, tokensync's annotations, the template, the ownership)
// and deletes the stale ones; failed are the outputs that did not take the
// token, sorted by name. err is a template that does not render or an API
// error of the operator's own.
func (r *TokenRequestReconciler) copyHeld(ctx context.Context, held *corev1.Secret, plan copyPlan) (failed []tokensyncv1alpha1.NamespaceFailure, err error) {
	refused, err := r.writeEach(ctx, plan.kindName, plan.owner, plan.writes, func(c *corev1.Secret) { copyOf(c, held) })
	if err != nil {
		return nil, err
	}
	for key, f := range refused {
		failed = append(failed, tokensyncv1alpha1.NamespaceFailure{Name: key.Namespace, Reason: f.Reason, Message: f.Message})
	}
	for _, key := range plan.conflicts {
		failed = append(failed, tokensyncv1alpha1.NamespaceFailure{Name: key.Namespace, Reason: tokensyncv1alpha1.ReasonSecretConflict,
			Message: policy.SecretConflictMessage(plan.kindName, key.Name)})
	}
	failed = append(failed, plan.unreachable...)
	slices.SortFunc(failed, func(a, b tokensyncv1alpha1.NamespaceFailure) int { return strings.Compare(a.Name, b.Name) })
	return failed, r.deleteStale(ctx, plan.stale, plan.retain)
}

// copyOf puts the held Secret's token on a copy: its data and bookkeeping,
// but not the fingerprint of the credentials, which is no reader's.
func copyOf(s, held *corev1.Secret) {
	copyToken(s, held)
	delete(s.Annotations, annotationCredentialsFingerprint)
	delete(s.Annotations, annotationCredentialsVersion)
}

// deleteStale deletes copies no longer wanted; with retain they stay.
func (r *TokenRequestReconciler) deleteStale(ctx context.Context, stale []*corev1.Secret, retain bool) error {
	if retain {
		return nil
	}
	for _, c := range stale {
		if err := r.Delete(ctx, c, client.Preconditions{UID: &c.UID}); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("delete Secret %s/%s: %w", c.Namespace, c.Name, err)
		}
		logf.FromContext(ctx).Info("Deleted a copy no longer wanted (its namespace no longer selected, or an earlier secretName)", "secret", c.Namespace+"/"+c.Name)
	}
	return nil
}

// outputFailures makes Ready False, with the first failed output's reason,
// while the others keep the valid token: Stalled when a person must act,
// else Reconciling (retried after pub.retry).
func outputFailures(st *tokensyncv1alpha1.TokenStatus, generation int64, now, expiresAt time.Time, pub *published) {
	if len(pub.failed) == 0 {
		return
	}
	first := pub.failed[0]
	message := fmt.Sprintf("the token is valid until %s in %d of %d %s; not in %d: %s (%s: %s)",
		policy.FormatTime(expiresAt), pub.written, pub.of, pub.in, len(pub.failed), outputNames(pub.failed), first.Reason, first.Message)
	policy.SetCondition(st, generation, now, tokensyncv1alpha1.ConditionReady, metav1.ConditionFalse, first.Reason, message)
	if pub.stalls() {
		policy.SetCondition(st, generation, now, tokensyncv1alpha1.ConditionStalled, metav1.ConditionTrue, first.Reason, message)
	} else {
		policy.SetCondition(st, generation, now, tokensyncv1alpha1.ConditionReconciling, metav1.ConditionTrue, tokensyncv1alpha1.ReasonRetrying, message)
	}
}

// stalls: an output failed for a reason a person must fix.
func (pub *published) stalls() bool {
	return slices.ContainsFunc(pub.failed, func(f tokensyncv1alpha1.NamespaceFailure) bool { return policy.RuleOf(f.Reason).Stalls })
}

// wakeAt is when to look again: pub.wake, or, while an output that may heal
// failed, after pub.retry.
func (pub *published) wakeAt(now time.Time) time.Time {
	if len(pub.failed) == 0 || pub.stalls() || pub.retry <= 0 {
		return pub.wake
	}
	return earliest(pub.wake, now.Add(pub.retry))
}

// outputNames lists failed outputs for a message, at most ten.
func outputNames(failed []tokensyncv1alpha1.NamespaceFailure) string {
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
