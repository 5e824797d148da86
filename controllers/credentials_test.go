package controllers

import (
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
	"github.com/tokensync/tokensync/providers/providertest"
)

// createSecretData creates a Secret from raw bytes (StringData cannot carry
// bytes that are not UTF-8).
func (e *env) createSecretData(name string, data map[string][]byte) {
	e.t.Helper()
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: e.ns, Labels: credentialsLabels()}, Data: data}
	if err := k8sClient.Create(e.ctx(), s); err != nil {
		e.t.Fatalf("create Secret %s: %v", name, err)
	}
}

// hugeValue is a credential value near the 1 MiB limit of a Secret.
var hugeValue = strings.Repeat("x", 1<<20-4<<10)

type hostileCreds struct {
	name     string
	provider string
	data     map[string]string
	// key is the credentials key the message must name, quoted as written.
	key string
}

// TestHostileCredentials: credentials Secrets with missing keys, empty or
// blank values, bytes that are not UTF-8, and malformed credentials.json
// give Ready=False InvalidCredentials naming the key, and not a single
// request: the provider's Validate catches them. The manager keeps working.
func TestHostileCredentials(t *testing.T) {
	t.Parallel()
	binary := "\xff\xfe\x00\x80\xc3\x28junk"
	nested := `{"channel":"test","deviceTag":"t","deviceData":{"a":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}}`
	cases := []hostileCreds{
		{"no-keys", providertest.AML, map[string]string{}, `"email"`},
		{"missing-password", providertest.AML, map[string]string{"email": "ops@example.com"}, `"password"`},
		{"missing-email", providertest.AML, map[string]string{"password": "correct-horse"}, `"email"`},
		{"keys-in-wrong-case", providertest.AML, map[string]string{"Email": "ops@example.com", "Password": "correct-horse"}, `"email"`},
		{"empty-email", providertest.AML, map[string]string{"email": "", "password": "correct-horse"}, `"email"`},
		{"blank-password", providertest.AML, map[string]string{"email": "ops@example.com", "password": " \t\r\n "}, `"password"`},
		{"binary-password", providertest.AML, map[string]string{"email": "ops@example.com", "password": binary}, `"password"`},
		{"binary-email", providertest.AML, map[string]string{"email": binary, "password": "correct-horse"}, `"email"`},

		{"missing-secret", providertest.Partner, map[string]string{"accessKey": "ak-1"}, `"secret"`},
		{"missing-access-key", providertest.Partner, map[string]string{"secret": "s3cr3t-value"}, `"accessKey"`},
		{"empty-access-key", providertest.Partner, map[string]string{"accessKey": "", "secret": "s3cr3t-value"}, `"accessKey"`},
		{"binary-secret", providertest.Partner, map[string]string{"accessKey": "ak-1", "secret": binary}, `"secret"`},

		{"json-truncated", providertest.AmpliFi, map[string]string{"credentials.json": `{"channel": "internet", "userName": "ali"`}, `"credentials.json"`},
		{"json-array", providertest.AmpliFi, map[string]string{"credentials.json": `[{"channel": "test", "deviceTag": "t"}]`}, `"credentials.json"`},
		{"json-empty", providertest.AmpliFi, map[string]string{"credentials.json": ""}, `"credentials.json"`},
		{"json-binary", providertest.AmpliFi, map[string]string{"credentials.json": binary}, `"credentials.json"`},
		{"json-comment-only", providertest.AmpliFi, map[string]string{"credentials.json": "// {\"channel\": \"test\"}"}, `"credentials.json"`},
		{"json-nested-too-deep", providertest.AmpliFi, map[string]string{"credentials.json": nested}, `"credentials.json"`},
		{"json-and-flat-keys", providertest.AmpliFi, map[string]string{"credentials.json": `{"channel": "test", "deviceTag": "t"}`, "channel": "test"}, `"credentials.json"`},
		{"json-without-channel", providertest.AmpliFi, map[string]string{"credentials.json": `{"userName": "ali", "password": "pw"}`}, `field "channel" of credentials.json`},
		{"json-field-not-string", providertest.AmpliFi, map[string]string{"credentials.json": `{"channel": "internet", "userName": "ali", "password": 12345678}`}, `field "password" of credentials.json`},
		{"flat-unknown-channel", providertest.AmpliFi, map[string]string{"channel": "carrier-pigeon"}, `key "channel"`},
		{"flat-missing-field", providertest.AmpliFi, map[string]string{"channel": "internet", "userName": "ali"}, `key "password"`},
		{"flat-blank-field", providertest.AmpliFi, map[string]string{"channel": "internet", "userName": "ali", "password": "  "}, `key "password"`},
		{"flat-device-data-not-object", providertest.AmpliFi, map[string]string{"channel": "test", "deviceTag": "t", "deviceData": "not json"}, `key "deviceData"`},
		{"flat-binary-field", providertest.AmpliFi, map[string]string{"channel": "test", "deviceTag": binary}, `key "deviceTag"`},
	}
	e := newEnv(t)
	for _, c := range cases {
		data := map[string][]byte{}
		for k, v := range c.data {
			data[k] = []byte(v)
		}
		e.createSecretData(c.name+"-creds", data)
		e.createTokenRequest(c.name, c.provider, c.name+"-creds")
	}
	// A well-formed TokenRequest in the same namespace: the manager survived.
	e.createSecret("good-creds", partnerCreds)
	e.createTokenRequest("good", providertest.Partner, "good-creds")

	for _, c := range cases {
		t.Run(c.provider+"/"+c.name, func(t *testing.T) {
			e := e.in(t)
			tr := e.waitCondition(c.name, metav1.ConditionFalse, tokensyncv1alpha1.ReasonInvalidCredentials)
			msg := readyCondition(tr).Message
			if !strings.Contains(msg, c.key) {
				t.Errorf("message %q does not name the key %s", msg, c.key)
			}
			if !strings.Contains(msg, `credentials Secret "`+c.name+`-creds"`) {
				t.Errorf("message %q does not name the credentials Secret", msg)
			}
			for k, v := range c.data {
				// The channel is a documented name, quoted on purpose.
				if k != "channel" && len(v) >= 4 && strings.Contains(msg, v) {
					t.Errorf("message %q quotes a credential value", msg)
				}
			}
		})
	}
	e.waitReady("good")
	if n := fakeAttempts(e); n != 1 {
		t.Errorf("the fake saw %d requests, want 1 (the good TokenRequest): certainly wrong credentials were sent", n)
	}
}

