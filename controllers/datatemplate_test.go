package controllers

import (
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
	"github.com/tokensync/tokensync/providers/providertest"
)

const sentinelToken = "SENTINEL-TOKEN-7f3a"

func TestRenderData(t *testing.T) {
	values := map[string]string{"token": sentinelToken, "expiresAt": "2026-11-22T13:00:00Z", "userId": "u-1"}
	tests := []struct {
		name    string
		data    map[string]tokensyncv1alpha1.DataTemplate
		want    map[string]string
		wantErr string
	}{
		{name: "bearer header", data: map[string]tokensyncv1alpha1.DataTemplate{"Authorization": "Bearer {{ .token }}"},
			want: map[string]string{"Authorization": "Bearer " + sentinelToken}},
		{name: "plain copy and extra value", data: map[string]tokensyncv1alpha1.DataTemplate{"API_TOKEN": "{{ .token }}", "username": "{{ .userId }}"},
			want: map[string]string{"API_TOKEN": sentinelToken, "username": "u-1"}},
		{name: "functions", data: map[string]tokensyncv1alpha1.DataTemplate{"b": "{{ .userId | b64enc }}", "u": "{{ upper .userId }}", "q": "{{ quote .userId }}"},
			want: map[string]string{"b": "dS0x", "u": "U-1", "q": `"u-1"`}},
		{name: "docker config json", data: map[string]tokensyncv1alpha1.DataTemplate{".dockerconfigjson": `{"auths":{"r.example":{"auth":"{{ print .userId ":" .token | b64enc }}"}}}`},
			want: map[string]string{".dockerconfigjson": `{"auths":{"r.example":{"auth":"` + "dS0xOlNFTlRJTkVMLVRPS0VOLTdmM2E=" + `"}}}`}},
		{name: "a value the token lacks", data: map[string]tokensyncv1alpha1.DataTemplate{"x": "{{ .userID }}"}, wantErr: "available: .expiresAt, .token, .userId"},
		{name: "does not parse", data: map[string]tokensyncv1alpha1.DataTemplate{"x": "{{ .token "}, wantErr: `spec.secretTemplate.data["x"]: does not parse`},
		{name: "unknown function (no env, file or network access)", data: map[string]tokensyncv1alpha1.DataTemplate{"x": `{{ env "HOME" }}`}, wantErr: "function \"env\" not defined"},
		{name: "printf (a width can allocate gigabytes)", data: map[string]tokensyncv1alpha1.DataTemplate{"x": `{{ printf "%0999999999d" 1 }}`}, wantErr: "function printf is not allowed: use print"},
		{name: "call", data: map[string]tokensyncv1alpha1.DataTemplate{"x": `{{ call .token }}`}, wantErr: "function call is not allowed"},
		{name: "a template calling itself", data: map[string]tokensyncv1alpha1.DataTemplate{"x": `{{ define "t" }}{{ template "t" (print . .) }}{{ end }}{{ template "t" .token }}`}, wantErr: "define, block and template are not allowed"},
		{name: "a template call", data: map[string]tokensyncv1alpha1.DataTemplate{"x": `{{ template "x" }}`}, wantErr: "define, block and template are not allowed"},
		{name: "range over integers (the issue's template)", data: map[string]tokensyncv1alpha1.DataTemplate{"x": "{{range 100000}}{{range 100000}}{{$.token}}{{end}}{{end}}"}, wantErr: "range is not allowed"},
		{name: "the whole data", data: map[string]tokensyncv1alpha1.DataTemplate{"x": "{{ . }}"}, wantErr: "read only as .key"},
		{name: "a pipeline multiplying the token", data: map[string]tokensyncv1alpha1.DataTemplate{"x": multiplyingTemplate}, wantErr: "would build more than 64 KiB"},
		{name: "b64dec of a token that is not base64", data: map[string]tokensyncv1alpha1.DataTemplate{"x": "{{ b64dec .token }}"}, wantErr: "b64dec was given a value that is not base64"},
		{name: "a key the provider writes", data: map[string]tokensyncv1alpha1.DataTemplate{"userId": "{{ .token }}"}, wantErr: "a key the provider writes"},
		{name: "wrong argument count", data: map[string]tokensyncv1alpha1.DataTemplate{"x": "{{ replace .token }}"}, wantErr: "does not render"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := renderData(tt.data, values)
			if tt.wantErr != "" {
				var te *templateError
				if !errors.As(err, &te) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want a templateError containing %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), sentinelToken) || strings.Contains(err.Error(), "u-1") {
					t.Fatalf("error %q quotes a value", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			gotS := map[string]string{}
			for k, v := range got {
				gotS[k] = string(v)
			}
			if !maps.Equal(gotS, tt.want) {
				t.Errorf("rendered %v, want %v", gotS, tt.want)
			}
		})
	}
}

