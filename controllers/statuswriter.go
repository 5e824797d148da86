package controllers

import (
	"context"
	"time"

	"github.com/tokensync/tokensync/controllers/policy"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
)

// The status writer: what a failure or a success makes of the status is
// computed by afterFailure and afterSuccess (bookkeeping.go); here it is
// written, with the event and the log line that go with it.

// failed records a failure: the target Secret is left alone, so a token that
// is still valid keeps working; the next attempt is scheduled by backoff, or
// none when only a change of input can help.
func (r *TokenRequestReconciler) failed(ctx context.Context, o *snapshot, f policy.Failure) (ctrl.Result, error) {
	now, jitter := r.now(), r.jitter()
	var (
		retryAt  time.Time
		stopped  bool
		attempts int32
	)
	changed, err := o.subject.writeStatus(ctx, func(st *tokensyncv1alpha1.TokenStatus) {
		*st, retryAt, stopped = policy.AfterFailure(*st, &o.Observation, f, now, jitter)
		attempts = st.FailedAttempts
	})
	if err != nil {
		return ctrl.Result{}, err
	}
	if changed {
		r.Recorder.Eventf(o.owner.obj, nil, corev1.EventTypeWarning, f.Reason, "Refresh", "%s", f.Message)
		logf.FromContext(ctx).Info("Attempt failed", "reason", f.Reason, "message", f.Message,
			"attempt", attempts, "stopped", stopped, "nextRetry", retryAt)
	}
	if stopped {
		return ctrl.Result{}, nil
	}
	return ctrl.Result{RequeueAfter: policy.RequeueAfter(now, retryAt)}, nil
}

// waitOnHost records that the TokenRequest's login waits on its down host
// (message: why, and on what), with a warning event when it starts
// waiting; at is when to look again (zero: the login's end reconciles).
func (r *TokenRequestReconciler) waitOnHost(ctx context.Context, o *snapshot, message string, at time.Time) (ctrl.Result, error) {
	now := r.now()
	var wasWaiting bool
	changed, err := o.subject.writeStatus(ctx, func(st *tokensyncv1alpha1.TokenStatus) {
		c := meta.FindStatusCondition(st.Conditions, tokensyncv1alpha1.ConditionReady)
		wasWaiting = c != nil && c.Status == metav1.ConditionFalse && c.Reason == tokensyncv1alpha1.ReasonProviderUnavailable
		*st = policy.AfterWaitingOnHost(*st, &o.Observation, message, now)
	})
	if err != nil {
		return ctrl.Result{}, err
	}
	if changed && !wasWaiting {
		r.Recorder.Eventf(o.owner.obj, nil, corev1.EventTypeWarning, tokensyncv1alpha1.ReasonProviderUnavailable, "Refresh", "%s", message)
	}
	logf.FromContext(ctx).V(1).Info("Waiting on the provider host", "host", o.Host.Name, "nextProbe", o.Host.NextProbe)
	if at.IsZero() {
		return ctrl.Result{RequeueAfter: loginInFlightRecheck}, nil
	}
	return ctrl.Result{RequeueAfter: policy.RequeueAfter(now, at)}, nil
}