// TestHugeCredentials: values near the 1 MiB Secret limit are certainly
// wrong (no credential is over 64 KiB): InvalidCredentials naming the key,
// nothing quoted, and no request sent.
func TestHugeCredentials(t *testing.T) {
	t.Parallel()
	cases := []hostileCreds{
		{"huge-password", providertest.AML, map[string]string{"email": "ops@example.com", "password": hugeValue}, "password"},
		{"huge-secret", providertest.Partner, map[string]string{"accessKey": "ak-1", "secret": hugeValue}, "secret"},
		{"huge-credentials-json", providertest.AmpliFi, map[string]string{"credentials.json": `{"channel": "test", "deviceTag": "` + hugeValue + `"}`}, "channel's fields"},
	}
	e := newEnv(t,
		providertest.WithValid(providertest.AML, amlCreds),
		providertest.WithValid(providertest.Partner, partnerCreds),
		providertest.WithValid(providertest.AmpliFi, map[string]string{"channel": "test", "deviceTag": "tag-1"}))
	for _, c := range cases {
		e.createSecret(c.name+"-creds", c.data)
		e.createTokenRequest(c.name, c.provider, c.name+"-creds")
	}
	for _, c := range cases {
		t.Run(c.provider+"/"+c.name, func(t *testing.T) {
			e := e.in(t)
			tr := e.waitCondition(c.name, metav1.ConditionFalse, tokensyncv1alpha1.ReasonInvalidCredentials)
			msg := readyCondition(tr).Message
			if !strings.Contains(msg, c.key) || !strings.Contains(msg, "64 KiB") {
				t.Errorf("message %q does not say that %s is too large", msg, c.key)
			}
			if strings.Contains(msg, "xxxx") {
				t.Errorf("message quotes the credential")
			}
		})
	}
	consistently(t, 3*time.Second, func() error {
		for _, c := range cases {
			if n := e.fake.Attempts(c.provider); n != 0 {
				return fmt.Errorf("%s: %d requests with certainly wrong credentials, want none", c.provider, n)
			}
		}
		return nil
	})
}

