package cli

import (
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
)

// operatorObjects are the Deployment the chart installs and the Lease its
// leader holds, renewed 2s before fixedNow.
func operatorObjects() (*appsv1.Deployment, *coordinationv1.Lease) {
	labels := map[string]string{"app.kubernetes.io/name": "tokensync", "app.kubernetes.io/component": "manager", "app.kubernetes.io/instance": "tokensync"}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "tokensync", Namespace: defaultOperatorNamespace, Labels: labels},
		Spec: appsv1.DeploymentSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{
			{Name: "manager", Image: "registry.example.com/tokensync:v0.1.0"},
		}}}},
	}
	holder := "tokensync-6d4f9c7b8-x2x9q_3f1c8e2a-5b7d-4c1e-9a0f-2d6b8c4e1a7f"
	renewed := metav1.NewMicroTime(fixedNow.Add(-2 * time.Second))
	l := &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: defaultLease, Namespace: defaultOperatorNamespace},
		Spec:       coordinationv1.LeaseSpec{HolderIdentity: &holder, RenewTime: &renewed},
	}
	return d, l
}

// TestVersionOutput: the plugin's version, the operator's image and its
// leader (testdata/version.golden); without them, the plugin's version
// and what could not be read.
func TestVersionOutput(t *testing.T) {
	d, l := operatorObjects()
	out, code := runFake(t, fakeAPI(interceptor.Funcs{}, d, l), "version")
	if code != 0 {
		t.Errorf("exit %d", code)
	}
	golden(t, "version", out)

	out, code = runFake(t, fakeAPI(interceptor.Funcs{}), "version")
	if code != 0 {
		t.Errorf("exit %d without an operator", code)
	}
	golden(t, "version-no-operator", out)
}
