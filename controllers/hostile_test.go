package controllers

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
	"github.com/tokensync/tokensync/internal/endpointpolicy"
	"github.com/tokensync/tokensync/providers"
	"github.com/tokensync/tokensync/providers/builtin"
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

// TestHostileEndpointsRefusedBeforeAnyRequest: endpoints the CRD admits but
// no provider lives at (unicode hosts, IPv6 zones, out-of-range ports,
// dot segments, backslashes, numeric hosts) are refused by the operator's
// endpoint policy, with nothing dialed. A case the CRD starts rejecting
// needs no policy check and is skipped.
func TestHostileEndpointsRefusedBeforeAnyRequest(t *testing.T) {
	t.Parallel()
	const dnsName = "is not a valid DNS name or IP address"
	cases := []refusal{
		{name: "ipv6-zone", provider: providertest.Partner, endpoint: "https://[fe80::1%25eth0]/", message: "IPv6 zones are not allowed"},
		{name: "zero-width-space", provider: providertest.Partner, endpoint: "https://partner\u200b.example.com", message: dnsName},
		{name: "cyrillic-homograph", provider: providertest.Partner, endpoint: "https://\u0440artner.example.com", message: dnsName},
		{name: "emoji-host", provider: providertest.AmpliFi, endpoint: "https://\U0001F600.example.com", message: dnsName},
		{name: "no-break-space", provider: providertest.AmpliFi, endpoint: "https://partner.example.com\u00a0", message: dnsName},
		{name: "port-out-of-range", provider: providertest.AML, endpoint: "https://aml.example.com:99999", message: `port "99999" is out of range`},
		{name: "encoded-dot-segments", provider: providertest.AML, endpoint: "https://aml.example.com/v1/..%2f..%2finternal", message: `"." and ".." segments`},
		{name: "backslash-path", provider: providertest.AML, endpoint: `https://aml.example.com/v1\..\internal`, message: "backslashes are not allowed"},
		{name: "octal-ipv4", provider: providertest.Partner, endpoint: "http://0251.0376.0251.0376", message: "non-standard form"},
		{name: "short-ipv4", provider: providertest.Partner, endpoint: "http://127.1", message: "non-standard form"},
	}
	var admitted []refusal
	for _, c := range cases {
		obj := &tokensyncv1alpha1.TokenRequest{
			ObjectMeta: metav1.ObjectMeta{Name: c.name, Namespace: "default"},
			Spec: tokensyncv1alpha1.TokenRequestSpec{
				Provider: tokensyncv1alpha1.Provider(c.provider), Endpoint: c.endpoint,
				CredentialsSecretRef: tokensyncv1alpha1.SecretReference{Name: "creds"},
			},
		}
		if err := k8sClient.Create(context.Background(), obj, client.DryRunAll); err != nil {
			t.Logf("%s: the CRD now rejects %q: %v", c.name, c.endpoint, err)
			continue
		}
		admitted = append(admitted, c)
	}
	dials := &dialLog{}
	policy, err := endpointpolicy.Parse("", endpointpolicy.Rules{AllowLoopback: true})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnvWith(t, func(_ *env, r *TokenRequestReconciler) {
		r.EndpointPolicy = policy
		r.Providers = builtin.NewRegistry(providers.Options{Timeout: 5 * time.Second, DialControl: policyDialControl(policy, dials)})
	})
	expectRefusals(t, e, dials, admitted)
	if d := dials.all(); len(d) != 0 {
		t.Errorf("dialed %v", d)
	}
}
