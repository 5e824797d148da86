package controllers

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tokensync/tokensync/controllers/policy"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
	"github.com/tokensync/tokensync/providers"
	"github.com/tokensync/tokensync/providers/builtin"
	"github.com/tokensync/tokensync/providers/providertest"
)

// Unit tests of providersettings.go, then envtest tests of the providers
// configured by their TokenRequest (oauth2, http) end to end.

// The AML Watcher and partner API logins written as spec.http.
func amlAsHTTP() *tokensyncv1alpha1.HTTPSettings {
	return &tokensyncv1alpha1.HTTPSettings{
		Method:  "POST",
		Path:    providertest.AMLPath,
		Headers: map[string]tokensyncv1alpha1.Template{"Accept": "application/json"},
		Body: &tokensyncv1alpha1.HTTPBody{Format: "json", Fields: map[string]tokensyncv1alpha1.Template{
			"email": "{{ .email }}", "password": "{{ .password }}",
		}},
		Token:   tokensyncv1alpha1.HTTPToken{JSONPointer: "/data/access_token"},
		Expiry:  tokensyncv1alpha1.HTTPExpiry{FromJWT: true, Lifetime: &metav1.Duration{Duration: 3 * time.Hour}},
		Success: &tokensyncv1alpha1.HTTPSuccess{JSONPointer: "/status", Equals: "SUCCESS"},
	}
}

func partnerAsHTTP() *tokensyncv1alpha1.HTTPSettings {
	return &tokensyncv1alpha1.HTTPSettings{
		Method: "POST",
		Path:   providertest.PartnerPath,
		Body: &tokensyncv1alpha1.HTTPBody{Format: "json", Fields: map[string]tokensyncv1alpha1.Template{
			"accessKey": "{{ .accessKey }}", "secret": "{{ .secret }}",
		}},
		Token:  tokensyncv1alpha1.HTTPToken{RawBody: true},
		Expiry: tokensyncv1alpha1.HTTPExpiry{FromJWT: true},
	}
}

func TestProviderSettings(t *testing.T) {
	spec := tokensyncv1alpha1.LoginSpec{Provider: "http", HTTP: amlAsHTTP()}
	data, digest := providerSettings(&spec)
	again, digestAgain := providerSettings(spec.DeepCopy())
	if len(data) == 0 || !strings.HasPrefix(digest, "sha256:") || digest != digestAgain || string(data) != string(again) {
		t.Fatalf("settings %s %s, again %s %s", data, digest, again, digestAgain)
	}
	spec.HTTP.Body.Fields["tenant"] = "{{ .tenant }}"
	if _, changed := providerSettings(&spec); changed == digest {
		t.Error("a new body field leaves the digest as it was")
	}
	for _, other := range []tokensyncv1alpha1.LoginSpec{
		{Provider: "partner"},
		{Provider: "aml", HTTP: amlAsHTTP()}, // refused at admission; ignored here
		{Provider: "http"},                   // likewise
	} {
		if data, digest := providerSettings(&other); data != nil || digest != "" {
			t.Errorf("%s: settings %s, digest %q", other.Provider, data, digest)
		}
	}
	oauth2 := tokensyncv1alpha1.LoginSpec{Provider: "oauth2", OAuth2: &tokensyncv1alpha1.OAuth2Settings{ClientAuth: "basic"}}
	if data, _ := providerSettings(&oauth2); string(data) != `{"clientAuth":"basic"}` {
		t.Errorf("oauth2 settings %s", data)
	}
}

