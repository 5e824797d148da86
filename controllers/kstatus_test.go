package controllers

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
	"github.com/tokensync/tokensync/providers/providertest"
)

// kstatusOf computes what Flux and cli-utils see for a TokenRequest, from
// the object as the API server returns it.
func (e *env) kstatusOf(name string) kstatusResult {
	e.t.Helper()
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(tokensyncv1alpha1.GroupVersion.WithKind("TokenRequest"))
	if err := k8sClient.Get(e.ctx(), types.NamespacedName{Namespace: e.ns, Name: name}, u); err != nil {
		e.t.Fatal(err)
	}
	return kstatusOfObject(e.t, u)
}

func (e *env) waitKstatus(name string, want string) {
	e.t.Helper()
	eventually(e.t, readyTimeout, func() error {
		if got := e.kstatusOf(name); got.Status != want {
			return fmt.Errorf("kstatus %s (%s), want %s", got.Status, got.Message, want)
		}
		return nil
	})
}

// TestKstatus: what GitOps tools read. A Ready TokenRequest is Current, and
// stays Current through its refreshes; a rejected password is Failed from
// the first failure; a first login in progress, or being retried, is
// InProgress.
func TestKstatus(t *testing.T) {
	t.Parallel()
	e := newEnv(t, providertest.WithLifetime(providertest.Partner, 12*time.Second))
	e.fake.SetValid(providertest.Partner, partnerCreds)
	e.createSecret("creds", partnerCreds)
	e.createSecret("wrong-creds", map[string]string{"accessKey": "ak-1", "secret": "wrong"})

	e.createTokenRequest("ready", providertest.Partner, "creds")
	e.waitReady("ready")
	if got := e.kstatusOf("ready"); got.Status != kstatusCurrent {
		t.Fatalf("a Ready TokenRequest is %s (%s), want Current", got.Status, got.Message)
	}
	// Refreshes (every few seconds with 12s tokens) keep it Current.
	first := e.token("ready")
	consistently(t, 12*time.Second, func() error {
		if got := e.kstatusOf("ready"); got.Status != kstatusCurrent {
			return fmt.Errorf("during a refresh: %s (%s)", got.Status, got.Message)
		}
		return nil
	})
	if e.token("ready") == first {
		t.Error("no refresh happened while watching")
	}

	e.createTokenRequest("rejected", providertest.Partner, "wrong-creds")
	e.waitCondition("rejected", "False", tokensyncv1alpha1.ReasonAuthenticationFailed)
	if got := e.kstatusOf("rejected"); got.Status != kstatusFailed {
		t.Fatalf("a rejected password is %s (%s), want Failed", got.Status, got.Message)
	}

	t.Run("first login in progress", func(t *testing.T) {
		h := e.in(t)
		h.fake = providertest.Start(t)
		h.fake.Hang(providertest.Partner, true)
		h.createTokenRequest("hanging", providertest.Partner, "creds")
		if got := h.kstatusOf("hanging"); got.Status != kstatusInProgress {
			t.Fatalf("just created: %s (%s), want InProgress", got.Status, got.Message)
		}
		eventually(t, readyTimeout, func() error {
			if n := h.fake.Attempts(providertest.Partner); n == 0 {
				return fmt.Errorf("the login has not started")
			}
			return nil
		})
		if got := h.kstatusOf("hanging"); got.Status != kstatusInProgress {
			t.Fatalf("while the first login hangs: %s (%s), want InProgress", got.Status, got.Message)
		}
	})

	t.Run("first login being retried", func(t *testing.T) {
		r := e.in(t)
		r.fake = providertest.Start(t)
		r.fake.FailEvery(providertest.Partner, 1, providertest.Failure{Status: http.StatusServiceUnavailable})
		r.createTokenRequest("retrying", providertest.Partner, "creds")
		r.waitCondition("retrying", "False", tokensyncv1alpha1.ReasonProviderUnavailable)
		if got := r.kstatusOf("retrying"); got.Status != kstatusInProgress {
			t.Fatalf("retrying after a 503: %s (%s), want InProgress", got.Status, got.Message)
		}
	})
}
