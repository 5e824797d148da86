package chart

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
	"github.com/tokensync/tokensync/providers/providertest"
)

// The CRDs, by name, and the file of config/crd/bases each comes from.
var crdSources = map[string]string{
	"tokenrequests.tokensync.io":        "tokensync.io_tokenrequests.yaml",
	"clustertokenrequests.tokensync.io": "tokensync.io_clustertokenrequests.yaml",
}

// sourceCRD is a CRD of config/crd/bases.
func sourceCRD(t *testing.T, file string) *unstructured.Unstructured {
	t.Helper()
	return &unstructured.Unstructured{Object: readYAML(t, "config", "crd", "bases", file)}
}

// sameJSON tells whether two values encode to the same JSON (so that an
// int64 from the API server equals the float64 of a decoded file).
func sameJSON(t *testing.T, a, b any) bool {
	t.Helper()
	ja, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	jb, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Equal(ja, jb)
}

// TestChartRendersTheCRDs: the chart renders each CRD of config/crd/bases
// from templates/crds.yaml, with its spec unchanged, the release's labels
// and, with crds.keep (the default), helm.sh/resource-policy: keep;
// crds.enabled=false renders none.
func TestChartRendersTheCRDs(t *testing.T) {
	cases := []struct {
		name     string
		values   map[string]any
		wantCRDs bool
		wantKeep bool
	}{
		{"defaults", nil, true, true},
		{"crds.keep false", map[string]any{"crds": map[string]any{"enabled": true, "keep": false}}, true, false},
		{"crds.enabled false", map[string]any{"crds": map[string]any{"enabled": false, "keep": true}}, false, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := mustRender(t, "tokensync", releaseNamespace, withImage(c.values))
			crds := r.find("CustomResourceDefinition")
			if !c.wantCRDs {
				if len(crds) != 0 {
					t.Errorf("%d CRDs rendered with crds.enabled=false", len(crds))
				}
				return
			}
			if len(crds) != len(crdSources) {
				t.Fatalf("%d CRDs rendered, want %d", len(crds), len(crdSources))
			}
			for _, crd := range crds {
				src := sourceCRD(t, crdSources[crd.GetName()])
				if !sameJSON(t, crd.Object["spec"], src.Object["spec"]) {
					t.Errorf("CRD %s: spec differs from config/crd/bases/%s", crd.GetName(), crdSources[crd.GetName()])
				}
				for k, v := range src.GetAnnotations() {
					if crd.GetAnnotations()[k] != v {
						t.Errorf("CRD %s lacks the annotation %s: %s of its source", crd.GetName(), k, v)
					}
				}
				if got := crd.GetAnnotations()["helm.sh/resource-policy"]; (got == "keep") != c.wantKeep {
					t.Errorf("CRD %s: helm.sh/resource-policy %q, want keep: %v", crd.GetName(), got, c.wantKeep)
				}
				if l := crd.GetLabels(); l["app.kubernetes.io/managed-by"] != "Helm" || l["app.kubernetes.io/instance"] != "tokensync" {
					t.Errorf("CRD %s labels %v: want the chart's", crd.GetName(), l)
				}
			}
			dryRunApply(t, crds)
		})
	}
}

