package controllers

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokensync/tokensync/controllers/policy"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/prometheus/client_golang/prometheus/testutil"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
	"github.com/tokensync/tokensync/providers/providertest"
)

func TestPlanRestarts(t *testing.T) {
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	deploy := tokensyncv1alpha1.RolloutRestartTarget{Kind: "Deployment", Name: "api"}
	sts := tokensyncv1alpha1.RolloutRestartTarget{Kind: "StatefulSet", Name: "db"}
	ran := func(fp string, ago time.Duration) tokensyncv1alpha1.RolloutRestartStatus {
		return tokensyncv1alpha1.RolloutRestartStatus{Kind: "Deployment", Name: "api", TokenFingerprint: fp, LastRestartTime: policy.MetaTime(t0.Add(-ago))}
	}
	tests := []struct {
		name     string
		targets  []tokensyncv1alpha1.RolloutRestartTarget
		prev     []tokensyncv1alpha1.RolloutRestartStatus
		tokenFP  string
		newToken bool
		restart  int
		held     bool
	}{
		{name: "first token: restart", targets: []tokensyncv1alpha1.RolloutRestartTarget{deploy}, tokenFP: "k:1", newToken: true, restart: 1},
		{name: "target listed on a healthy TokenRequest: its pods have the token", targets: []tokensyncv1alpha1.RolloutRestartTarget{deploy}, tokenFP: "k:1", restart: 0},
		{name: "same token (operator restart, leader change, rewrite)", targets: []tokensyncv1alpha1.RolloutRestartTarget{deploy},
			prev: []tokensyncv1alpha1.RolloutRestartStatus{ran("k:1", time.Hour)}, tokenFP: "k:1", newToken: false, restart: 0},
		{name: "new token, interval passed", targets: []tokensyncv1alpha1.RolloutRestartTarget{deploy},
			prev: []tokensyncv1alpha1.RolloutRestartStatus{ran("k:1", 11*time.Minute)}, tokenFP: "k:2", newToken: true, restart: 1},
		{name: "new token within the interval: held back", targets: []tokensyncv1alpha1.RolloutRestartTarget{deploy},
			prev: []tokensyncv1alpha1.RolloutRestartStatus{ran("k:1", time.Minute)}, tokenFP: "k:2", newToken: true, held: true},
		{name: "held back, interval now passed (no new token this time)", targets: []tokensyncv1alpha1.RolloutRestartTarget{deploy},
			prev: []tokensyncv1alpha1.RolloutRestartStatus{ran("k:1", 10*time.Minute)}, tokenFP: "k:3", restart: 1},
		{name: "two targets, one new on a healthy TokenRequest", targets: []tokensyncv1alpha1.RolloutRestartTarget{deploy, sts},
			prev: []tokensyncv1alpha1.RolloutRestartStatus{ran("k:1", time.Hour)}, tokenFP: "k:2", newToken: false, restart: 1},
		{name: "no token yet", targets: []tokensyncv1alpha1.RolloutRestartTarget{deploy}, tokenFP: "", newToken: true, restart: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := planRestarts(tt.targets, tt.prev, tt.tokenFP, tt.newToken, t0, 10*time.Minute)
			if len(p.restart) != tt.restart {
				t.Errorf("%d restarts, want %d", len(p.restart), tt.restart)
			}
			if held := !p.wakeAt.IsZero(); held != tt.held {
				t.Errorf("held back %v, want %v", held, tt.held)
			}
			if len(p.status) != len(tt.targets) {
				t.Errorf("%d status entries for %d targets", len(p.status), len(tt.targets))
			}
			if tt.held {
				st := p.status[0]
				if st.NextRestartTime == nil || !st.NextRestartTime.Time.Equal(t0.Add(9*time.Minute)) || st.Message == "" {
					t.Errorf("held-back status %+v", st)
				}
			}
		})
	}
	// A target removed from the spec leaves the status.
	p := planRestarts(nil, []tokensyncv1alpha1.RolloutRestartStatus{ran("k:1", time.Hour)}, "k:2", true, t0, time.Minute)
	if len(p.status) != 0 || len(p.restart) != 0 {
		t.Errorf("removed target: %+v", p)
	}
	_ = metav1.Now
}

func newDeployment(ns, name string) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "example.com/app:1"}}},
			},
		},
	}
}

