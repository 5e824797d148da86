package controllers

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
	"github.com/tokensync/tokensync/providers/providertest"
)

// TestNoSecretValueLeaks drives success and failure paths with sentinel
// credentials, then searches the whole test run's logs, this namespace's
// events and every status for the sentinels and for every token issued.
func TestNoSecretValueLeaks(t *testing.T) {
	t.Parallel()
	const (
		email    = "sentinel-email-7d1f@example.com"
		password = "SENTINEL-PASSWORD-7d1f"
		key      = "SENTINEL-ACCESS-KEY-7d1f"
		secret   = "SENTINEL-SECRET-7d1f"
		device   = "SENTINEL-DEVICE-7d1f"
	)
	e := newEnv(t, providertest.WithLifetime(providertest.Partner, 12*time.Second))
	e.fake.SetValid(providertest.AML, map[string]string{"email": email, "password": password})
	e.createSecret("aml-good-creds", map[string]string{"email": email, "password": password})
	e.createSecret("aml-bad-creds", map[string]string{"email": email, "password": password + "-WRONG"})
	e.createSecret("partner-creds", map[string]string{"accessKey": key, "secret": secret})
	e.createSecret("partner-half-creds", map[string]string{"accessKey": key})
	e.createSecret("amplifi-creds", map[string]string{"channel": "test", "deviceTag": device, "deviceData": `{"platform":"` + device + `"}`})
	e.createSecret("amplifi-junk-creds", map[string]string{"credentials.json": `{"channel": "internet", "password": "` + password + `"`})

	e.createTokenRequest("aml-good", providertest.AML, "aml-good-creds")
	e.createTokenRequest("aml-bad", providertest.AML, "aml-bad-creds")
	e.createTokenRequest("partner", providertest.Partner, "partner-creds", withRefreshBefore(10*time.Second))
	e.createTokenRequest("partner-half", providertest.Partner, "partner-half-creds")
	e.createTokenRequest("amplifi", providertest.AmpliFi, "amplifi-creds")
	e.createTokenRequest("amplifi-junk", providertest.AmpliFi, "amplifi-junk-creds")

	e.waitReady("aml-good")
	e.waitReady("amplifi")
	e.waitReady("partner")
	e.waitCondition("aml-bad", metav1.ConditionFalse, tokensyncv1alpha1.ReasonAuthenticationFailed)
	e.waitCondition("partner-half", metav1.ConditionFalse, tokensyncv1alpha1.ReasonInvalidCredentials)
	e.waitCondition("amplifi-junk", metav1.ConditionFalse, tokensyncv1alpha1.ReasonInvalidCredentials)

	// A refresh that fails with a provider error, then one that succeeds.
	tokens := []string{e.token("aml-good"), e.token("amplifi"), e.token("partner")}
	e.fake.FailNextWith(providertest.Partner, 1, providertest.Failure{Fault: providertest.NotJSON})
	e.waitCondition("partner", metav1.ConditionFalse, tokensyncv1alpha1.ReasonInvalidResponse)
	e.waitReady("partner")
	tokens = append(tokens, e.token("partner"))

	e.waitEvent("aml-bad", "Warning/AuthenticationFailed")
	e.waitEvent("partner", "Warning/InvalidResponse")
	sentinels := append([]string{email, password, key, secret, device}, tokens...)
	for _, tok := range tokens {
		if tok == "" {
			t.Fatal("a token is missing")
		}
	}
	list := &tokensyncv1alpha1.TokenRequestList{}
	if err := k8sClient.List(e.ctx(), list); err != nil {
		t.Fatal(err)
	}
	statuses, _ := json.Marshal(list)
	var events strings.Builder
	for _, n := range []string{"aml-good", "aml-bad", "partner", "partner-half", "amplifi", "amplifi-junk"} {
		fmt.Fprintln(&events, strings.Join(e.events(n), "\n"))
	}
	if !strings.Contains(events.String(), "AuthenticationFailed") || !strings.Contains(events.String(), "InvalidResponse") {
		t.Fatalf("the failure paths did not run: events %s", events.String())
	}
	logs := testLogs.String()
	if !strings.Contains(logs, "Attempt failed") {
		t.Fatal("no failure was logged: the log capture does not work")
	}
	for _, s := range sentinels {
		for what, text := range map[string]string{"logs": logs, "events": events.String(), "statuses": string(statuses)} {
			if strings.Contains(text, s) {
				t.Errorf("%s contain a secret value (%.12s...)", what, s)
			}
		}
	}
}
