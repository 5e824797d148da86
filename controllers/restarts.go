package controllers

import (
	"context"
	"fmt"
	"time"

	"github.com/tokensync/tokensync/controllers/policy"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
)

// DefaultRolloutRestartMinInterval is the least time between two restarts
// of one target: a one-minute token must not restart a Deployment every minute.
const DefaultRolloutRestartMinInterval = 10 * time.Minute

// restartPlan is what to do with the rollout restart targets now.
type restartPlan struct {
	// restart lists the targets to restart now.
	restart []tokensyncv1alpha1.RolloutRestartTarget
	// status is every target's state once restart has been done; entries of
	// targets to restart are updated by the caller after each patch.
	status []tokensyncv1alpha1.RolloutRestartStatus
	// wakeAt is the earliest restart held back, zero if none.
	wakeAt time.Time
}

// planRestarts decides, for the token whose fingerprint is tokenFP, which
// targets restart now. A target restarts when the token it runs with is not
// the current one: never for a rewrite of the same token, an operator
// restart or a leader change, since the status records the token each target
// runs with. A target newly listed on a TokenRequest whose token did not just
// change runs with the current token already (its pods read it at start);
// with a new token it restarts. At most one restart per target per
// minInterval; one held back happens when the interval has passed. Pure.
func planRestarts(targets []tokensyncv1alpha1.RolloutRestartTarget, prev []tokensyncv1alpha1.RolloutRestartStatus,
	tokenFP string, newToken bool, now time.Time, minInterval time.Duration) restartPlan {
	var p restartPlan
	for _, t := range targets {
		st, known := findRestart(prev, t)
		if !known {
			st = tokensyncv1alpha1.RolloutRestartStatus{Kind: t.Kind, Name: t.Name}
			if !newToken {
				st.TokenFingerprint = tokenFP
			}
		}
		if tokenFP == "" || st.TokenFingerprint == tokenFP {
			st.NextRestartTime = nil
			p.status = append(p.status, st)
			continue
		}
		if last := st.LastRestartTime; last != nil && now.Before(last.Add(minInterval)) {
			at := last.Add(minInterval)
			st.NextRestartTime = policy.MetaTime(at)
			st.Message = fmt.Sprintf("a new token is out; restart held back until %s (at most one restart per %s)", policy.FormatTime(at), minInterval)
			if p.wakeAt.IsZero() || at.Before(p.wakeAt) {
				p.wakeAt = at
			}
			p.status = append(p.status, st)
			continue
		}
		p.restart = append(p.restart, t)
		p.status = append(p.status, st)
	}
	return p
}

func findRestart(list []tokensyncv1alpha1.RolloutRestartStatus, t tokensyncv1alpha1.RolloutRestartTarget) (tokensyncv1alpha1.RolloutRestartStatus, bool) {
	for _, st := range list {
		if st.Kind == t.Kind && st.Name == t.Name {
			return *st.DeepCopy(), true
		}
	}
	return tokensyncv1alpha1.RolloutRestartStatus{}, false
}

// annotationRestartedFor, on a rollout restart target's own metadata (not
// its pod template, so it rolls nothing): the fingerprint of the token it
// was last restarted for.
const annotationRestartedFor = "tokensync.io/restarted-for"