func restartedAt(t *testing.T, ns, name string) string {
	t.Helper()
	d := &appsv1.Deployment{}
	if err := k8sClient.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, d); err != nil {
		t.Fatal(err)
	}
	return d.Spec.Template.Annotations[tokensyncv1alpha1.AnnotationRestartedAt]
}

// TestRolloutRestarts: a Deployment listed as a restart target gets its
// pod-template annotation on the first token and on a forced refresh, at
// most once per interval (a restart held back happens when it passes), and
// not on a manager restart; a missing target is a Warning event, never a
// failure of the token.
func TestRolloutRestarts(t *testing.T) {
	t.Parallel()
	const interval = 6 * time.Second
	e := &env{t: t, ns: newNamespace(t), fake: providertest.Start(t)}
	e.extra = func(r *TokenRequestReconciler) {
		r.RolloutRestartMinInterval = interval
		r.MinLoginInterval = time.Second // the forced refresh's token comes inside the restart interval
	}
	e.start()
	if err := k8sClient.Create(e.ctx(), newDeployment(e.ns, "api")); err != nil {
		t.Fatal(err)
	}
	e.createSecret("creds", partnerCreds)
	e.createTokenRequest("env-consumer", providertest.Partner, "creds", func(tr *tokensyncv1alpha1.TokenRequest) {
		tr.Spec.RolloutRestartTargets = []tokensyncv1alpha1.RolloutRestartTarget{{Kind: "Deployment", Name: "api"}, {Kind: "StatefulSet", Name: "missing"}}
	})
	e.waitReady("env-consumer")
	var first string
	eventually(t, readyTimeout, func() error {
		if first = restartedAt(t, e.ns, "api"); first == "" {
			return fmt.Errorf("not restarted for the first token")
		}
		return nil
	})
	e.waitEvent("env-consumer", "Warning/RolloutTargetNotFound")
	before := testutil.ToFloat64(rolloutRestartsTotal.WithLabelValues(e.ns, "Deployment"))

	// A forced refresh right away: a new token, the restart held back.
	e.forceRefresh("env-consumer", "1")
	eventually(t, readyTimeout, func() error {
		tr := e.tokenRequest("env-consumer")
		if len(tr.Status.RolloutRestarts) == 0 || tr.Status.RolloutRestarts[0].NextRestartTime == nil {
			return fmt.Errorf("no held-back restart in %+v", tr.Status.RolloutRestarts)
		}
		return nil
	})
	if got := restartedAt(t, e.ns, "api"); got != first {
		t.Fatalf("restarted twice within %s", interval)
	}
	var second string
	eventually(t, readyTimeout, func() error {
		if second = restartedAt(t, e.ns, "api"); second == first {
			return fmt.Errorf("the held-back restart did not happen")
		}
		return nil
	})
	if got := testutil.ToFloat64(rolloutRestartsTotal.WithLabelValues(e.ns, "Deployment")) - before; got != 1 {
		t.Errorf("tokensync_rollout_restarts_total grew by %v, want 1", got)
	}

	// The held-back restart recorded in the status: a manager stopped
	// between the patch and the status write would do it again (at least
	// once, by design), which is not what this part tests.
	eventually(t, readyTimeout, func() error {
		tr := e.tokenRequest("env-consumer")
		if len(tr.Status.RolloutRestarts) == 0 || tr.Status.RolloutRestarts[0].LastRestartTime == nil ||
			policy.FormatTime(tr.Status.RolloutRestarts[0].LastRestartTime.Time) != second {
			return fmt.Errorf("the restart at %s not yet recorded: %+v", second, tr.Status.RolloutRestarts)
		}
		return nil
	})

	// A manager restart (or a leader change) restarts nothing.
	e.restart()
	e.createTokenRequest("probe", providertest.Partner, "creds")
	e.waitReady("probe")
	consistently(t, 3*time.Second, func() error {
		if got := restartedAt(t, e.ns, "api"); got != second {
			return fmt.Errorf("restarted after the manager restart")
		}
		return nil
	})
	if c := readyCondition(e.tokenRequest("env-consumer")); c.Status != metav1.ConditionTrue {
		t.Errorf("a missing target made the TokenRequest %s/%s", c.Status, c.Reason)
	}
}

// failingStatus makes status writes fail while on, as a manager stopped
// between patching a workload and writing the status would leave things.
type failingStatus struct {
	client.Client
	on *atomic.Bool
}

func (c failingStatus) Status() client.SubResourceWriter {
	return failingStatusWriter{SubResourceWriter: c.Client.Status(), on: c.on}
}

