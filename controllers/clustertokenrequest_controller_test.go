package controllers

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
	"github.com/tokensync/tokensync/providers/providertest"
)

// clusterEnv is a ClusterTokenRequest test: its own namespaces, fake
// providers, and the one manager in the process that serves
// ClusterTokenRequests (the others watch namespaces of their own).
type clusterEnv struct {
	t          *testing.T
	fake       *providertest.Server
	credsNS    string
	namespaces []string
	// label selects a namespace for the test's ClusterTokenRequests.
	label string
	stop  func()
}

func newClusterEnv(t *testing.T, n int) *clusterEnv {
	t.Helper()
	c := &clusterEnv{t: t, fake: providertest.Start(t), credsNS: newNamespace(t)}
	c.label = "tokensync-test/" + c.credsNS
	for range n {
		c.namespaces = append(c.namespaces, newNamespace(t))
	}
	c.fake.SetValid(providertest.Partner, partnerCreds)
	c.start()
	return c
}

func (c *clusterEnv) start() {
	c.t.Helper()
	_, _, c.stop = startManager(c.t, managerOptions{namespaces: append([]string{c.credsNS}, c.namespaces...), clusterOnly: true})
}

func (c *clusterEnv) ctx() context.Context { return context.Background() }

// selectNS labels (or, with false, unlabels) namespace i for the selector.
func (c *clusterEnv) selectNS(i int, on bool) {
	c.t.Helper()
	eventually(c.t, readyTimeout, func() error {
		ns := &corev1.Namespace{}
		if err := k8sClient.Get(c.ctx(), types.NamespacedName{Name: c.namespaces[i]}, ns); err != nil {
			return err
		}
		if ns.Labels == nil {
			ns.Labels = map[string]string{}
		}
		if on {
			ns.Labels[c.label] = "yes"
		} else {
			delete(ns.Labels, c.label)
		}
		return k8sClient.Update(c.ctx(), ns)
	})
}

func (c *clusterEnv) createCredentials(name string, labelled bool) {
	c.t.Helper()
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: c.credsNS}, StringData: partnerCreds}
	if labelled {
		s.Labels = credentialsLabels()
	}
	if err := k8sClient.Create(c.ctx(), s); err != nil {
		c.t.Fatal(err)
	}
}

func (c *clusterEnv) create(name, creds string, mut ...func(*tokensyncv1alpha1.ClusterTokenRequest)) {
	c.t.Helper()
	ctr := &tokensyncv1alpha1.ClusterTokenRequest{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: tokensyncv1alpha1.ClusterTokenRequestSpec{
			LoginSpec:            tokensyncv1alpha1.LoginSpec{Provider: providertest.Partner, Endpoint: c.fake.URL()},
			CredentialsSecretRef: tokensyncv1alpha1.NamespacedSecretReference{Name: creds, Namespace: c.credsNS},
			SecretName:           "shared-token",
			NamespaceSelector:    &metav1.LabelSelector{MatchLabels: map[string]string{c.label: "yes"}},
		},
	}
	for _, m := range mut {
		m(ctr)
	}
	if err := k8sClient.Create(c.ctx(), ctr); err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), ctr) })
}

func (c *clusterEnv) get(name string) *tokensyncv1alpha1.ClusterTokenRequest {
	c.t.Helper()
	ctr := &tokensyncv1alpha1.ClusterTokenRequest{}
	if err := k8sClient.Get(c.ctx(), types.NamespacedName{Name: name}, ctr); err != nil {
		c.t.Fatal(err)
	}
	return ctr
}

// waitFor waits until the ClusterTokenRequest's status passes check.
func (c *clusterEnv) waitFor(name string, check func(*tokensyncv1alpha1.ClusterTokenRequest) error) *tokensyncv1alpha1.ClusterTokenRequest {
	c.t.Helper()
	var ctr *tokensyncv1alpha1.ClusterTokenRequest
	eventually(c.t, readyTimeout, func() error {
		ctr = c.get(name)
		return check(ctr)
	})
	return ctr
}

// written checks Ready, with the namespaces selected and written.
func written(selected, written int32) func(*tokensyncv1alpha1.ClusterTokenRequest) error {
	return func(ctr *tokensyncv1alpha1.ClusterTokenRequest) error {
		c := meta.FindStatusCondition(ctr.Status.Conditions, tokensyncv1alpha1.ConditionReady)
		if c == nil || c.ObservedGeneration != ctr.Generation || ctr.Status.Namespaces.Selected != selected || ctr.Status.Namespaces.Written != written {
			return fmt.Errorf("Ready %+v, namespaces %+v; want %d selected, %d written", c, ctr.Status.Namespaces, selected, written)
		}
		if written == selected && c.Status != metav1.ConditionTrue {
			return fmt.Errorf("Ready %+v", c)
		}
		return nil
	}
}