// TestCredentialsLabelRequired: a TokenRequest naming a credentials Secret
// that is not labelled tokensync.io/credentials: "true" sends nothing and
// says so; the label makes it Ready within seconds; removing the label later
// stops the next login, never the token already stored.
func TestCredentialsLabelRequired(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.fake.SetValid(providertest.Partner, partnerCreds)
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "db-password", Namespace: e.ns}, StringData: partnerCreds}
	if err := k8sClient.Create(e.ctx(), s); err != nil {
		t.Fatal(err)
	}
	e.createTokenRequest("tr", providertest.Partner, "db-password")
	tr := e.waitCondition("tr", metav1.ConditionFalse, tokensyncv1alpha1.ReasonCredentialsNotAllowed)
	c := readyCondition(tr)
	if !hasSubstrings(c.Message, `"db-password"`, tokensyncv1alpha1.LabelCredentials) {
		t.Errorf("message %q does not name the Secret and the label", c.Message)
	}
	if !meta.IsStatusConditionTrue(tr.Status.Conditions, tokensyncv1alpha1.ConditionStalled) {
		t.Error("not Stalled: a person must label the Secret")
	}
	e.waitEvent("tr", "Warning/"+tokensyncv1alpha1.ReasonCredentialsNotAllowed)
	if n := e.fake.Attempts(providertest.Partner); n != 0 {
		t.Fatalf("%d requests sent with an unlabelled Secret", n)
	}

	labelled := time.Now()
	e.label("db-password", map[string]string{tokensyncv1alpha1.LabelCredentials: "true"})
	e.waitReady("tr")
	if took := time.Since(labelled); took > 20*time.Second {
		t.Errorf("Ready %s after the label, want within seconds", took.Round(time.Second))
	}
	token := e.token("tr")

	// The label removed: the stored token stays; the next login is refused.
	e.label("db-password", map[string]string{tokensyncv1alpha1.LabelCredentials: ""})
	e.forceRefresh("tr", "1")
	tr = e.waitCondition("tr", metav1.ConditionFalse, tokensyncv1alpha1.ReasonCredentialsNotAllowed)
	if !hasSubstrings(readyCondition(tr).Message, "stays valid until") {
		t.Errorf("message %q does not say the stored token stays valid", readyCondition(tr).Message)
	}
	if got := e.token("tr"); got != token {
		t.Error("the stored token was touched when the label was removed")
	}
	if n := e.fake.Attempts(providertest.Partner); n != 1 {
		t.Errorf("%d requests, want the one made while labelled", n)
	}
}

// TestCredentialsLabelNotRequired: with the rule off
// (--require-credentials-label=false) any Secret of the namespace serves.
func TestCredentialsLabelNotRequired(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, func(_ *env, r *TokenRequestReconciler) { r.AllowUnlabelledCredentials = true })
	e.fake.SetValid(providertest.Partner, partnerCreds)
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "creds", Namespace: e.ns}, StringData: partnerCreds}
	if err := k8sClient.Create(e.ctx(), s); err != nil {
		t.Fatal(err)
	}
	e.createTokenRequest("tr", providertest.Partner, "creds")
	e.waitReady("tr")
}

// label sets (or, with an empty value, removes) labels of a Secret.
func (e *env) label(name string, labels map[string]string) {
	e.t.Helper()
	eventually(e.t, readyTimeout, func() error {
		s := &corev1.Secret{}
		if err := k8sClient.Get(e.ctx(), types.NamespacedName{Namespace: e.ns, Name: name}, s); err != nil {
			return err
		}
		if s.Labels == nil {
			s.Labels = map[string]string{}
		}
		for k, v := range labels {
			if v == "" {
				delete(s.Labels, k)
			} else {
				s.Labels[k] = v
			}
		}
		return k8sClient.Update(e.ctx(), s)
	})
}