type failingStatusWriter struct {
	client.SubResourceWriter
	on *atomic.Bool
}

func (w failingStatusWriter) Update(ctx context.Context, obj client.Object, opts ...client.SubResourceUpdateOption) error {
	if w.on.Load() {
		return apierrors.NewServiceUnavailable("the manager stopped here")
	}
	return w.SubResourceWriter.Update(ctx, obj, opts...)
}

// TestRolloutRestartOncePerTokenAcrossLeaders: a manager restarts a
// Deployment for a new token and stops before it records the restart; the
// next leader finds the restart on the Deployment and does not restart it
// again.
func TestRolloutRestartOncePerTokenAcrossLeaders(t *testing.T) {
	t.Parallel()
	var failStatus atomic.Bool
	e := &env{t: t, ns: newNamespace(t), fake: providertest.Start(t)}
	e.extra = func(r *TokenRequestReconciler) {
		r.RolloutRestartMinInterval = time.Second
		r.Client = failingStatus{Client: r.Client, on: &failStatus}
	}
	e.start()
	if err := k8sClient.Create(e.ctx(), newDeployment(e.ns, "api")); err != nil {
		t.Fatal(err)
	}
	e.createSecret("creds", partnerCreds)
	e.createTokenRequest("env-consumer", providertest.Partner, "creds", func(tr *tokensyncv1alpha1.TokenRequest) {
		tr.Spec.RolloutRestartTargets = []tokensyncv1alpha1.RolloutRestartTarget{{Kind: "Deployment", Name: "api"}}
	})
	var first string
	eventually(t, readyTimeout, func() error {
		tr := e.tokenRequest("env-consumer")
		if first = restartedAt(t, e.ns, "api"); first == "" || len(tr.Status.RolloutRestarts) == 0 || tr.Status.RolloutRestarts[0].LastRestartTime == nil {
			return fmt.Errorf("the first restart is not recorded yet: %+v", tr.Status.RolloutRestarts)
		}
		return nil
	})
	time.Sleep(1100 * time.Millisecond) // the interval between two restarts, and a new second for the annotation

	// A new token (a credentials rotation, which the Secret records, so
	// that the next leader does not log in again): the Deployment is
	// restarted, the status write fails.
	failStatus.Store(true)
	e.updateSecret("creds", map[string]string{"accessKey": partnerCreds["accessKey"], "secret": "rotated-secret"})
	var second string
	eventually(t, readyTimeout, func() error {
		if second = restartedAt(t, e.ns, "api"); second == first {
			return fmt.Errorf("not restarted for the new token")
		}
		return nil
	})
	if tr := e.tokenRequest("env-consumer"); policy.FormatTime(tr.Status.RolloutRestarts[0].LastRestartTime.Time) != first {
		t.Fatal("the status was written: the test would not show a leader change before the record")
	}
	logins := e.fake.Logins(providertest.Partner)
	generation := deploymentGeneration(t, e.ns, "api")

	// A new leader: it records the restart it finds and restarts nothing.
	e.stop()
	failStatus.Store(false)
	time.Sleep(1100 * time.Millisecond) // a restart now would write another second
	e.start()
	eventually(t, readyTimeout, func() error {
		tr := e.tokenRequest("env-consumer")
		if len(tr.Status.RolloutRestarts) == 0 || tr.Status.RolloutRestarts[0].LastRestartTime == nil ||
			policy.FormatTime(tr.Status.RolloutRestarts[0].LastRestartTime.Time) != second {
			return fmt.Errorf("the new leader has not recorded the restart at %s: %+v", second, tr.Status.RolloutRestarts)
		}
		return nil
	})
	consistently(t, 3*time.Second, func() error {
		if got, g := restartedAt(t, e.ns, "api"), deploymentGeneration(t, e.ns, "api"); got != second || g != generation {
			return fmt.Errorf("restarted again by the new leader (restartedAt %s, generation %d, was %s, %d)", got, g, second, generation)
		}
		return nil
	})
	if n := e.fake.Logins(providertest.Partner); n != logins {
		t.Errorf("%d logins by the new leader, want none", n-logins)
	}
}

func deploymentGeneration(t *testing.T, ns, name string) int64 {
	t.Helper()
	d := &appsv1.Deployment{}
	if err := k8sClient.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, d); err != nil {
		t.Fatal(err)
	}
	return d.Generation
}