func TestConfigure(t *testing.T) {
	registry := builtin.NewRegistry(providers.Options{})
	creds := providers.Credentials{"email": []byte("e"), "password": []byte("p"), "note": []byte("unrelated")}

	o := &snapshot{reg: registry["http"]}
	data, _ := providerSettings(&tokensyncv1alpha1.LoginSpec{Provider: "http", HTTP: amlAsHTTP()})
	configure(o, data)
	if o.settingsErr != nil || o.provider == registry["http"].Provider {
		t.Fatalf("configure: %v", o.settingsErr)
	}
	if used := o.keys().UsedCredentials(creds); len(used) != 2 || o.keys().CredentialKeyNames() != "email, password" {
		t.Errorf("keys: used %v, names %q", used, o.keys().CredentialKeyNames())
	}

	bad := amlAsHTTP()
	bad.Headers["X-Key"] = "{{ printf \"%d\" 1 }}"
	data, _ = providerSettings(&tokensyncv1alpha1.LoginSpec{Provider: "http", HTTP: bad})
	configure(o, data)
	if providers.KindOf(o.settingsErr) != providers.InvalidTemplate || !strings.Contains(o.settingsErr.Error(), `spec.http.headers["X-Key"]`) {
		t.Errorf("settingsErr = %v", o.settingsErr)
	}
	// Until the settings are fixed, every key counts.
	if used := o.keys().UsedCredentials(creds); len(used) != 3 {
		t.Errorf("used %v", used)
	}
	if f := settingsFailure(o.settingsErr); f.Reason != tokensyncv1alpha1.ReasonInvalidTemplate || !policy.RuleOf(f.Reason).Stalls || policy.RuleOf(f.Reason).Class != policy.RetrySlow {
		t.Errorf("failure %+v", f)
	}

	o = &snapshot{reg: registry["partner"]}
	configure(o, nil)
	if o.provider != registry["partner"].Provider || o.keys().CredentialKeyNames() != "accessKey, secret" {
		t.Errorf("a built-in provider is not used as registered")
	}
}

// TestSettingsDigestOnTheSecret: the digest goes on the Secret with the
// token, and a token without settings leaves none behind.
func TestSettingsDigestOnTheSecret(t *testing.T) {
	s := &corev1.Secret{}
	tok := &providers.Token{Value: "t", ObtainedAt: time.Unix(0, 0), ExpiresAt: time.Unix(3600, 0)}
	applyToken(s, policy.Issued{Token: tok, Provider: "http", Endpoint: "https://x", SettingsDigest: "sha256:one"})
	if held, ok := heldTokenIn(s, ""); !ok || held.SettingsDigest != "sha256:one" || s.Annotations[annotationSettingsDigest] != "sha256:one" {
		t.Errorf("held %+v", held)
	}
	applyToken(s, policy.Issued{Token: tok, Provider: "partner", Endpoint: "https://x"})
	if _, ok := s.Annotations[annotationSettingsDigest]; ok {
		t.Error("the previous token's digest stays")
	}
	// Moving a token moves its digest, and drops the destination's.
	from := &corev1.Secret{}
	applyToken(from, policy.Issued{Token: tok, Provider: "http", SettingsDigest: "sha256:two"})
	to := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{annotationSettingsDigest: "sha256:stale"}}}
	copyToken(to, from)
	if to.Annotations[annotationSettingsDigest] != "sha256:two" {
		t.Errorf("copied digest %q", to.Annotations[annotationSettingsDigest])
	}
	delete(from.Annotations, annotationSettingsDigest)
	copyToken(to, from)
	if _, ok := to.Annotations[annotationSettingsDigest]; ok {
		t.Error("a digest the source lacks stays on the destination")
	}
}