// token is the token in namespace i's Secret ("" if none).
func (c *clusterEnv) token(i int) (string, *corev1.Secret) {
	s := &corev1.Secret{}
	if err := k8sClient.Get(c.ctx(), types.NamespacedName{Namespace: c.namespaces[i], Name: "shared-token"}, s); err != nil {
		return "", nil
	}
	return string(s.Data[tokensyncv1alpha1.SecretKeyToken]), s
}

// TestClusterTokenRequest: one login for every namespace selected; a
// namespace that starts to match gets the token with no login, one that
// stops matching loses its Secret; a foreign Secret in one namespace holds
// up no other; a refresh updates every Secret with one login; a restart
// costs none; unlabelled credentials send nothing. The only test with a
// manager that serves ClusterTokenRequests (they are cluster-scoped: two
// such managers would both serve every one).
func TestClusterTokenRequest(t *testing.T) {
	t.Parallel()
	c := newClusterEnv(t, 5)
	c.createCredentials("platform-partner", true)
	for i := range 3 {
		c.selectNS(i, true)
	}
	c.create("shared", "platform-partner")
	ctr := c.waitFor("shared", written(3, 3))
	if n := c.fake.Logins(providertest.Partner); n != 1 {
		t.Fatalf("%d logins for three namespaces, want 1", n)
	}
	first, _ := c.token(0)
	for i := range 3 {
		tok, s := c.token(i)
		if tok == "" || tok != first {
			t.Fatalf("namespace %d holds %q, want the one token", i, tok)
		}
		ref := metav1.GetControllerOf(s)
		if ref == nil || ref.Kind != "ClusterTokenRequest" || ref.UID != ctr.UID || !ptr.Deref(ref.BlockOwnerDeletion, false) {
			t.Errorf("namespace %d: owner %+v, want the ClusterTokenRequest as controller", i, ref)
		}
	}
	checkClusterPrinterColumns(t, "shared")
	if got := c.kstatus("shared"); got != kstatusCurrent {
		t.Errorf("kstatus %s of a Ready ClusterTokenRequest, want Current", got)
	}

	t.Run("a namespace that starts to match gets its Secret without a login", func(t *testing.T) {
		start := time.Now()
		c.selectNS(3, true)
		c.waitFor("shared", written(4, 4))
		if tok, _ := c.token(3); tok != first {
			t.Fatalf("namespace 3 holds %q", tok)
		}
		if took := time.Since(start); took > 20*time.Second {
			t.Errorf("the new namespace's Secret took %s", took.Round(time.Second))
		}
		if n := c.fake.Logins(providertest.Partner); n != 1 {
			t.Errorf("%d logins, want still 1", n)
		}
	})

	t.Run("a namespace that stops matching loses its Secret", func(t *testing.T) {
		c.selectNS(0, false)
		c.waitFor("shared", written(3, 3))
		eventually(t, readyTimeout, func() error {
			if _, s := c.token(0); s != nil {
				return fmt.Errorf("namespace 0 still holds the Secret")
			}
			return nil
		})
	})

	t.Run("a foreign Secret in one namespace is reported there and holds up no other", func(t *testing.T) {
		foreign := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "shared-token", Namespace: c.namespaces[4]}, StringData: map[string]string{"mine": "yes"}}
		if err := k8sClient.Create(c.ctx(), foreign); err != nil {
			t.Fatal(err)
		}
		c.selectNS(4, true)
		ctr := c.waitFor("shared", func(ctr *tokensyncv1alpha1.ClusterTokenRequest) error {
			if len(ctr.Status.FailedNamespaces) != 1 || ctr.Status.FailedNamespaces[0].Name != c.namespaces[4] ||
				ctr.Status.FailedNamespaces[0].Reason != tokensyncv1alpha1.ReasonSecretConflict || ctr.Status.Namespaces != (tokensyncv1alpha1.NamespaceCounts{Selected: 4, Written: 3, Failed: 1}) {
				return fmt.Errorf("failed namespaces %+v, counts %+v", ctr.Status.FailedNamespaces, ctr.Status.Namespaces)
			}
			return nil
		})
		if !meta.IsStatusConditionTrue(ctr.Status.Conditions, tokensyncv1alpha1.ConditionStalled) {
			t.Errorf("not Stalled: a person must remove the foreign Secret")
		}
		if got := c.kstatus("shared"); got != kstatusFailed {
			t.Errorf("kstatus %s with a namespace in conflict, want Failed", got)
		}
		for i := 1; i <= 3; i++ {
			if tok, _ := c.token(i); tok != first {
				t.Errorf("namespace %d lost its token", i)
			}
		}
		if s := &(corev1.Secret{}); k8sClient.Get(c.ctx(), client.ObjectKeyFromObject(foreign), s) == nil && string(s.Data["mine"]) != "yes" {
			t.Error("the foreign Secret was touched")
		}
		// Deleting it lets the namespace be written at once.
		if err := k8sClient.Delete(c.ctx(), foreign); err != nil {
			t.Fatal(err)
		}
		c.waitFor("shared", written(4, 4))
	})

	t.Run("a token edited by hand is put back without a login", func(t *testing.T) {
		eventually(t, readyTimeout, func() error {
			_, s := c.token(2)
			s.Data[tokensyncv1alpha1.SecretKeyToken] = []byte("edited")
			return k8sClient.Update(c.ctx(), s)
		})
		eventually(t, readyTimeout, func() error {
			if tok, _ := c.token(2); tok != first {
				return fmt.Errorf("namespace 2 holds %q", tok)
			}
			return nil
		})
		if n := c.fake.Logins(providertest.Partner); n != 1 {
			t.Errorf("%d logins, want still 1", n)
		}
	})

	t.Run("a refresh updates every Secret with one login", func(t *testing.T) {
		patchCluster(t, "shared", func(ctr *tokensyncv1alpha1.ClusterTokenRequest) {
			ctr.Annotations = map[string]string{tokensyncv1alpha1.AnnotationForceRefresh: "1"}
		})
		c.waitFor("shared", func(ctr *tokensyncv1alpha1.ClusterTokenRequest) error {
			if ctr.Status.LastForceRefresh != "1" {
				return fmt.Errorf("not refreshed yet")
			}
			return written(4, 4)(ctr)
		})
		if n := c.fake.Logins(providertest.Partner); n != 2 {
			t.Errorf("%d logins, want 2", n)
		}
		second, _ := c.token(1)
		if second == first {
			t.Fatal("the token did not change")
		}
		for i := 1; i <= 4; i++ {
			if tok, _ := c.token(i); tok != second {
				t.Errorf("namespace %d holds the old token", i)
			}
		}
	})

	t.Run("a restart costs no login and no write", func(t *testing.T) {
		logins := c.fake.Logins(providertest.Partner)
		_, s := c.token(1)
		c.stop()
		c.start()
		consistently(t, 5*time.Second, func() error {
			if n := c.fake.Logins(providertest.Partner); n != logins {
				return fmt.Errorf("%d logins after the restart", n-logins)
			}
			if _, now := c.token(1); now == nil || now.ResourceVersion != s.ResourceVersion {
				return fmt.Errorf("the Secret was written after the restart")
			}
			return nil
		})
		c.waitFor("shared", written(4, 4))
	})

	t.Run("an unlabelled credentials Secret: nothing sent, CredentialsNotAllowed", func(t *testing.T) {
		attempts := c.fake.Attempts(providertest.Partner)
		c.createCredentials("unlabelled", false)
		c.create("unlabelled-creds", "unlabelled", func(ctr *tokensyncv1alpha1.ClusterTokenRequest) {
			ctr.Spec.NamespaceSelector, ctr.Spec.Namespaces, ctr.Spec.SecretName = nil, []string{c.namespaces[0]}, "other-token"
		})
		ctr := c.waitFor("unlabelled-creds", func(ctr *tokensyncv1alpha1.ClusterTokenRequest) error {
			r := meta.FindStatusCondition(ctr.Status.Conditions, tokensyncv1alpha1.ConditionReady)
			if r == nil || r.Reason != tokensyncv1alpha1.ReasonCredentialsNotAllowed {
				return fmt.Errorf("Ready %+v", r)
			}
			return nil
		})
		if !meta.IsStatusConditionTrue(ctr.Status.Conditions, tokensyncv1alpha1.ConditionStalled) {
			t.Error("not Stalled")
		}
		if n := c.fake.Attempts(providertest.Partner); n != attempts {
			t.Errorf("%d requests with an unlabelled Secret", n-attempts)
		}
		s := &corev1.Secret{}
		if err := k8sClient.Get(c.ctx(), types.NamespacedName{Namespace: c.namespaces[0], Name: "other-token"}, s); !apierrors.IsNotFound(err) {
			t.Errorf("a Secret was written (%v)", err)
		}
	})

	t.Run("a tenant who edits its copy changes nothing elsewhere, and it is put back", func(t *testing.T) {
		tenant := tenantClient(t, "tenant-of-"+c.namespaces[1], c.namespaces[1])
		held := &corev1.Secret{}
		heldKey := types.NamespacedName{Namespace: operatorNamespace, Name: HeldSecretName("shared")}
		if err := k8sClient.Get(c.ctx(), heldKey, held); err != nil {
			t.Fatalf("the held Secret in the operator's namespace: %v", err)
		}
		if err := tenant.Get(c.ctx(), heldKey, &corev1.Secret{}); !apierrors.IsForbidden(err) {
			t.Fatalf("the tenant reads the held Secret (%v), want Forbidden", err)
		}
		current := string(held.Data[tokensyncv1alpha1.SecretKeyToken])
		_, other := c.token(2)
		expiresAt := c.get("shared").Status.ExpiresAt
		logins := c.fake.Logins(providertest.Partner)

		eventually(t, readyTimeout, func() error {
			s := &corev1.Secret{}
			if err := tenant.Get(c.ctx(), types.NamespacedName{Namespace: c.namespaces[1], Name: "shared-token"}, s); err != nil {
				return err
			}
			s.Data[tokensyncv1alpha1.SecretKeyToken] = []byte("FORGED-TOKEN")
			s.Data["extra"] = []byte("FORGED-EXTRA")
			s.Annotations[annotationTokenFingerprint] = "00000000:x"
			s.Annotations[tokensyncv1alpha1.AnnotationExpiresAt] = "2099-01-01T00:00:00Z"
			return tenant.Update(c.ctx(), s)
		})
		edited := time.Now()
		eventually(t, 5*time.Second, func() error {
			tok, s := c.token(1)
			if tok != current || s.Data["extra"] != nil || s.Annotations[tokensyncv1alpha1.AnnotationExpiresAt] != held.Annotations[tokensyncv1alpha1.AnnotationExpiresAt] ||
				s.Annotations[annotationTokenFingerprint] != held.Annotations[annotationTokenFingerprint] {
				return fmt.Errorf("the edited copy is not put back: token %q, extra %q, annotations %v", tok, s.Data["extra"], s.Annotations)
			}
			return nil
		})
		t.Logf("the edited copy was put back in %s", time.Since(edited).Round(time.Millisecond))
		consistently(t, 3*time.Second, func() error {
			if _, s := c.token(2); s == nil || s.ResourceVersion != other.ResourceVersion {
				return fmt.Errorf("the other namespace's copy changed")
			}
			if got := c.get("shared").Status.ExpiresAt; !got.Equal(expiresAt) {
				return fmt.Errorf("status.expiresAt %v, want %v", got, expiresAt)
			}
			if n := c.fake.Logins(providertest.Partner); n != logins {
				return fmt.Errorf("%d logins for an edited copy", n-logins)
			}
			return nil
		})
		for i := 1; i <= 4; i++ {
			if _, s := c.token(i); s.Annotations[annotationCredentialsFingerprint] != "" || s.Annotations[annotationCredentialsVersion] != "" {
				t.Errorf("namespace %d's copy carries the credentials' bookkeeping: %v", i, s.Annotations)
			}
		}
	})

	t.Run("deleting the held Secret costs one login and rewrites every copy", func(t *testing.T) {
		logins := c.fake.Logins(providertest.Partner)
		before, _ := c.token(1)
		heldKey := types.NamespacedName{Namespace: operatorNamespace, Name: HeldSecretName("shared")}
		if err := k8sClient.Delete(c.ctx(), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: heldKey.Namespace, Name: heldKey.Name}}); err != nil {
			t.Fatal(err)
		}
		eventually(t, readyTimeout, func() error {
			held := &corev1.Secret{}
			if err := k8sClient.Get(c.ctx(), heldKey, held); err != nil {
				return err
			}
			now := string(held.Data[tokensyncv1alpha1.SecretKeyToken])
			if now == before {
				return fmt.Errorf("the held Secret holds the old token")
			}
			for i := 1; i <= 4; i++ {
				if tok, _ := c.token(i); tok != now {
					return fmt.Errorf("namespace %d holds another token", i)
				}
			}
			return nil
		})
		if n := c.fake.Logins(providertest.Partner); n != logins+1 {
			t.Errorf("%d logins, want 1", n-logins)
		}
	})

	t.Run("a TokenRequest naming the same Secret reports SecretConflict there", func(t *testing.T) {
		e := &env{t: t, ns: c.namespaces[1], fake: c.fake}
		e.start() // a manager of that namespace's own: it does not serve ClusterTokenRequests
		e.createSecret("creds", partnerCreds)
		e.createTokenRequest("late", providertest.Partner, "creds", func(tr *tokensyncv1alpha1.TokenRequest) { tr.Spec.SecretName = "shared-token" })
		e.waitCondition("late", metav1.ConditionFalse, tokensyncv1alpha1.ReasonSecretConflict)
		if _, s := c.token(1); metav1.GetControllerOf(s).Kind != "ClusterTokenRequest" {
			t.Error("the TokenRequest took the Secret from its first owner")
		}
	})
}

