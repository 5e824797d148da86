package cli

import (
	"context"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
	"github.com/tokensync/tokensync/providers/providertest"
)

// TestRenewWait: renew --wait gets a new token and exits 0; asked again at
// once, it names the minimum login interval; a suspended TokenRequest and
// one whose provider is down are named with why.
func TestRenewWait(t *testing.T) {
	ns := newNamespace(t, "renew-wait")
	fake := providertest.Start(t)
	createCredentials(t, ns, "creds", credsFor(t, providertest.Partner))
	createTokenRequest(t, ns, "partner-token", providertest.Partner, fake.URL(), "creds")
	createTokenRequest(t, ns, "paused-token", providertest.Partner, fake.URL(), "creds", suspended)
	createTokenRequest(t, ns, "down-token", providertest.Partner, closedEndpoint(t), "creds")
	waitReady(t, ns, "partner-token", metav1.ConditionTrue, tokensyncv1alpha1.ReasonTokenIssued)
	waitReady(t, ns, "paused-token", metav1.ConditionFalse, tokensyncv1alpha1.ReasonSuspended)
	waitReady(t, ns, "down-token", metav1.ConditionFalse, tokensyncv1alpha1.ReasonProviderUnavailable)
	before := secretToken(t, ns, "partner-token")

	r := plugin(t, adminKubeconfig, "renew", "partner-token", "-n", ns, "--wait")
	wantExit(t, r, 0)
	wantIn(t, "renew --wait", r.stdout,
		"Requested a new token for TokenRequest "+ns+"/partner-token\n",
		"TokenRequest "+ns+"/partner-token has a new token, which expires in ")
	if after := secretToken(t, ns, "partner-token"); after == before || after == "" {
		t.Errorf("the Secret holds the same token after renew --wait")
	}

	// The login just made: the next may start 10s after it.
	r = plugin(t, adminKubeconfig, "renew", "partner-token", "-n", ns, "--wait", "--timeout", "2s")
	wantExit(t, r, 1)
	wantIn(t, "renew --wait right after a login", r.stderr,
		"TokenRequest "+ns+"/partner-token has no new token after 2s: waiting for the minimum login interval (10s by default) since the last login at ")

	start := time.Now()
	r = plugin(t, adminKubeconfig, "renew", "paused-token", "-n", ns, "--wait")
	wantExit(t, r, 1)
	wantIn(t, "renew --wait of a suspended TokenRequest", r.stderr,
		"TokenRequest "+ns+"/paused-token will not get a new token: it is suspended (spec.suspend is true)")
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("renew --wait of a suspended TokenRequest took %s: it cannot renew, so it need not wait", d)
	}

	r = plugin(t, adminKubeconfig, "renew", "down-token", "-n", ns, "--wait", "--timeout", "3s")
	wantExit(t, r, 1)
	wantIn(t, "renew --wait with the provider down", r.stderr,
		"TokenRequest "+ns+"/down-token has no new token after 3s: waiting for the provider: ")
}