// multiplyingTemplate multiplies any token: each replace of "" puts 32
// bytes before every byte, so five stages make 33^5 (39 million) times the
// token, gigabytes from a token of a few hundred bytes, were each stage not
// refused before it builds more than 64 KiB. The issue's own pipeline
// (replace "a" ..., twice, then b64enc twice) multiplies only the a's of a
// token; this one does not depend on the token.
const multiplyingTemplate = `{{ .token | replace "" "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" | replace "" "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" | replace "" "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" | replace "" "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" | replace "" "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" | b64enc | b64enc }}`

// TestRenderDataSecretBound: the data templates of one Secret render at
// most 1 MiB together; past it, nothing is rendered and no value quoted.
func TestRenderDataSecretBound(t *testing.T) {
	values := map[string]string{"token": sentinelToken + strings.Repeat("t", 60<<10-len(sentinelToken))}
	data := func(n int) map[string]tokensyncv1alpha1.DataTemplate {
		d := map[string]tokensyncv1alpha1.DataTemplate{}
		for i := range n {
			d[fmt.Sprintf("k%02d", i)] = "{{ .token }}"
		}
		return d
	}
	if got, err := renderData(data(17), values); err != nil || len(got) != 17 {
		t.Fatalf("17 values of 60 KiB: %d rendered, %v", len(got), err)
	}
	got, err := renderData(data(18), values)
	var te *templateError
	if !errors.As(err, &te) || got != nil || !strings.Contains(err.Error(), "render to more than 1024 KiB together, the limit of one Secret") ||
		strings.Contains(err.Error(), sentinelToken) {
		t.Fatalf("18 values of 60 KiB: %d rendered, %v", len(got), err)
	}
}

// TestTemplatedSecretDataAndType: templated keys are written next to the
// default keys in a Secret of the asked type; a type change re-creates the
// Secret with the same token; a template that does not render stops the
// TokenRequest without a write or a login, and fixing it needs no login.
func TestTemplatedSecretDataAndType(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.createSecret("creds", partnerCreds)
	e.createTokenRequest("shaped", providertest.Partner, "creds", func(tr *tokensyncv1alpha1.TokenRequest) {
		tr.Spec.SecretTemplate = &tokensyncv1alpha1.SecretTemplate{
			Type: corev1.SecretTypeBasicAuth,
			Data: map[string]tokensyncv1alpha1.DataTemplate{
				"username": "tokensync", "password": "{{ .token }}", "Authorization": "Bearer {{ .token }}",
			},
		}
	})
	e.waitReady("shaped")
	s, err := e.secret("shaped")
	if err != nil {
		t.Fatal(err)
	}
	tok := string(s.Data["token"])
	if s.Type != corev1.SecretTypeBasicAuth || string(s.Data["password"]) != tok || string(s.Data["Authorization"]) != "Bearer "+tok ||
		string(s.Data["username"]) != "tokensync" || len(s.Data["expiresAt"]) == 0 {
		t.Fatalf("Secret type %s, keys %v", s.Type, maps.Collect(func(yield func(string, int) bool) {
			for k, v := range s.Data {
				if !yield(k, len(v)) {
					return
				}
			}
		}))
	}

	// A type change: the Secret is made again, same token, no login.
	oldUID := s.UID
	e.patchTokenRequest("shaped", func(tr *tokensyncv1alpha1.TokenRequest) {
		tr.Spec.SecretTemplate = &tokensyncv1alpha1.SecretTemplate{Data: map[string]tokensyncv1alpha1.DataTemplate{"API_TOKEN": "{{ .token }}"}}
	})
	eventually(t, readyTimeout, func() error {
		s, err := e.secret("shaped")
		if err != nil {
			return err
		}
		if s.UID == oldUID || s.Type != corev1.SecretTypeOpaque {
			return fmt.Errorf("type %s, same Secret %v", s.Type, s.UID == oldUID)
		}
		if string(s.Data["token"]) != tok || string(s.Data["API_TOKEN"]) != tok {
			return fmt.Errorf("the token changed, or API_TOKEN is missing")
		}
		if _, ok := s.Data["Authorization"]; ok {
			return fmt.Errorf("a key removed from the template is still there")
		}
		return nil
	})
	e.waitEvent("shaped", "Normal/SecretRecreated")

	// A template that does not render: nothing written, no login.
	before, _ := e.secret("shaped")
	e.patchTokenRequest("shaped", func(tr *tokensyncv1alpha1.TokenRequest) {
		tr.Spec.SecretTemplate.Data["API_TOKEN"] = "{{ .accessToken }}"
	})
	tr := e.waitCondition("shaped", metav1.ConditionFalse, tokensyncv1alpha1.ReasonInvalidTemplate)
	if msg := readyCondition(tr).Message; !strings.Contains(msg, `"API_TOKEN"`) || !strings.Contains(msg, ".token") || strings.Contains(msg, tok) {
		t.Errorf("message %q: want the key and the fields available, never the token", msg)
	}
	if c := meta.FindStatusCondition(tr.Status.Conditions, tokensyncv1alpha1.ConditionStalled); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("Stalled %+v", c)
	}
	if after, _ := e.secret("shaped"); after.ResourceVersion != before.ResourceVersion {
		t.Error("the Secret was written with a template that does not render")
	}
	e.patchTokenRequest("shaped", func(tr *tokensyncv1alpha1.TokenRequest) {
		tr.Spec.SecretTemplate.Data["API_TOKEN"] = "{{ .token }}"
	})
	e.waitReady("shaped")
	if n := e.fake.Logins(providertest.Partner); n != 1 {
		t.Errorf("%d logins, want 1: template and type changes need none", n)
	}
}