func patchCluster(t *testing.T, name string, mut func(*tokensyncv1alpha1.ClusterTokenRequest)) {
	t.Helper()
	eventually(t, readyTimeout, func() error {
		ctr := &tokensyncv1alpha1.ClusterTokenRequest{}
		if err := k8sClient.Get(context.Background(), types.NamespacedName{Name: name}, ctr); err != nil {
			return err
		}
		mut(ctr)
		err := k8sClient.Update(context.Background(), ctr)
		if apierrors.IsConflict(err) {
			return err
		}
		return err
	})
}

// checkClusterPrinterColumns checks kubectl's columns for a Ready
// ClusterTokenRequest: provider, namespaces written and selected, expiry,
// reason.
func checkClusterPrinterColumns(t *testing.T, name string) {
	t.Helper()
	table := printerTableOf(t, "", "clustertokenrequests")
	var names []string
	for _, c := range table.ColumnDefinitions {
		names = append(names, c.Name)
	}
	want := []string{"Name", "Provider", "Secret", "Written", "Selected", "Ready", "Expires", "Reason", "Age"}
	if fmt.Sprint(names) != fmt.Sprint(want) {
		t.Fatalf("columns %v, want %v", names, want)
	}
	for _, row := range table.Rows {
		if row.Cells[0] != name {
			continue
		}
		if row.Cells[1] != providertest.Partner || row.Cells[3] != float64(3) || row.Cells[4] != float64(3) || row.Cells[5] != "True" || row.Cells[7] != "TokenIssued" {
			t.Errorf("row %v", row.Cells)
		}
		return
	}
	t.Errorf("no row for %s", name)
}

