package controllers

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
)

// The status writer: what a failure or a success makes of the status is
// computed by afterFailure and afterSuccess (bookkeeping.go); here it is
// written, with the event and the log line that go with it.

// failed records a failure: the target Secret is left alone, so a token that
// is still valid keeps working; the next attempt is scheduled by backoff, or
// none when only a change of input can help.
func (r *TokenRequestReconciler) failed(ctx context.Context, o *snapshot, f failure) (ctrl.Result, error) {
	now, jitter := r.now(), r.jitter()
	var (
		retryAt  time.Time
		stopped  bool
		attempts int32
	)
	changed, err := o.writeStatus(ctx, func(st *tokensyncv1alpha1.TokenStatus) {
		*st, retryAt, stopped = afterFailure(*st, &o.observation, f, now, jitter)
		attempts = st.FailedAttempts
	})
	if err != nil {
		return ctrl.Result{}, err
	}
	if changed {
		r.Recorder.Eventf(o.owner.obj, nil, corev1.EventTypeWarning, f.reason, "Refresh", "%s", f.message)
		logf.FromContext(ctx).Info("Attempt failed", "reason", f.reason, "message", f.message,
			"attempt", attempts, "stopped", stopped, "nextRetry", retryAt)
	}
	if stopped {
		return ctrl.Result{}, nil
	}
	return ctrl.Result{RequeueAfter: requeueAfter(now, retryAt)}, nil
}

// waitOnHost records that the TokenRequest's login waits on its down host
// (message: why, and on what), with a warning event when it starts
// waiting; at is when to look again (zero: the login's end reconciles).
func (r *TokenRequestReconciler) waitOnHost(ctx context.Context, o *snapshot, message string, at time.Time) (ctrl.Result, error) {
	now := r.now()
	var wasWaiting bool
	changed, err := o.writeStatus(ctx, func(st *tokensyncv1alpha1.TokenStatus) {
		c := meta.FindStatusCondition(st.Conditions, tokensyncv1alpha1.ConditionReady)
		wasWaiting = c != nil && c.Status == metav1.ConditionFalse && c.Reason == tokensyncv1alpha1.ReasonProviderUnavailable
		*st = afterWaitingOnHost(*st, &o.observation, message, now)
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
	return ctrl.Result{RequeueAfter: requeueAfter(now, at)}, nil
}

// setHealthy records a valid token, and warns once when its refresh window
// is too short for pods that read it from a mounted volume.
func (r *TokenRequestReconciler) setHealthy(ctx context.Context, o *snapshot, h healthyToken) error {
	now := r.now()
	var warning string
	err := r.updateStatus(ctx, o.tr, func(st *tokensyncv1alpha1.TokenRequestStatus) {
		st.TokenStatus, warning = afterSuccess(st.TokenStatus, &o.observation, h, now)
		st.RolloutRestarts = h.restarts
	})
	if err == nil && warning != "" {
		r.Recorder.Eventf(o.tr, nil, corev1.EventTypeWarning, "ShortRefreshWindow", "Refresh", "%s", warning)
	}
	return err
}

// updateStatus applies mutate to the TokenRequest's status and writes it
// only if it changed. A conflict re-reads the TokenRequest from the API
// server and applies the same change again: the login it records is never
// repeated. A status that could not be written is kept in memory, so the
// next decision sees it (a failed login stays backed off) and writes it.
func (r *TokenRequestReconciler) updateStatus(ctx context.Context, tr *tokensyncv1alpha1.TokenRequest, mutate func(*tokensyncv1alpha1.TokenRequestStatus)) error {
	key := client.ObjectKeyFromObject(tr)
	var unwritten bool
	r.memory.with(key, tr.UID, func(e *remembered) { unwritten = e.unwrittenStatus != nil })
	first := true
	var want *tokensyncv1alpha1.TokenRequestStatus
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if !first {
			fresh := &tokensyncv1alpha1.TokenRequest{}
			if err := r.APIReader.Get(ctx, key, fresh); err != nil {
				return err
			}
			fresh.DeepCopyInto(tr)
		}
		first = false
		want = tr.Status.DeepCopy()
		mutate(want)
		if !unwritten && equality.Semantic.DeepEqual(&tr.Status, want) {
			return nil
		}
		tr.Status = *want
		return r.Status().Update(ctx, tr)
	})
	r.memory.with(key, tr.UID, func(e *remembered) {
		if err != nil {
			if want != nil {
				e.unwrittenStatus = want.DeepCopy()
			}
			return
		}
		e.unwrittenStatus = nil
		e.statusRV = tr.ResourceVersion
	})
	if err != nil {
		return fmt.Errorf("update TokenRequest status: %w", err)
	}
	return nil
}
