package cli

import (
	"context"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
)

// TestCheck: check passes while an operator leads on the Lease named, and
// fails naming the Lease once it has stepped down, or when the Lease does
// not exist (124 when --wait runs out).
func TestCheck(t *testing.T) {
	ns := newNamespace(t, "check")
	const lease = "tokensync-plugin-check"
	leaseFlags := []string{"--operator-namespace", operatorNamespace, "--lease", lease, "-n", ns}

	// An operator of its own, leading on its own Lease, watching only this
	// namespace: the shared one keeps serving the other tests.
	stop, err := startOperator(operatorOptions{namespaces: []string{ns}, lease: lease})
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = stop()
		}
	})
	r := plugin(t, adminKubeconfig, append([]string{"check", "--wait", "60s"}, leaseFlags...)...)
	wantExit(t, r, 0)
	wantIn(t, "check", r.stdout,
		"[ok  ] CRDs: tokenrequests and clustertokenrequests are served (tokensync.io/v1alpha1)\n",
		"[ok  ] Admission: a TokenRequest in namespace "+ns+" is admitted (server-side dry run)\n",
		"[ok  ] Operator: Lease "+operatorNamespace+"/"+lease+" is held by ",
		"tokensync is ready\n")

	// The Deployment as the chart labels it (envtest runs no pods for it).
	labels := map[string]string{"app.kubernetes.io/name": "tokensync", "app.kubernetes.io/component": "manager"}
	deployment := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "tokensync", Namespace: operatorNamespace, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "manager", Image: "registry.example.com/tokensync:v0.1.0"}}},
			},
		},
	}
	if err := k8sClient.Create(context.Background(), deployment); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), deployment) })
	ver := plugin(t, adminKubeconfig, "version", "--operator-namespace", operatorNamespace, "--lease", lease)
	wantExit(t, ver, 0)
	wantIn(t, "version", ver.stdout, "Plugin:    v0.0.0-test\n",
		"Operator:  registry.example.com/tokensync:v0.1.0 (Deployment "+operatorNamespace+"/tokensync)\n",
		"Leader:    ", "(Lease "+operatorNamespace+"/"+lease+", renewed ")

	stopped = true
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	r = plugin(t, adminKubeconfig, append([]string{"check"}, leaseFlags...)...)
	wantExit(t, r, 1)
	wantIn(t, "check without the operator", r.stdout, "[FAIL] Operator: Lease "+operatorNamespace+"/"+lease+" is ")
	wantIn(t, "check without the operator", r.stderr, "Error: tokensync is not ready: the Operator check failed (above)\n")
	if strings.Contains(r.stdout, "tokensync is ready") {
		t.Errorf("check says ready without the operator:\n%s", r)
	}

	r = plugin(t, adminKubeconfig, "check", "--wait", "3s", "--operator-namespace", operatorNamespace, "--lease", "no-such-lease", "-n", ns)
	wantExit(t, r, 124)
	wantIn(t, "check --wait without a Lease", r.stdout, "[FAIL] Operator: Lease "+operatorNamespace+"/no-such-lease not found")
	wantIn(t, "check --wait without a Lease", r.stderr, "Error: tokensync is not ready after 3s: the Operator check failed (above)\n")
}

// TestCheckOutput: check as a person sees it (testdata/check*.golden):
// ready; and without the operator's Lease.
func TestCheckOutput(t *testing.T) {
	d, l := operatorObjects()
	out, code := runFake(t, fakeAPI(interceptor.Funcs{}, d, l), "check", "-n", "team-a")
	if code != 0 {
		t.Errorf("exit %d", code)
	}
	golden(t, "check", out)

	out, code = runFake(t, fakeAPI(interceptor.Funcs{}, d), "check", "-n", "team-a", "--wait", "2m")
	if code != 124 {
		t.Errorf("exit %d, want 124", code)
	}
	golden(t, "check-no-lease", out)
}