// kstatus is what kstatus (Flux, cli-utils) reads of a ClusterTokenRequest.
func (c *clusterEnv) kstatus(name string) string {
	c.t.Helper()
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(tokensyncv1alpha1.GroupVersion.WithKind("ClusterTokenRequest"))
	if err := k8sClient.Get(c.ctx(), types.NamespacedName{Name: name}, u); err != nil {
		c.t.Fatal(err)
	}
	return kstatusOfObject(c.t, u).Status
}

// tenantClient is a client of user, bound to the edit ClusterRole in
// namespace only, as a tenant of a namespace a ClusterTokenRequest selects
// is; the test's admin impersonates it. envtest runs no controller manager,
// so the edit ClusterRole is never aggregated: its rules are made here from
// the roles it aggregates (system:aggregate-to-edit and -view), as the
// aggregation controller would.
func tenantClient(t *testing.T, user, namespace string) client.Client {
	t.Helper()
	edit := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "tenant-edit-" + namespace}}
	for _, name := range []string{"system:aggregate-to-edit", "system:aggregate-to-view"} {
		part := &rbacv1.ClusterRole{}
		if err := k8sClient.Get(context.Background(), types.NamespacedName{Name: name}, part); err != nil {
			t.Fatalf("ClusterRole %s: %v", name, err)
		}
		edit.Rules = append(edit.Rules, part.Rules...)
	}
	if err := k8sClient.Create(context.Background(), edit); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), edit) })
	rb := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "tenant-edit", Namespace: namespace},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: edit.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}},
	}
	if err := k8sClient.Create(context.Background(), rb); err != nil {
		t.Fatal(err)
	}
	as := rest.CopyConfig(cfg)
	as.Impersonate = rest.ImpersonationConfig{UserName: user}
	c, err := client.New(as, client.Options{Scheme: testScheme})
	if err != nil {
		t.Fatal(err)
	}
	return c
}
