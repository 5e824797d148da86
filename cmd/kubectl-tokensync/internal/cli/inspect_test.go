package cli

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
	"github.com/tokensync/tokensync/providers/providertest"
)

// TestInspectSecretJWT: inspect secret on the partner API's token (a JWT)
// prints the bookkeeping, the verdict and the claims, and no part of the
// token: no 8 characters in a row of its header, payload or signature,
// and no value of a claim not asked for.
func TestInspectSecretJWT(t *testing.T) {
	ns := newNamespace(t, "inspect")
	fake := providertest.Start(t)
	createCredentials(t, ns, "creds", credsFor(t, providertest.Partner))
	createTokenRequest(t, ns, "partner-token", providertest.Partner, fake.URL(), "creds")
	waitReady(t, ns, "partner-token", metav1.ConditionTrue, tokensyncv1alpha1.ReasonTokenIssued)
	token := secretToken(t, ns, "partner-token")

	r := plugin(t, adminKubeconfig, "inspect", "secret", "partner-token", "-n", ns, "--claims", "realm")
	wantExit(t, r, 0)
	golden(t, "envtest/inspect-secret", normalise(r.stdout))
	wantIn(t, "inspect secret", r.stdout,
		"Written by:", "TokenRequest "+ns+"/partner-token (owner reference)",
		"Verdict:", "Ready=True (TokenIssued)",
		"alg:", "HS384", "realm:", "Partner")

	whole := r.stdout + r.stderr
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("the partner API's token is not a JWT: %d parts", len(parts))
	}
	for i, part := range parts {
		if leak := sharedRun(part, whole, 8); leak != "" {
			t.Errorf("the output holds %q, from part %d of the token:\n%s", leak, i+1, whole)
		}
	}
	// The values of the claims not asked for.
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	for name, v := range claims {
		if name == "realm" || timeClaims[name] || name == "iss" || name == "sub" || name == "aud" {
			continue
		}
		value := fmt.Sprint(v)
		if s, ok := v.(string); ok {
			value = s
		}
		if len(value) >= 6 && strings.Contains(whole, value) {
			t.Errorf("the output holds the value of claim %s, which was not asked for:\n%s", name, whole)
		}
	}

	notOurs := plugin(t, adminKubeconfig, "inspect", "secret", "creds", "-n", ns)
	wantExit(t, notOurs, 1)
	wantIn(t, "inspect secret of a credentials Secret", notOurs.stderr, "Secret "+ns+"/creds was not written by tokensync")
	for _, v := range credsFor(t, providertest.Partner) {
		if strings.Contains(notOurs.stdout+notOurs.stderr, v) {
			t.Errorf("inspect secret printed a credential:\n%s", notOurs)
		}
	}
}

// sharedRun returns a substring of secret at least n long that s holds,
// "" when there is none.
func sharedRun(secret, s string, n int) string {
	for i := 0; i+n <= len(secret); i++ {
		if strings.Contains(s, secret[i:i+n]) {
			return secret[i : i+n]
		}
	}
	return ""
}