// TestHTTPLoginLikeBuiltIns: the AML Watcher and partner API logins
// written as provider http, through the whole operator, give Secrets like
// the built-in providers': the token the fake issued, the same lifetime,
// the same keys; and record the settings they were obtained with.
func TestHTTPLoginLikeBuiltIns(t *testing.T) {
	t.Parallel()
	e := newEnv(t, providertest.WithLifetime(providertest.Partner, 20*time.Minute))
	e.createSecret("aml-creds", amlCreds)
	e.createSecret("partner-creds", partnerCreds)
	e.createTokenRequest("aml-builtin", providertest.AML, "aml-creds")
	e.createTokenRequest("aml-http", "http", "aml-creds", func(tr *tokensyncv1alpha1.TokenRequest) { tr.Spec.HTTP = amlAsHTTP() })
	e.createTokenRequest("partner-builtin", providertest.Partner, "partner-creds")
	e.createTokenRequest("partner-http", "http", "partner-creds", func(tr *tokensyncv1alpha1.TokenRequest) { tr.Spec.HTTP = partnerAsHTTP() })

	for _, pair := range []struct {
		builtIn, asHTTP string
		lifetime        time.Duration
	}{{"aml-builtin", "aml-http", 3 * time.Hour}, {"partner-builtin", "partner-http", 20 * time.Minute}} {
		want := e.waitReady(pair.builtIn)
		got := e.waitReady(pair.asHTTP)
		for _, tr := range []*tokensyncv1alpha1.TokenRequest{want, got} {
			if lifetime := tr.Status.ExpiresAt.Sub(tr.Status.LastRefreshTime.Time); lifetime.Round(time.Second) != pair.lifetime {
				t.Errorf("%s: token lifetime %s, want %s", tr.Name, lifetime, pair.lifetime)
			}
		}
		sb, _ := e.secret(pair.builtIn)
		sh, err := e.secret(pair.asHTTP)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(slices.Sorted(maps.Keys(sb.Data)), slices.Sorted(maps.Keys(sh.Data))) || len(sh.Data["token"]) < 20 {
			t.Errorf("%s keys %v, %s keys %v", pair.builtIn, keys(sb.Data), pair.asHTTP, keys(sh.Data))
		}
		_, digest := providerSettings(&got.Spec.LoginSpec)
		if sh.Annotations[annotationSettingsDigest] != digest || got.Status.LastAttempt.SettingsDigest != digest || digest == "" {
			t.Errorf("%s: digest on the Secret %q, in the status %q, of the spec %q", pair.asHTTP,
				sh.Annotations[annotationSettingsDigest], got.Status.LastAttempt.SettingsDigest, digest)
		}
		if _, ok := sb.Annotations[annotationSettingsDigest]; ok || want.Status.LastAttempt.SettingsDigest != "" {
			t.Errorf("%s records a settings digest", pair.builtIn)
		}
	}
	if n := e.fake.LoginsFor(providertest.AML, amlCreds["email"]); n != 2 {
		t.Errorf("AML logins for the email: %d, want 2 (built-in and http)", n)
	}
	if n := e.fake.LoginsFor(providertest.Partner, partnerCreds["accessKey"]); n != 2 {
		t.Errorf("partner logins for the key: %d, want 2", n)
	}
	// The token is the one the fake issued: the partner's last login was
	// one of the two, and it is in one of the two Secrets.
	last := e.fake.LastToken(providertest.Partner)
	if e.token("partner-builtin") != last && e.token("partner-http") != last {
		t.Error("neither partner Secret holds the token the fake issued last")
	}
}

// TestOAuth2EndToEnd: an OAuth2 client's token, with its type and scope,
// from the fake token endpoint.
func TestOAuth2EndToEnd(t *testing.T) {
	t.Parallel()
	e := newEnv(t, providertest.WithValid(providertest.OAuth2, map[string]string{"clientId": "svc", "clientSecret": "s3cr+t"}))
	e.createSecret("oauth2-creds", map[string]string{"clientId": "svc", "clientSecret": "s3cr+t", "note": "unrelated"})
	e.createTokenRequest("oauth2", "oauth2", "oauth2-creds", func(tr *tokensyncv1alpha1.TokenRequest) {
		tr.Spec.Endpoint = e.fake.URL() + providertest.OAuth2Path
		tr.Spec.OAuth2 = &tokensyncv1alpha1.OAuth2Settings{Scopes: []tokensyncv1alpha1.OAuth2Scope{"orders.read", "orders.write"}}
	})
	tr := e.waitReady("oauth2")
	s, err := e.secret("oauth2")
	if err != nil {
		t.Fatal(err)
	}
	if string(s.Data["token"]) != e.fake.LastToken(providertest.OAuth2) || string(s.Data["tokenType"]) != "Bearer" || string(s.Data["scope"]) != "orders.read orders.write" {
		t.Errorf("Secret data keys %v, tokenType %q, scope %q", keys(s.Data), s.Data["tokenType"], s.Data["scope"])
	}
	if lifetime := tr.Status.ExpiresAt.Sub(tr.Status.LastRefreshTime.Time); lifetime != time.Hour {
		t.Errorf("lifetime %s, want expires_in's hour", lifetime)
	}
	if tr.Spec.OAuth2.ClientAuth != "basic" || tr.Status.LastAttempt.SettingsDigest == "" {
		t.Errorf("clientAuth %q (want the default basic), digest %q", tr.Spec.OAuth2.ClientAuth, tr.Status.LastAttempt.SettingsDigest)
	}
}

