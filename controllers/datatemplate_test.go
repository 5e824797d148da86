package controllers

import (
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

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
		{name: "printf (a width can allocate gigabytes)", data: map[string]tokensyncv1alpha1.DataTemplate{"x": `{{ printf "%0999999999d" 1 }}`}, wantErr: "function printf is not allowed"},
		{name: "call", data: map[string]tokensyncv1alpha1.DataTemplate{"x": `{{ call .token }}`}, wantErr: "function call is not allowed"},
		{name: "a template calling itself", data: map[string]tokensyncv1alpha1.DataTemplate{"x": `{{ define "t" }}{{ template "t" (print . .) }}{{ end }}{{ template "t" .token }}`}, wantErr: "define and block are not allowed"},
		{name: "a template call", data: map[string]tokensyncv1alpha1.DataTemplate{"x": `{{ template "x" }}`}, wantErr: "template is not allowed"},
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

// FuzzRenderData: any template either renders or fails with a
// templateError that quotes no value; rendering never panics.
func FuzzRenderData(f *testing.F) {
	for _, seed := range []string{"Bearer {{ .token }}", "{{ .token | b64enc }}", "{{ b64dec .token }}", "{{ printf \"%v\" . }}",
		"{{ index . \"token\" }}", "{{ range $k, $v := . }}{{ $k }}={{ $v }}{{ end }}", "{{ .token", "{{ len .token | printf \"%d\" }}",
		"{{ template \"x\" }}", "{{ define \"x\" }}{{ .token }}{{ end }}{{ template \"x\" . }}", "{{ call .token }}", "{{ slice .token 1 3 }}"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, tmpl string) {
		values := map[string]string{"token": sentinelToken, "expiresAt": "2026-11-22T13:00:00Z"}
		_, err := renderData(map[string]tokensyncv1alpha1.DataTemplate{"k": tokensyncv1alpha1.DataTemplate(tmpl)}, values)
		if err == nil {
			return
		}
		var te *templateError
		if !errors.As(err, &te) {
			t.Fatalf("%T %v is not a templateError", err, err)
		}
		if strings.Contains(err.Error(), sentinelToken) && !strings.Contains(tmpl, sentinelToken) {
			t.Fatalf("error %q quotes the token", err)
		}
	})
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
