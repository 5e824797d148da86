package cli

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
)

// TestInspectSecretView: the view of a target Secret holding a JWT, at a
// fixed time (testdata/inspect-secret.golden, which the README shows), and
// no part of the token in it: no 8 characters in a row of its header,
// payload or signature, nor a claim's value not asked for.
func TestInspectSecretView(t *testing.T) {
	token := jwtOf(t, map[string]any{"alg": "RS256", "kid": "2026-03", "typ": "JWT"}, sampleClaims())
	s := targetSecret(token)
	owner, ok := ownerOf(s)
	if !ok {
		t.Fatal("the target Secret names no owner")
	}
	tr := fromTokenRequest(readyTokenRequest())
	var out bytes.Buffer
	if err := inspectSecret(&out, s, &owner, ownerRead{Object: &tr}, []string{"scope"}, fixedNow); err != nil {
		t.Fatal(err)
	}
	golden(t, "inspect-secret", out.String())
	for i, part := range strings.Split(token, ".") {
		if leak := sharedRun(part, out.String(), 8); leak != "" {
			t.Errorf("the output holds %q of part %d of the token", leak, i+1)
		}
	}
	for _, value := range []string{"SENTINEL-EMAIL", "SENTINEL-NESTED", "SIGNATURE-SENTINEL"} {
		if strings.Contains(out.String(), value) {
			t.Errorf("the output holds %s", value)
		}
	}
}

func TestInspectSecretVerdicts(t *testing.T) {
	s := targetSecret("opaque-token-value-0123456789")
	owner, _ := ownerOf(s)
	moved := readyTokenRequest()
	moved.Status.SecretName = "partner-token-v2"
	stale := readyTokenRequest()
	stale.Status.ExpiresAt = at(5 * 3600e9)
	cluster := fromClusterTokenRequest(failedNamespaceClusterTokenRequest())
	forbidden := apierrors.NewForbidden(schema.GroupResource{Group: "tokensync.io", Resource: "tokenrequests"}, "partner-token", errors.New("no"))
	for _, tc := range []struct {
		name  string
		owner secretOwner
		read  ownerRead
		says  string
	}{
		{"ready", owner, ownerRead{Object: ptrTo(fromTokenRequest(readyTokenRequest()))}, "Ready=True (TokenIssued): Secret partner-token holds a valid token until"},
		{"owner gone", owner, ownerRead{Err: apierrors.NewNotFound(schema.GroupResource{Resource: "tokenrequests"}, "partner-token")},
			"unknown: TokenRequest team-a/partner-token does not exist"},
		{"owner not readable", owner, ownerRead{Err: refused(forbidden, "read TokenRequest team-a/partner-token", roleView)},
			"unknown: you may not read TokenRequest team-a/partner-token"},
		{"secret moved", owner, ownerRead{Object: ptrTo(fromTokenRequest(moved))}, "but it keeps its token in Secret partner-token-v2 now: this one is no longer refreshed"},
		{"another token", owner, ownerRead{Object: ptrTo(fromTokenRequest(stale))}, "its status records a token that expires at 2026-03-01T17:00:00Z, this Secret one at 2026-03-01T14:41:00Z"},
		{"cluster, this namespace failed", secretOwner{Kind: kindClusterTokenRequest, Name: "shared-token", By: "owner reference"}, ownerRead{Object: &cluster},
			"; but not written in this namespace"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sec := s.DeepCopy()
			if tc.owner.Kind == kindClusterTokenRequest {
				sec.Namespace = "team-c"
			}
			var out bytes.Buffer
			if err := inspectSecret(&out, sec, &tc.owner, tc.read, nil, fixedNow); err != nil {
				t.Fatal(err)
			}
			wantIn(t, "inspect secret", out.String(), "Verdict:", tc.says, "Token:", "not a JWT (29 bytes); nothing of it is shown")
			if strings.Contains(out.String(), "opaque-token") {
				t.Errorf("the token was printed:\n%s", out.String())
			}
		})
	}
}

func TestOwnerOf(t *testing.T) {
	withAnnotation := func(k, v string) *corev1.Secret {
		s := targetSecret("x")
		s.OwnerReferences = nil
		s.Annotations[k] = v
		return s
	}
	foreignRef := targetSecret("x")
	foreignRef.OwnerReferences[0].APIVersion = "example.com/v1"
	for _, tc := range []struct {
		name   string
		secret *corev1.Secret
		want   string
		ok     bool
	}{
		{"owner reference", targetSecret("x"), "TokenRequest team-a/partner-token", true},
		{"retained", withAnnotation(tokensyncv1alpha1.AnnotationOwner, "partner-token"), "TokenRequest team-a/partner-token", true},
		{"retained by a ClusterTokenRequest", withAnnotation(tokensyncv1alpha1.AnnotationClusterOwner, "shared-token"), "ClusterTokenRequest shared-token", true},
		{"another group's TokenRequest", foreignRef, "", false},
		{"no owner", &corev1.Secret{}, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := ownerOf(tc.secret)
			if ok != tc.ok || (ok && got.String() != tc.want) {
				t.Errorf("ownerOf = %v, %v; want %q, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}