// hostileHeapBound is how far the test process's heap (the manager runs in
// it) may grow over its start while hostile templates are refused and
// stopped: a manager and a few TokenRequests take a few MiB; the templates
// below would take gigabytes unbounded.
const hostileHeapBound = 100 << 20

// sampleHeap records the peak of the process's heap every 20 ms until the
// test ends; the returned function reads it.
func sampleHeap(t *testing.T) func() uint64 {
	var mu sync.Mutex
	var peak uint64
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		var m runtime.MemStats
		for {
			runtime.ReadMemStats(&m)
			mu.Lock()
			peak = max(peak, m.HeapAlloc)
			mu.Unlock()
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(func() { close(done); <-stopped })
	return func() uint64 {
		mu.Lock()
		defer mu.Unlock()
		return peak
	}
}

// TestHostileTemplates: templates written to take the operator down do
// not. The issue's 60-character range template is refused at admission; a
// template the admission rules cannot see through (printf behind a "}") is
// refused by the sandbox before any login (InvalidTemplate, Stalled); a
// pipeline multiplying the token is stopped at the bound after the login:
// nothing written, and fixing the template writes the token kept, without
// a second login. Meanwhile the manager's heap stays within
// hostileHeapBound of its start, and another TokenRequest of the namespace
// is served. Not parallel: the heap measured is the whole test process's.
func TestHostileTemplates(t *testing.T) {
	runtime.GC()
	var start runtime.MemStats
	runtime.ReadMemStats(&start)
	peak := sampleHeap(t)

	e := newEnv(t)
	for _, name := range []string{"good", "hidden-printf", "multiplied"} {
		e.createSecret(name+"-creds", map[string]string{"accessKey": "ak-" + name, "secret": "s3cr3t-value"})
	}
	withData := func(data map[string]tokensyncv1alpha1.DataTemplate) func(*tokensyncv1alpha1.TokenRequest) {
		return func(tr *tokensyncv1alpha1.TokenRequest) {
			tr.Spec.SecretTemplate = &tokensyncv1alpha1.SecretTemplate{Data: data}
		}
	}
	e.createTokenRequest("good", providertest.Partner, "good-creds", withData(map[string]tokensyncv1alpha1.DataTemplate{"Authorization": "Bearer {{ .token }}"}))

	// The issue's template does not get in.
	issue := &tokensyncv1alpha1.TokenRequest{
		ObjectMeta: metav1.ObjectMeta{Name: "ranges", Namespace: e.ns},
		Spec: tokensyncv1alpha1.TokenRequestSpec{
			LoginSpec: tokensyncv1alpha1.LoginSpec{
				Provider: providertest.Partner,
				Endpoint: e.fake.URL(),
				SecretTemplate: &tokensyncv1alpha1.SecretTemplate{Data: map[string]tokensyncv1alpha1.DataTemplate{
					"x": "{{range 100000}}{{range 100000}}{{$.token}}{{end}}{{end}}",
				}},
			},
			CredentialsSecretRef: tokensyncv1alpha1.SecretReference{Name: "good-creds"},
		},
	}
	if err := k8sClient.Create(e.ctx(), issue); err == nil || !strings.Contains(err.Error(), "templates must not use range") {
		t.Fatalf("the issue's template: %v, want a rejection at admission", err)
	}

	e.createTokenRequest("hidden-printf", providertest.Partner, "hidden-printf-creds", withData(map[string]tokensyncv1alpha1.DataTemplate{
		"x": `{{ print "}" (printf "%0999999999d" 1) }}`,
	}))
	e.createTokenRequest("multiplied", providertest.Partner, "multiplied-creds", withData(map[string]tokensyncv1alpha1.DataTemplate{
		"Authorization": "Bearer {{ .token }}", "x": multiplyingTemplate,
	}))

	tr := e.waitCondition("hidden-printf", metav1.ConditionFalse, tokensyncv1alpha1.ReasonInvalidTemplate)
	if msg := readyCondition(tr).Message; !strings.Contains(msg, `spec.secretTemplate.data["x"]: function printf is not allowed: use print`) {
		t.Errorf("hidden-printf: message %q", msg)
	}
	if c := meta.FindStatusCondition(tr.Status.Conditions, tokensyncv1alpha1.ConditionStalled); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("hidden-printf: Stalled %+v", c)
	}

	tr = e.waitCondition("multiplied", metav1.ConditionFalse, tokensyncv1alpha1.ReasonInvalidTemplate)
	msg := readyCondition(tr).Message
	if !strings.Contains(msg, `spec.secretTemplate.data["x"]`) || !strings.Contains(msg, "replace would build more than 64 KiB") ||
		!strings.Contains(msg, "nothing was written") {
		t.Errorf("multiplied: message %q", msg)
	}
	if _, err := e.secret("multiplied"); !apierrors.IsNotFound(err) {
		t.Errorf("multiplied: the Secret was written with a template stopped at the bound (%v)", err)
	}
	e.waitReady("good")

	// Fixed, the template writes the token kept: no second login.
	e.patchTokenRequest("multiplied", func(tr *tokensyncv1alpha1.TokenRequest) {
		tr.Spec.SecretTemplate.Data["x"] = "{{ .token | b64enc }}"
	})
	e.waitReady("multiplied")
	s, err := e.secret("multiplied")
	if err != nil {
		t.Fatal(err)
	}
	tok := string(s.Data["token"])
	if tok == "" || string(s.Data["Authorization"]) != "Bearer "+tok || string(s.Data["x"]) != base64.StdEncoding.EncodeToString([]byte(tok)) {
		t.Errorf("multiplied: Secret keys %d, the templates not rendered with the token", len(s.Data))
	}
	if strings.Contains(msg, tok) {
		t.Errorf("multiplied: the message quoted the token")
	}

	for name, want := range map[string]int{"good": 1, "hidden-printf": 0, "multiplied": 1} {
		if n := e.fake.LoginsFor(providertest.Partner, "ak-"+name); n != want {
			t.Errorf("%s: %d logins, want %d", name, n, want)
		}
	}
	if c := readyCondition(e.tokenRequest("good")); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("good: Ready %+v", c)
	}
	if grown := int64(peak()) - int64(start.HeapAlloc); grown > hostileHeapBound {
		t.Errorf("the heap grew by %d MiB, over the bound of %d MiB", grown>>20, hostileHeapBound>>20)
	} else {
		t.Logf("the heap grew by at most %.1f MiB (bound %d MiB)", float64(grown)/(1<<20), hostileHeapBound>>20)
	}
}
