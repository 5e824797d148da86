package controllers

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os/exec"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
	"github.com/tokensync/tokensync/providers/providertest"
)

// The manager's identity as config/default deploys it.
const (
	managerServiceAccount = "tokensync-controller-manager"
	managerClusterRole    = "tokensync-manager-role"
)

// renderedRBAC returns the RBAC objects (ServiceAccount, Roles, Bindings)
// that config/default deploys, rendered with kustomize.
func renderedRBAC(t *testing.T) []*unstructured.Unstructured {
	t.Helper()
	out, err := exec.Command("kubectl", "kustomize", "../config/default").Output()
	if err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			t.Fatalf("kubectl kustomize ../config/default: %v: %s", err, exit.Stderr)
		}
		t.Fatalf("kubectl kustomize ../config/default (kubectl is needed to render the deployed RBAC): %v", err)
	}
	var objs []*unstructured.Unstructured
	dec := yaml.NewYAMLOrJSONDecoder(bytes.NewReader(out), 4096)
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			t.Fatalf("decode the rendered manifests: %v", err)
		}
		switch u.GetKind() {
		case "ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding":
			objs = append(objs, u)
		}
	}
	return objs
}

// applyRBAC creates objs on the shared API server (once per process).
func applyRBAC(t *testing.T, objs []*unstructured.Unstructured) {
	t.Helper()
	for _, o := range objs {
		if err := k8sClient.Create(context.Background(), o.DeepCopy()); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatalf("create %s %s: %v", o.GetKind(), o.GetName(), err)
		}
	}
}

// serviceAccountConfig is a client config authenticating as a service
// account of the operator's namespace, with no other rights than RBAC gives it.
func serviceAccountConfig(t *testing.T, name string) *rest.Config {
	t.Helper()
	user, err := testEnv.AddUser(envtest.User{
		Name:   "system:serviceaccount:" + operatorNamespace + ":" + name,
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + operatorNamespace, "system:authenticated"},
	}, nil)
	if err != nil {
		t.Fatalf("add user %s: %v", name, err)
	}
	return user.Config()
}

// TestDeployedRBACOnHardenedAPIServer runs the manager as its own
// ServiceAccount with only the RBAC rendered from config/default, with
// leader election, on an API server with OwnerReferencesPermissionEnforcement
// (as OpenShift runs): every provider's token lands, and a failure reaches
// the status and a Warning event. A copy of the role without update on
// tokenrequests/finalizers shows what the test guards against: every Secret
// write refused, reported as SecretWriteFailed, after a single login.
func TestDeployedRBACOnHardenedAPIServer(t *testing.T) {
	t.Parallel()
	objs := renderedRBAC(t)
	applyRBAC(t, objs)

	e := &env{t: t, ns: newNamespace(t), fake: providertest.Start(t)}
	e.fake.SetValid(providertest.Partner, partnerCreds)
	mgr, _, _ := startManager(t, managerOptions{
		cfg: serviceAccountConfig(t, managerServiceAccount), namespaces: []string{e.ns},
		leaderID: "tokensync-" + e.ns, leaderNamespace: operatorNamespace,
	})
	select {
	case <-mgr.Elected():
	case <-time.After(readyTimeout):
		t.Fatal("the manager was not elected leader with the deployed Role for Leases")
	}

	for _, p := range []string{providertest.AML, providertest.AmpliFi, providertest.Partner} {
		e.createSecret(p+"-creds", credsFor(p))
		e.createTokenRequest(p, p, p+"-creds")
	}
	for _, p := range []string{providertest.AML, providertest.AmpliFi, providertest.Partner} {
		tr := e.waitReady(p)
		s, err := e.secret(p)
		if err != nil {
			t.Fatal(err)
		}
		if !ownerIsController(s, tr) || !ptr.Deref(s.OwnerReferences[0].BlockOwnerDeletion, false) {
			t.Errorf("%s: Secret owner references %+v, want the TokenRequest as controller with blockOwnerDeletion", p, s.OwnerReferences)
		}
	}

	e.createSecret("wrong-creds", map[string]string{"accessKey": "ak-1", "secret": "not-it"})
	e.createTokenRequest("wrong", providertest.Partner, "wrong-creds")
	e.waitCondition("wrong", metav1.ConditionFalse, tokensyncv1alpha1.ReasonAuthenticationFailed)
	e.waitEvent("wrong", "Warning/AuthenticationFailed")

	t.Run("without update on tokenrequests/finalizers", func(t *testing.T) {
		const name = "tokensync-no-finalizers"
		var crippled []*unstructured.Unstructured
		for _, o := range objs {
			switch {
			case o.GetKind() == "ClusterRole" && o.GetName() == managerClusterRole:
				role := o.DeepCopy()
				role.SetName(name)
				// The rule may share its verbs with other resources
				// (status: update): only the finalizers go.
				rules, _, _ := unstructured.NestedSlice(role.Object, "rules")
				var kept []any
				removed := false
				for _, r := range rules {
					rule := r.(map[string]any)
					var resources []any
					for _, res := range rule["resources"].([]any) {
						if res == "tokenrequests/finalizers" {
							removed = true
							continue
						}
						resources = append(resources, res)
					}
					if len(resources) > 0 {
						rule["resources"] = resources
						kept = append(kept, rule)
					}
				}
				if !removed {
					t.Fatal("the deployed ClusterRole has no tokenrequests/finalizers rule to remove")
				}
				_ = unstructured.SetNestedSlice(role.Object, kept, "rules")
				crippled = append(crippled, role)
			case o.GetKind() == "ServiceAccount":
				sa := o.DeepCopy()
				sa.SetName(name)
				crippled = append(crippled, sa)
			}
		}
		binding := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
			"metadata": map[string]any{"name": name},
			"roleRef":  map[string]any{"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
			"subjects": []any{map[string]any{"kind": "ServiceAccount", "name": name, "namespace": operatorNamespace}},
		}}
		applyRBAC(t, append(crippled, binding))

		c := e.in(t)
		c.ns, c.fake = newNamespace(t), providertest.Start(t)
		startManager(t, managerOptions{cfg: serviceAccountConfig(t, name), namespaces: []string{c.ns}})
		c.createSecret("creds", partnerCreds)
		c.createTokenRequest("refused", providertest.Partner, "creds")
		tr := c.waitCondition("refused", metav1.ConditionFalse, tokensyncv1alpha1.ReasonSecretWriteFailed)
		if msg := readyCondition(tr).Message; !strings.Contains(msg, "blockOwnerDeletion") {
			t.Errorf("message %q does not carry the API server's reason", msg)
		}
		time.Sleep(5 * time.Second) // the write is retried meanwhile; the login is not
		if n := c.fake.Logins(providertest.Partner); n != 1 {
			t.Errorf("%d logins while every write is refused, want 1", n)
		}
		if _, err := c.secret("refused"); !apierrors.IsNotFound(err) {
			t.Errorf("the Secret exists: %v", err)
		}
	})
}