// TestCRDsUpgradeWithTheReleaseAndOutliveIt, on a control plane of its own
// (it installs and deletes CRDs), with Helm's own install, upgrade and
// uninstall:
//   - a release installed from the chart of fa45ebb (its CRDs from crds/,
//     not owned by the release) upgrades to this chart with one `helm upgrade
//     --take-ownership`, which applies this tree's CRDs; without the flag
//     Helm refuses, naming a CRD; later upgrades need no flag;
//   - helm uninstall leaves the CRDs, the TokenRequests and the
//     ClusterTokenRequests (the control plane runs no garbage collector: a
//     deleted CRD would show as deleted objects, not deleted Secrets);
//   - make undeploy removes the operator deployed by config/default and
//     keeps the CRDs and the TokenRequests; make uninstall lists the
//     TokenRequests and ClusterTokenRequests, says their Secrets go with
//     them, and deletes the CRDs.
func TestCRDsUpgradeWithTheReleaseAndOutliveIt(t *testing.T) {
	cp := startControlPlane(t)
	ctx := context.Background()
	const release = "tokensync"
	helm := newHelmClient(t, cp.kubeconfig, releaseNamespace)
	crdGVK := schema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"}
	getCRD := func(name string) (*unstructured.Unstructured, error) {
		crd := &unstructured.Unstructured{}
		crd.SetGroupVersionKind(crdGVK)
		return crd, cp.client.Get(ctx, types.NamespacedName{Name: name}, crd)
	}
	mustGetCRD := func(name string) *unstructured.Unstructured {
		t.Helper()
		crd, err := getCRD(name)
		if err != nil {
			t.Fatalf("CRD %s: %v", name, err)
		}
		return crd
	}
	sameVersions := func(crd *unstructured.Unstructured) bool {
		return sameJSON(t, crd.Object["spec"].(map[string]any)["versions"],
			sourceCRD(t, crdSources[crd.GetName()]).Object["spec"].(map[string]any)["versions"])
	}

	old := loadChartFrom(t, filepath.Join("testdata", "chart-fa45ebb"))
	if err := helm.install(release, old, withImage(nil)); err != nil {
		t.Fatalf("helm install the chart of fa45ebb: %v", err)
	}
	changed := 0
	for name := range crdSources {
		crd := mustGetCRD(name)
		if crd.GetLabels()["app.kubernetes.io/managed-by"] == "Helm" {
			t.Errorf("CRD %s from the crds/ of fa45ebb is owned by the release: %v", name, crd.GetLabels())
		}
		if !sameVersions(crd) {
			changed++
		}
	}
	if changed == 0 {
		t.Fatal("the CRDs of fa45ebb are this tree's: the upgrade would show nothing")
	}

	// What must outlive the release.
	for _, ns := range []string{"team-a", "platform"} {
		if err := cp.client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			t.Fatal(err)
		}
	}
	tr := &tokensyncv1alpha1.TokenRequest{
		ObjectMeta: metav1.ObjectMeta{Name: "partner", Namespace: "team-a"},
		Spec: tokensyncv1alpha1.TokenRequestSpec{
			LoginSpec:            tokensyncv1alpha1.LoginSpec{Provider: providertest.Partner, Endpoint: "https://partner.example.com"},
			CredentialsSecretRef: tokensyncv1alpha1.SecretReference{Name: "partner-creds"},
			SecretName:           "partner-token",
		},
	}
	ctr := &tokensyncv1alpha1.ClusterTokenRequest{
		ObjectMeta: metav1.ObjectMeta{Name: "shared"},
		Spec: tokensyncv1alpha1.ClusterTokenRequestSpec{
			LoginSpec:            tokensyncv1alpha1.LoginSpec{Provider: providertest.Partner, Endpoint: "https://partner.example.com"},
			CredentialsSecretRef: tokensyncv1alpha1.NamespacedSecretReference{Name: "partner-creds", Namespace: "platform"},
			SecretName:           "shared-token",
			Namespaces:           []string{"team-a"},
		},
	}
	for _, o := range []client.Object{tr, ctr} {
		if err := cp.client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}

	current := loadChart(t)
	err := helm.upgrade(release, current, withImage(nil), false)
	if err == nil || !strings.Contains(err.Error(), "CustomResourceDefinition") {
		t.Fatalf("helm upgrade without --take-ownership: %v, want a refusal naming the CRDs (not the release's)", err)
	}
	if err := helm.upgrade(release, current, withImage(nil), true); err != nil {
		t.Fatalf("helm upgrade --take-ownership: %v", err)
	}
	for name := range crdSources {
		crd := mustGetCRD(name)
		if !sameVersions(crd) {
			t.Errorf("CRD %s after helm upgrade --take-ownership: versions differ from config/crd/bases/%s", name, crdSources[name])
		}
		a := crd.GetAnnotations()
		if crd.GetLabels()["app.kubernetes.io/managed-by"] != "Helm" || a["meta.helm.sh/release-name"] != release || a["meta.helm.sh/release-namespace"] != releaseNamespace {
			t.Errorf("CRD %s is not the release's after the upgrade: labels %v, annotations %v", name, crd.GetLabels(), a)
		}
		if a["helm.sh/resource-policy"] != "keep" {
			t.Errorf("CRD %s: no helm.sh/resource-policy: keep", name)
		}
	}
	if err := helm.upgrade(release, current, withImage(map[string]any{"replicaCount": 3}), false); err != nil {
		t.Fatalf("a second helm upgrade, without --take-ownership: %v", err)
	}

	if err := helm.uninstall(release); err != nil {
		t.Fatalf("helm uninstall: %v", err)
	}
	deployment := &appsv1.Deployment{}
	if err := cp.client.Get(ctx, types.NamespacedName{Namespace: releaseNamespace, Name: "tokensync"}, deployment); !apierrors.IsNotFound(err) {
		t.Errorf("the Deployment after helm uninstall: %v, want not found", err)
	}
	outlive := func(after string) {
		t.Helper()
		for name := range crdSources {
			crd, err := getCRD(name)
			if err != nil || crd.GetDeletionTimestamp() != nil {
				t.Errorf("CRD %s after %s: %v, deleted at %v", name, after, err, crd.GetDeletionTimestamp())
			}
		}
		for _, o := range []client.Object{&tokensyncv1alpha1.TokenRequest{}, &tokensyncv1alpha1.ClusterTokenRequest{}} {
			key := types.NamespacedName{Namespace: "team-a", Name: "partner"}
			if _, ok := o.(*tokensyncv1alpha1.ClusterTokenRequest); ok {
				key = types.NamespacedName{Name: "shared"}
			}
			if err := cp.client.Get(ctx, key, o); err != nil || o.GetDeletionTimestamp() != nil {
				t.Errorf("%T %s after %s: %v, deleted at %v", o, key, after, err, o.GetDeletionTimestamp())
			}
		}
	}
	outlive("helm uninstall")

	// The kustomize layout: config/default deployed (as make deploy does,
	// image aside), then make undeploy.
	kubectl(t, cp, "apply", "-k", repoFile("config", "default"))
	if err := cp.client.Get(ctx, types.NamespacedName{Namespace: releaseNamespace, Name: "tokensync-controller-manager"}, deployment); err != nil {
		t.Fatalf("config/default's Deployment: %v", err)
	}
	makeTarget(t, cp, "undeploy")
	if err := cp.client.Get(ctx, types.NamespacedName{Namespace: releaseNamespace, Name: "tokensync-controller-manager"}, deployment); !apierrors.IsNotFound(err) {
		t.Errorf("the Deployment after make undeploy: %v, want not found", err)
	}
	ns := &corev1.Namespace{}
	if err := cp.client.Get(ctx, types.NamespacedName{Name: releaseNamespace}, ns); err != nil || ns.DeletionTimestamp != nil {
		t.Errorf("namespace %s after make undeploy: %v, deleted at %v", releaseNamespace, err, ns.DeletionTimestamp)
	}
	outlive("make undeploy")

	out := makeTarget(t, cp, "uninstall")
	t.Logf("make uninstall:\n%s", out)
	for _, want := range []string{"tokenrequests.tokensync.io", "clustertokenrequests.tokensync.io",
		"team-a/partner: Secret team-a/partner-token is deleted", "shared: Secret shared-token is deleted from every namespace",
		"garbage collection"} {
		if !strings.Contains(out, want) {
			t.Errorf("make uninstall did not say %q:\n%s", want, out)
		}
	}
	for name := range crdSources {
		if _, err := getCRD(name); !apierrors.IsNotFound(err) {
			t.Errorf("CRD %s after make uninstall: %v, want not found", name, err)
		}
	}
}

// kubectl runs kubectl against the control plane.
func kubectl(t *testing.T, cp *controlPlane, args ...string) string {
	t.Helper()
	return runAgainst(t, cp, "kubectl", args...)
}

// makeTarget runs a target of the repository's Makefile against the control
// plane, without a terminal, and returns what it printed.
func makeTarget(t *testing.T, cp *controlPlane, target string) string {
	t.Helper()
	return runAgainst(t, cp, "make", "--no-print-directory", "-C", repoFile(), target)
}

// runAgainst runs a command with the control plane's kubeconfig and no
// terminal (make uninstall does not ask), for at most two minutes: a
// kubectl delete that waits for what this control plane cannot finish (a
// namespace: it has no namespace controller) fails instead of hanging. The
// command and its children (make's kubectl) are killed together.
func runAgainst(t *testing.T, cp *controlPlane, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+cp.kubeconfig)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v (%v)\n%s", name, strings.Join(args, " "), err, ctx.Err(), out)
	}
	return string(out)
}
