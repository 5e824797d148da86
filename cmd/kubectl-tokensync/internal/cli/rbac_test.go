package cli

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
	"github.com/tokensync/tokensync/providers/providertest"
)

// TestRoles: every command as a user bound in one namespace to view
// (status works, with the Secret's bookkeeping refused and said so;
// inspect and renew are refused and say so) and to edit (renew and
// inspect work). The README's table of roles says the same.
func TestRoles(t *testing.T) {
	ns := newNamespace(t, "roles")
	fake := providertest.Start(t)
	createCredentials(t, ns, "creds", credsFor(t, providertest.Partner))
	createTokenRequest(t, ns, "partner-token", providertest.Partner, fake.URL(), "creds")
	waitReady(t, ns, "partner-token", metav1.ConditionTrue, tokensyncv1alpha1.ReasonTokenIssued)
	viewer := bind(t, ns, "viewer", "view")
	editor := bind(t, ns, "editor", "edit")
	ref := "TokenRequest " + ns + "/partner-token"

	t.Run("view", func(t *testing.T) {
		r := plugin(t, viewer, "status", "-n", ns)
		wantExit(t, r, 0)
		wantIn(t, "status as view", r.stdout, "partner-token", "TokenIssued")

		r = plugin(t, viewer, "status", "partner-token", "-n", ns)
		wantExit(t, r, 0)
		wantIn(t, "status NAME as view", r.stdout, "Ready:", "True (TokenIssued)",
			"Secret partner-token:\n  not shown: you may not read Secret "+ns+"/partner-token (reading Secrets needs the edit or admin role in their namespace)",
			"TokenRefreshed")

		r = plugin(t, viewer, "status", "-A")
		wantExit(t, r, 1)
		wantIn(t, "status -A as view of one namespace", r.stderr, "you may not list TokenRequests in any namespace (the view role grants it in a namespace)")

		r = plugin(t, viewer, "inspect", "secret", "partner-token", "-n", ns)
		wantExit(t, r, 1)
		wantIn(t, "inspect as view", r.stderr, "Error: you may not read Secret "+ns+"/partner-token (reading Secrets needs the edit or admin role in their namespace)")

		r = plugin(t, viewer, "renew", "partner-token", "-n", ns)
		wantExit(t, r, 1)
		wantIn(t, "renew as view", r.stderr, "Error: you may not set tokensync.io/force-refresh on "+ref+" (the edit role grants it in a namespace)")
		if len(forceRefreshed(t, ns, "partner-token")) != 0 {
			t.Errorf("renew as view set the annotation")
		}

		r = plugin(t, viewer, "check", "-n", ns, "--lease", "unread")
		wantExit(t, r, 1)
		wantIn(t, "check as view", r.stdout,
			"[ok  ] CRDs:",
			"[FAIL] Admission: you may not create TokenRequests in namespace "+ns+", which the check does by dry run (the edit role grants it in a namespace)",
			"[FAIL] Operator: you may not read Lease "+operatorNamespace+"/unread")

		r = plugin(t, viewer, "status", "--cluster")
		wantExit(t, r, 1)
		wantIn(t, "status --cluster as view", r.stderr, "you may not list ClusterTokenRequests (the ClusterTokenRequest viewer ClusterRole grants it")
	})

	t.Run("edit", func(t *testing.T) {
		r := plugin(t, editor, "renew", "partner-token", "-n", ns)
		wantExit(t, r, 0)
		wantIn(t, "renew as edit", r.stdout, "Requested a new token for "+ref+"\n")
		if len(forceRefreshed(t, ns, "partner-token")) != 1 {
			t.Errorf("renew as edit did not set the annotation")
		}

		r = plugin(t, editor, "inspect", "secret", "partner-token", "-n", ns)
		wantExit(t, r, 0)
		wantIn(t, "inspect as edit", r.stdout, "Written by:", ref, "alg:")

		r = plugin(t, editor, "status", "partner-token", "-n", ns)
		wantExit(t, r, 0)
		wantIn(t, "status NAME as edit", r.stdout, "Secret partner-token:\n  Provider:")

		r = plugin(t, editor, "renew", "--cluster", "anything")
		wantExit(t, r, 1)
		wantIn(t, "renew --cluster as edit", r.stderr, "you may not read ClusterTokenRequest anything")
	})
}