// rolloutRestarts carries out planRestarts for the token whose fingerprint
// is tokenFP: it sets the pod-template annotation tokensync.io/restartedAt
// on each target due, and returns the targets' new status and when a
// held-back restart is due. A target that says it was restarted for this
// token already (by a manager that stopped before recording it, under an
// earlier leader) is not restarted again, so a token restarts each target
// exactly once. A target that cannot be read or patched (missing, or RBAC
// left out) is a Warning event, never a failure of the token.
func (r *TokenRequestReconciler) rolloutRestarts(ctx context.Context, o *snapshot, tr *tokensyncv1alpha1.TokenRequest, tokenFP string, newToken bool) ([]tokensyncv1alpha1.RolloutRestartStatus, time.Time) {
	if len(tr.Spec.RolloutRestartTargets) == 0 {
		return nil, time.Time{}
	}
	now := r.now()
	interval := r.RolloutRestartMinInterval
	if interval <= 0 {
		interval = DefaultRolloutRestartMinInterval
	}
	plan := planRestarts(tr.Spec.RolloutRestartTargets, tr.Status.RolloutRestarts, tokenFP, newToken, now, interval)
	for _, t := range plan.restart {
		i := indexOfRestart(plan.status, t)
		st := &plan.status[i]
		done, err := r.restartTarget(ctx, tr.Namespace, t, tokenFP, now)
		switch {
		case err == nil && !done.IsZero():
			st.LastRestartTime = policy.MetaTime(done)
			st.TokenFingerprint = tokenFP
			st.NextRestartTime = nil
			st.Message = fmt.Sprintf("restarted at %s for the current token", policy.FormatTime(done))
			logf.FromContext(ctx).Info("Rollout restart target already restarted for this token; not restarting it again", "kind", t.Kind, "name", t.Name, "restartedAt", done)
		case err == nil:
			st.LastRestartTime = policy.MetaTime(now)
			st.TokenFingerprint = tokenFP
			st.NextRestartTime = nil
			st.Message = fmt.Sprintf("restarted at %s for a new token", policy.FormatTime(now))
			rolloutRestartsTotal.WithLabelValues(tr.Namespace, t.Kind).Inc()
			r.Recorder.Eventf(tr, nil, corev1.EventTypeNormal, "RolloutRestarted", "RolloutRestart",
				"Restarted %s %s for the new token in Secret %s", t.Kind, t.Name, o.SecretName)
		case apierrors.IsNotFound(err):
			st.Message = fmt.Sprintf("%s %s not found: nothing to restart", t.Kind, t.Name)
			r.Recorder.Eventf(tr, nil, corev1.EventTypeWarning, "RolloutTargetNotFound", "RolloutRestart", "%s", st.Message)
		default:
			reason := apierrors.ReasonForError(err)
			st.Message = fmt.Sprintf("could not restart %s %s (%s); is the rollout-restart ClusterRole bound to the operator?", t.Kind, t.Name, reason)
			r.Recorder.Eventf(tr, nil, corev1.EventTypeWarning, "RolloutRestartFailed", "RolloutRestart", "%s", st.Message)
			logf.FromContext(ctx).Info("Rollout restart failed", "kind", t.Kind, "name", t.Name, "reason", reason)
		}
	}
	return plan.status, plan.wakeAt
}

func indexOfRestart(list []tokensyncv1alpha1.RolloutRestartStatus, t tokensyncv1alpha1.RolloutRestartTarget) int {
	for i, st := range list {
		if st.Kind == t.Kind && st.Name == t.Name {
			return i
		}
	}
	return -1
}

// restartTarget sets the pod-template annotation that rolls a workload's
// pods, as `kubectl rollout restart` does with its own annotation, and
// records on the workload which token it restarted for; unless the workload
// says it was restarted for this token already: then it returns when (its
// tokensync.io/restartedAt) and patches nothing. The token's obtained-at
// time would not do for this: it has one-second precision, and a token
// obtained in the second of the last restart would never restart anything.
func (r *TokenRequestReconciler) restartTarget(ctx context.Context, namespace string, t tokensyncv1alpha1.RolloutRestartTarget, tokenFP string, now time.Time) (already time.Time, err error) {
	var (
		obj      client.Object
		template func() *corev1.PodTemplateSpec
	)
	key := types.NamespacedName{Namespace: namespace, Name: t.Name}
	switch t.Kind {
	case "Deployment":
		d := &appsv1.Deployment{}
		obj, template = d, func() *corev1.PodTemplateSpec { return &d.Spec.Template }
	case "StatefulSet":
		s := &appsv1.StatefulSet{}
		obj, template = s, func() *corev1.PodTemplateSpec { return &s.Spec.Template }
	case "DaemonSet":
		d := &appsv1.DaemonSet{}
		obj, template = d, func() *corev1.PodTemplateSpec { return &d.Spec.Template }
	default:
		return time.Time{}, fmt.Errorf("kind %q cannot be restarted", t.Kind)
	}
	// Straight from the API server: workloads are not cached (they are
	// many and the operator reads only these annotations, only here).
	if err := r.APIReader.Get(ctx, key, obj); err != nil {
		return time.Time{}, err
	}
	if tokenFP != "" && obj.GetAnnotations()[annotationRestartedFor] == tokenFP {
		at, err := time.Parse(time.RFC3339, template().Annotations[tokensyncv1alpha1.AnnotationRestartedAt])
		if err != nil {
			at = now // edited by hand; the restart for this token happened
		}
		return at, nil
	}
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}},"spec":{"template":{"metadata":{"annotations":{%q:%q}}}}}`,
		annotationRestartedFor, tokenFP, tokensyncv1alpha1.AnnotationRestartedAt, policy.FormatTime(now))
	return time.Time{}, r.Patch(ctx, obj, client.RawPatch(types.MergePatchType, []byte(patch)))
}