// TestSettingsChanges: a change of the settings logs in once, like a change
// of endpoint; other edits and unused keys cost no login; a template that
// cannot be used stalls the TokenRequest without a request, until fixed.
func TestSettingsChanges(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.createSecret("creds", map[string]string{"email": "ops@example.com", "password": "correct-horse", "note": "unrelated"})
	e.createTokenRequest("tok", "http", "creds", func(tr *tokensyncv1alpha1.TokenRequest) { tr.Spec.HTTP = amlAsHTTP() })
	e.waitReady("tok")
	logins := func() int { return e.fake.Logins(providertest.AML) }
	if logins() != 1 {
		t.Fatalf("logins %d", logins())
	}

	// No login: a secretTemplate edit, a key no template reads.
	e.patchTokenRequest("tok", func(tr *tokensyncv1alpha1.TokenRequest) {
		tr.Spec.SecretTemplate = &tokensyncv1alpha1.SecretTemplate{Labels: map[string]tokensyncv1alpha1.LabelValue{"team": "a"}}
	})
	e.updateSecret("creds", map[string]string{"email": "ops@example.com", "password": "correct-horse", "note": "changed"})
	eventually(t, readyTimeout, func() error {
		if s, err := e.secret("tok"); err != nil || s.Labels["team"] != "a" {
			return fmt.Errorf("label not applied yet")
		}
		return nil
	})
	consistently(t, 2*time.Second, func() error {
		if logins() != 1 {
			return fmt.Errorf("%d logins after edits that cannot change the login", logins())
		}
		return nil
	})

	// One login: a header added to the settings.
	before := e.token("tok")
	e.patchTokenRequest("tok", func(tr *tokensyncv1alpha1.TokenRequest) { tr.Spec.HTTP.Headers["X-Client"] = "tokensync" })
	eventually(t, readyTimeout, func() error {
		if e.token("tok") == before {
			return fmt.Errorf("no new token")
		}
		return nil
	})
	if logins() != 2 {
		t.Errorf("logins %d after a settings change, want 2", logins())
	}

	// A template the API server cannot judge (its rules refuse printf, not
	// html): stalled, nothing sent.
	attempts := e.fake.Attempts(providertest.AML)
	e.patchTokenRequest("tok", func(tr *tokensyncv1alpha1.TokenRequest) {
		tr.Spec.HTTP.Headers["X-Client"] = `{{ html "tokensync" }}`
	})
	tr := e.waitCondition("tok", metav1.ConditionFalse, tokensyncv1alpha1.ReasonInvalidTemplate)
	stalled := meta.FindStatusCondition(tr.Status.Conditions, tokensyncv1alpha1.ConditionStalled)
	if stalled == nil || stalled.Status != metav1.ConditionTrue || !strings.Contains(stalled.Message, `spec.http.headers["X-Client"]`) ||
		!strings.Contains(stalled.Message, "function html is not allowed") {
		t.Errorf("Stalled = %+v", stalled)
	}
	if e.token("tok") == "" || e.fake.Attempts(providertest.AML) != attempts {
		t.Errorf("the valid token was touched, or a request was sent (%d attempts, %d before)", e.fake.Attempts(providertest.AML), attempts)
	}
	if next := tr.Status.NextRefreshTime; next != nil {
		t.Errorf("next retry at %v: a template that cannot be used waits for a change, it is not retried", next)
	}

	// Fixed: at once, despite the backoff.
	e.patchTokenRequest("tok", func(tr *tokensyncv1alpha1.TokenRequest) { tr.Spec.HTTP.Headers["X-Client"] = "tokensync/2" })
	e.waitReady("tok")
	if logins() != 3 {
		t.Errorf("logins %d after the fix, want 3", logins())
	}
}