// TestRenewSelector: renew -l touches exactly the TokenRequests selected,
// skips (and names) the one stopped after rejected credentials unless
// --force, and renew needs exactly one of NAMEs, --all and -l.
func TestRenewSelector(t *testing.T) {
	ns := newNamespace(t, "renew-selector")
	fake := providertest.Start(t)
	fake.SetValid(providertest.AML, map[string]string{"email": "someone@example.com", "password": "right"})
	createCredentials(t, ns, "creds", credsFor(t, providertest.Partner))
	createCredentials(t, ns, "wrong", credsFor(t, providertest.AML))
	teamA, teamB := map[string]string{"team": "a"}, map[string]string{"team": "b"}
	createTokenRequest(t, ns, "a1", providertest.Partner, fake.URL(), "creds", withLabels(teamA))
	createTokenRequest(t, ns, "a2", providertest.Partner, fake.URL(), "creds", withLabels(teamA))
	createTokenRequest(t, ns, "b1", providertest.Partner, fake.URL(), "creds", withLabels(teamB))
	createTokenRequest(t, ns, "rejected", providertest.AML, fake.URL(), "wrong", withLabels(teamA))
	for _, name := range []string{"a1", "a2", "b1"} {
		waitReady(t, ns, name, metav1.ConditionTrue, tokensyncv1alpha1.ReasonTokenIssued)
	}
	waitReady(t, ns, "rejected", metav1.ConditionFalse, tokensyncv1alpha1.ReasonAuthenticationFailed)

	r := plugin(t, adminKubeconfig, "renew", "-l", "team=a", "-n", ns)
	wantExit(t, r, 0)
	wantIn(t, "renew -l", r.stdout,
		"Requested a new token for TokenRequest "+ns+"/a1\n",
		"Requested a new token for TokenRequest "+ns+"/a2\n",
		"Skipped TokenRequest "+ns+"/rejected: stopped after the provider rejected its credentials")
	forced := forceRefreshed(t, ns, "a1", "a2", "b1", "rejected")
	if want := []string{"a1", "a2"}; strings.Join(forced, ",") != strings.Join(want, ",") {
		t.Errorf("renew -l team=a set the force-refresh annotation on %v, want %v", forced, want)
	}

	r = plugin(t, adminKubeconfig, "renew", "-l", "team=a", "-n", ns, "--force")
	wantExit(t, r, 0)
	wantIn(t, "renew -l --force", r.stdout, "Requested a new token for TokenRequest "+ns+"/rejected\n")
	if forced := forceRefreshed(t, ns, "rejected", "b1"); strings.Join(forced, ",") != "rejected" {
		t.Errorf("renew -l team=a --force: force-refreshed %v, want [rejected]", forced)
	}

	for _, args := range [][]string{
		{"renew", "-n", ns},
		{"renew", "a1", "--all", "-n", ns},
		{"renew", "a1", "-A"},
		{"renew", "--all", "-l", "team=a", "-n", ns},
	} {
		r := plugin(t, adminKubeconfig, args...)
		wantExit(t, r, 1)
		if !strings.Contains(r.stderr, "See 'kubectl tokensync renew --help'") {
			t.Errorf("%v: want a usage error:\n%s", args, r)
		}
	}
	r = plugin(t, adminKubeconfig, "renew", "-l", "team=nobody", "-n", ns)
	wantExit(t, r, 1)
	wantIn(t, "renew -l matching nothing", r.stderr, "no TokenRequests found in namespace "+ns+" matching team=nobody: nothing to renew")
}

// forceRefreshed names those of the TokenRequests that carry the
// force-refresh annotation.
func forceRefreshed(t *testing.T, ns string, names ...string) []string {
	t.Helper()
	var out []string
	for _, name := range names {
		if _, ok := tokenRequest(t, ns, name).Annotations[tokensyncv1alpha1.AnnotationForceRefresh]; ok {
			out = append(out, name)
		}
	}
	return out
}

// TestRenewOutput: renew --all --wait of the fixtures, as a person sees it
// (testdata/renew-all-wait.golden): the one stopped after rejected
// credentials skipped and named, the suspended one named with why, the
// other renewed. The fake API server plays the operator: a TokenRequest
// not suspended logs in as soon as its force-refresh annotation changes.
func TestRenewOutput(t *testing.T) {
	logins := 0
	operator := interceptor.Funcs{Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
		if err := c.Patch(ctx, obj, patch, opts...); err != nil {
			return err
		}
		tr, ok := obj.(*tokensyncv1alpha1.TokenRequest)
		if !ok || tr.Spec.Suspend {
			return nil
		}
		logins++
		login := time.Duration(logins) * time.Second
		tr.Status.LastForceRefresh = tr.Annotations[tokensyncv1alpha1.AnnotationForceRefresh]
		tr.Status.LastAttempt = &tokensyncv1alpha1.LoginAttempt{Time: *at(login), Provider: "partner", Endpoint: fixtureEndpoint, Result: tokensyncv1alpha1.ReasonSucceeded}
		tr.Status.LastRefreshTime, tr.Status.ExpiresAt, tr.Status.NextRefreshTime = at(login), at(3*time.Hour+login), at(2*time.Hour+55*time.Minute+login)
		meta.SetStatusCondition(&tr.Status.Conditions, metav1.Condition{Type: tokensyncv1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: tokensyncv1alpha1.ReasonTokenIssued})
		return c.Update(ctx, tr)
	}}
	c := fakeAPI(operator, readyTokenRequest(), rejectedTokenRequest(), suspendedTokenRequest())
	out, code := runFake(t, c, "renew", "--all", "-n", "team-a", "--wait")
	if code != 1 {
		t.Errorf("exit %d, want 1 (the suspended one will not renew)", code)
	}
	golden(t, "renew-all-wait", out)

	out, code = runFake(t, c, "renew", "partner-token", "-n", "team-a", "--wait")
	if code != 0 {
		t.Errorf("exit %d, want 0", code)
	}
	golden(t, "renew-wait", out)
}
