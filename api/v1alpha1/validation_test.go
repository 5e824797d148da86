package v1alpha1_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
	"github.com/tokensync/tokensync/internal/urlpath"
)

// TestSamplesAreAccepted applies every sample with a server-side dry run:
// the API server itself must accept them.
func TestSamplesAreAccepted(t *testing.T) {
	ns := newNamespace(t)
	files, err := filepath.Glob(filepath.Join("..", "..", "config", "samples", "tokensync_*.yaml"))
	if err != nil || len(files) < 3 {
		t.Fatalf("want a sample per provider, found %v (%v)", files, err)
	}
	for _, f := range files {
		for _, obj := range readObjects(t, f) {
			if obj.GetKind() != "ClusterTokenRequest" {
				obj.SetNamespace(ns)
			}
			if err := k8sClient.Create(context.Background(), obj, client.DryRunAll); err != nil {
				t.Errorf("%s: %s %s rejected: %v", filepath.Base(f), obj.GetKind(), obj.GetName(), err)
			}
		}
	}
}

func readObjects(t *testing.T, path string) []*unstructured.Unstructured {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := yaml.NewYAMLOrJSONDecoder(f, 4096)
	var out []*unstructured.Unstructured
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			if err.Error() == "EOF" {
				return out
			}
			t.Fatalf("%s: %v", path, err)
		}
		if len(u.Object) > 0 {
			out = append(out, u)
		}
	}
}

// tokenRequest builds an unstructured TokenRequest from a spec, so tests can
// send shapes the Go types could not express.
func tokenRequest(ns, name string, spec map[string]any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "tokensync.io/v1alpha1",
		"kind":       "TokenRequest",
		"metadata":   map[string]any{"name": name, "namespace": ns},
	}}
	if spec != nil {
		u.Object["spec"] = spec
	}
	return u
}

func validSpec(mut func(map[string]any)) map[string]any {
	s := map[string]any{
		"provider":             "partner",
		"endpoint":             "https://partner.example.com",
		"credentialsSecretRef": map[string]any{"name": "creds"},
	}
	if mut != nil {
		mut(s)
	}
	return s
}

// TestAdmissionRejectsWrongTokenRequests proves the CRD schema and its CEL
// rules reject each wrong shape with a message that says what to fix.
func TestAdmissionRejectsWrongTokenRequests(t *testing.T) {
	ns := newNamespace(t)
	long := strings.Repeat("a", 300)
	tests := []struct {
		name string
		obj  *unstructured.Unstructured
		want string // part of the API server's message
	}{
		{"unknown provider", tokenRequest(ns, "x", validSpec(func(s map[string]any) { s["provider"] = "okta" })),
			`spec.provider: Unsupported value: "okta": supported values: "aml", "amplifi", "partner", "oauth2", "http"`},
		{"missing provider", tokenRequest(ns, "x", validSpec(func(s map[string]any) { delete(s, "provider") })),
			"spec.provider: Required value"},
		{"missing spec", tokenRequest(ns, "x", nil), "spec: Required value"},
		{"missing credentialsSecretRef", tokenRequest(ns, "x", validSpec(func(s map[string]any) { delete(s, "credentialsSecretRef") })),
			"spec.credentialsSecretRef: Required value"},
		{"empty credentials name", tokenRequest(ns, "x", validSpec(func(s map[string]any) { s["credentialsSecretRef"] = map[string]any{"name": ""} })),
			"spec.credentialsSecretRef.name: Invalid value"},
		{"credentials name not a Secret name", tokenRequest(ns, "x", validSpec(func(s map[string]any) { s["credentialsSecretRef"] = map[string]any{"name": "Bad_Name"} })),
			"spec.credentialsSecretRef.name in body should match"},
		{"amplifi without endpoint", tokenRequest(ns, "x", validSpec(func(s map[string]any) { s["provider"] = "amplifi"; delete(s, "endpoint") })),
			"spec.endpoint is required for providers "},
		{"partner without endpoint", tokenRequest(ns, "x", validSpec(func(s map[string]any) { delete(s, "endpoint") })),
			"spec.endpoint is required for providers "},
		{"partner with empty endpoint", tokenRequest(ns, "x", validSpec(func(s map[string]any) { s["endpoint"] = "" })),
			"spec.endpoint is required for providers "},
		{"relative endpoint", tokenRequest(ns, "x", validSpec(func(s map[string]any) { s["endpoint"] = "partner.example.com" })),
			"spec.endpoint must be an absolute URL starting with http:// or https://"},
		{"ftp endpoint", tokenRequest(ns, "x", validSpec(func(s map[string]any) { s["endpoint"] = "ftp://partner.example.com" })),
			"spec.endpoint must be an absolute URL starting with http:// or https://"},
		{"file endpoint", tokenRequest(ns, "x", validSpec(func(s map[string]any) { s["endpoint"] = "file:///etc/passwd" })),
			"spec.endpoint must be an absolute URL starting with http:// or https://"},
		{"endpoint without host", tokenRequest(ns, "x", validSpec(func(s map[string]any) { s["endpoint"] = "https://" })),
			"spec.endpoint must be a valid URL with a host name"},
		{"endpoint with user-info", tokenRequest(ns, "x", validSpec(func(s map[string]any) { s["endpoint"] = "https://user:pw@partner.example.com" })),
			"spec.endpoint must not contain user-info"},
		{"endpoint with fragment", tokenRequest(ns, "x", validSpec(func(s map[string]any) { s["endpoint"] = "https://partner.example.com/#x" })),
			"spec.endpoint must not contain a query (?) or fragment (#)"},
		{"endpoint with query", tokenRequest(ns, "x", validSpec(func(s map[string]any) { s["endpoint"] = "https://partner.example.com/?a=b" })),
			"spec.endpoint must not contain a query (?) or fragment (#)"},
		{"endpoint with whitespace", tokenRequest(ns, "x", validSpec(func(s map[string]any) { s["endpoint"] = "https://partner.example.com/a b" })),
			"spec.endpoint must not contain whitespace or control characters"},
		{"very long endpoint", tokenRequest(ns, "x", validSpec(func(s map[string]any) { s["endpoint"] = "https://" + strings.Repeat("a", 3000) + ".com" })),
			"spec.endpoint: Too long"},
		{"refreshBefore under 10s", tokenRequest(ns, "x", validSpec(func(s map[string]any) { s["refreshBefore"] = "5s" })),
			"spec.refreshBefore must be at least 10s"},
		{"refreshBefore not a duration", tokenRequest(ns, "x", validSpec(func(s map[string]any) { s["refreshBefore"] = "five minutes" })),
			"spec.refreshBefore in body should match"},
		{"refreshBefore negative", tokenRequest(ns, "x", validSpec(func(s map[string]any) { s["refreshBefore"] = "-5m" })),
			"spec.refreshBefore in body should match"},
		{"secretName not a Secret name", tokenRequest(ns, "x", validSpec(func(s map[string]any) { s["secretName"] = "My Secret" })),
			"spec.secretName in body should match"},
		{"secretName too long", tokenRequest(ns, "x", validSpec(func(s map[string]any) { s["secretName"] = long })),
			"spec.secretName: Too long"},
		{"template sets managed-by", tokenRequest(ns, "x", validSpec(func(s map[string]any) {
			s["secretTemplate"] = map[string]any{"labels": map[string]any{"app.kubernetes.io/managed-by": "me"}}
		})), "must not set app.kubernetes.io/managed-by"},
		{"template label value invalid", tokenRequest(ns, "x", validSpec(func(s map[string]any) {
			s["secretTemplate"] = map[string]any{"labels": map[string]any{"app": "not valid!"}}
		})), "spec.secretTemplate.labels.app in body should match"},
		{"template label key invalid", tokenRequest(ns, "x", validSpec(func(s map[string]any) {
			s["secretTemplate"] = map[string]any{"labels": map[string]any{"bad key": "v"}}
		})), "spec.secretTemplate.labels keys must be valid label keys"},
		{"template annotation reserved", tokenRequest(ns, "x", validSpec(func(s map[string]any) {
			s["secretTemplate"] = map[string]any{"annotations": map[string]any{"tokensync.io/expires-at": "never"}}
		})), "must not use the tokensync.io/ prefix"},
		{"unknown field", tokenRequest(ns, "x", validSpec(func(s map[string]any) { s["refreshAfter"] = "5m" })),
			`unknown field "spec.refreshAfter"`},
		{"name with unusual characters", tokenRequest(ns, "Bad_Name!", validSpec(nil)), "a lowercase RFC 1123 subdomain"},
		{"name too long", tokenRequest(ns, long, validSpec(nil)), "must be no more than 253 characters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := k8sClient.Create(context.Background(), tt.obj, client.DryRunAll, client.FieldValidation("Strict"))
			if err == nil {
				t.Fatalf("accepted, want rejection containing %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("message %q does not contain %q", err.Error(), tt.want)
			}
		})
	}
}

// TestAdmissionAcceptsValidShapes guards against rules that are too strict.
func TestAdmissionAcceptsValidShapes(t *testing.T) {
	ns := newNamespace(t)
	tests := []struct {
		name string
		spec map[string]any
	}{
		{"aml without endpoint", map[string]any{"provider": "aml", "credentialsSecretRef": map[string]any{"name": "c"}}},
		{"http loopback endpoint with port and base path", validSpec(func(s map[string]any) { s["endpoint"] = "http://127.0.0.1:8080/base/" })},
		{"https IPv6 endpoint", validSpec(func(s map[string]any) { s["endpoint"] = "https://[::1]:8443" })},
		{"refreshBefore exactly 10s", validSpec(func(s map[string]any) { s["refreshBefore"] = "10s" })},
		{"refreshBefore compound", validSpec(func(s map[string]any) { s["refreshBefore"] = "1h30m" })},
		{"template with prefixed keys", validSpec(func(s map[string]any) {
			s["secretTemplate"] = map[string]any{
				"labels":      map[string]any{"example.com/team": "payments", "app": ""},
				"annotations": map[string]any{"reloader.stakater.com/match": "true"},
			}
		})},
		{"dotted secretName", validSpec(func(s map[string]any) { s["secretName"] = "partner.token-1" })},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			obj := tokenRequest(ns, "ok-"+string(rune('a'+i)), tt.spec)
			if err := k8sClient.Create(context.Background(), obj, client.DryRunAll); err != nil {
				t.Fatalf("rejected: %v", err)
			}
		})
	}
}

// TestDefaults: refreshBefore stays unset (the operator's default window
// differs from any explicit value), and a status the operator has not yet
// written reads as observedGeneration 0, so GitOps tools see it in progress.
func TestDefaults(t *testing.T) {
	ns := newNamespace(t)
	obj := tokenRequest(ns, "defaults", map[string]any{"provider": "aml", "credentialsSecretRef": map[string]any{"name": "c"}})
	if err := k8sClient.Create(context.Background(), obj); err != nil {
		t.Fatal(err)
	}
	if got, found, _ := unstructured.NestedString(obj.Object, "spec", "refreshBefore"); found {
		t.Fatalf("refreshBefore defaulted to %q, want it unset", got)
	}
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(tokensyncv1alpha1.GroupVersion.WithKind("TokenRequest"))
	if err := k8sClient.Get(context.Background(), client.ObjectKeyFromObject(obj), u); err != nil {
		t.Fatal(err)
	}
	if og, found, _ := unstructured.NestedInt64(u.Object, "status", "observedGeneration"); !found || og != 0 || u.GetGeneration() != 1 {
		t.Fatalf("status.observedGeneration %d (found %v), generation %d; want 0 before the operator acts", og, found, u.GetGeneration())
	}
}

// TestAdmissionRejectsHostileInput adds to TestAdmissionRejectsWrongTokenRequests
// the hostile spellings: other schemes, unescaped IPv6 zones, whitespace and
// control characters anywhere, and unicode in names.
func TestAdmissionRejectsHostileInput(t *testing.T) {
	ns := newNamespace(t)
	const (
		scheme  = "spec.endpoint must be an absolute URL starting with http:// or https://"
		space   = "spec.endpoint must not contain whitespace or control characters"
		host    = "spec.endpoint must be a valid URL with a host name"
		pattern = "in body should match"
	)
	endpoint := func(ep string) map[string]any {
		return validSpec(func(s map[string]any) { s["endpoint"] = ep })
	}
	tests := []struct {
		name string
		spec map[string]any
		obj  string // the TokenRequest's name, "x" when empty
		want string
	}{
		{name: "javascript scheme", spec: endpoint("javascript:alert(1)"), want: scheme},
		{name: "javascript scheme with slashes", spec: endpoint("javascript://partner.example.com/%0aalert(1)"), want: scheme},
		{name: "data scheme", spec: endpoint("data:text/html,<script>alert(1)</script>"), want: scheme},
		{name: "upper-case scheme", spec: endpoint("HTTPS://partner.example.com"), want: scheme},
		{name: "scheme without slashes", spec: endpoint("https:partner.example.com"), want: scheme},
		{name: "leading space", spec: endpoint(" https://partner.example.com"), want: space},
		{name: "space in host", spec: endpoint("https://partner .example.com"), want: space},
		{name: "trailing tab", spec: endpoint("https://partner.example.com\t"), want: space},
		{name: "newline", spec: endpoint("https://partner.example.com/\nHost: evil"), want: space},
		{name: "NUL", spec: endpoint("https://partner.example.com/\x00"), want: space},
		{name: "DEL", spec: endpoint("https://partner.example.com/\x7f"), want: space},
		{name: "IPv6 zone not escaped", spec: endpoint("https://[fe80::1%eth0]/"), want: host},
		{name: "no host", spec: endpoint("http:///login"), want: host},
		{name: "backslash user-info trick", spec: endpoint(`https://partner.example.com\@evil.example.com`), want: "must not contain user-info"},
		{name: "unicode TokenRequest name", spec: validSpec(nil), obj: "tökén", want: "a lowercase RFC 1123 subdomain"},
		{name: "unicode secretName", spec: validSpec(func(s map[string]any) { s["secretName"] = "tökén" }), want: "spec.secretName " + pattern},
		{name: "zero-width space in credentials name", spec: validSpec(func(s map[string]any) {
			s["credentialsSecretRef"] = map[string]any{"name": "creds\u200b"}
		}), want: "spec.credentialsSecretRef.name " + pattern},
		{name: "right-to-left override in secretName", spec: validSpec(func(s map[string]any) { s["secretName"] = "token\u202egnp" }), want: "spec.secretName " + pattern},
		{name: "unicode label value", spec: validSpec(func(s map[string]any) {
			s["secretTemplate"] = map[string]any{"labels": map[string]any{"team": "zahlungsverkehr-ä"}}
		}), want: "spec.secretTemplate.labels.team " + pattern},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := tt.obj
			if name == "" {
				name = "x"
			}
			err := k8sClient.Create(context.Background(), tokenRequest(ns, name, tt.spec), client.DryRunAll, client.FieldValidation("Strict"))
			if err == nil {
				t.Fatalf("accepted, want rejection containing %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("message %q does not contain %q", err.Error(), tt.want)
			}
		})
	}
}

// TestAdmissionOfConsumerFields: secretTemplate.data and type,
// rolloutRestartTargets and deletionPolicy are checked at admission where
// the API server can check them, with messages that say what to fix.
func TestAdmissionOfConsumerFields(t *testing.T) {
	ns := newNamespace(t)
	template := func(tmpl map[string]any) map[string]any {
		return validSpec(func(s map[string]any) { s["secretTemplate"] = tmpl })
	}
	rejected := []struct {
		name string
		spec map[string]any
		want string
	}{
		{"template with an unclosed action", template(map[string]any{"data": map[string]any{"Authorization": "Bearer {{ .token "}}), "last {{ action is not closed"},
		{"template writing the token key", template(map[string]any{"data": map[string]any{"token": "{{ .token }}"}}), "must not set token or expiresAt"},
		{"template key not a Secret key", template(map[string]any{"data": map[string]any{"has space": "x"}}), "keys must be valid Secret keys"},
		{"template too long", template(map[string]any{"data": map[string]any{"k": strings.Repeat("x", 4097)}}), "Too long"},
		{"basic-auth without username or password", template(map[string]any{"type": "kubernetes.io/basic-auth", "data": map[string]any{"API_TOKEN": "{{ .token }}"}}),
			"needs a username or password key"},
		{"dockerconfigjson without its key", template(map[string]any{"type": "kubernetes.io/dockerconfigjson"}), "needs a .dockerconfigjson key"},
		{"service-account-token type", template(map[string]any{"type": "kubernetes.io/service-account-token"}), "must not be a type Kubernetes fills in itself"},
		{"restart target of another kind", validSpec(func(s map[string]any) {
			s["rolloutRestartTargets"] = []any{map[string]any{"kind": "Job", "name": "x"}}
		}), `supported values: "Deployment", "StatefulSet", "DaemonSet"`},
		{"restart target without a name", validSpec(func(s map[string]any) {
			s["rolloutRestartTargets"] = []any{map[string]any{"kind": "Deployment"}}
		}), "name: Required value"},
		{"the same restart target twice", validSpec(func(s map[string]any) {
			s["rolloutRestartTargets"] = []any{map[string]any{"kind": "Deployment", "name": "a"}, map[string]any{"kind": "Deployment", "name": "a"}}
		}), "Duplicate value"},
		{"unknown deletionPolicy", validSpec(func(s map[string]any) { s["deletionPolicy"] = "Orphan" }), `supported values: "Delete", "Retain"`},
	}
	for i, tt := range rejected {
		t.Run(tt.name, func(t *testing.T) {
			err := k8sClient.Create(context.Background(), tokenRequest(ns, fmt.Sprintf("r%d", i), tt.spec), client.DryRunAll)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want a rejection containing %q", err, tt.want)
			}
		})
	}
	accepted := map[string]map[string]any{
		"basic-auth with templated password": template(map[string]any{"type": "kubernetes.io/basic-auth",
			"data": map[string]any{"username": "svc", "password": "{{ .token }}"}}),
		"docker registry credentials": template(map[string]any{"type": "kubernetes.io/dockerconfigjson",
			"data": map[string]any{".dockerconfigjson": `{"auths":{"registry.example.com":{"auth":"{{ print "x:" .token | b64enc }}"}}}`}}),
		"custom type and plain keys": template(map[string]any{"type": "example.com/api-token", "data": map[string]any{"API_TOKEN": "{{ .token }}"}}),
		"restart targets, suspend, retain": validSpec(func(s map[string]any) {
			s["rolloutRestartTargets"] = []any{map[string]any{"kind": "Deployment", "name": "api"}, map[string]any{"kind": "StatefulSet", "name": "api"}}
			s["suspend"] = true
			s["deletionPolicy"] = "Retain"
		}),
	}
	i := 0
	for name, spec := range accepted {
		i++
		t.Run(name, func(t *testing.T) {
			if err := k8sClient.Create(context.Background(), tokenRequest(ns, fmt.Sprintf("a%d", i), spec), client.DryRunAll); err != nil {
				t.Fatalf("rejected: %v", err)
			}
		})
	}
	// deletionPolicy defaults to Delete.
	obj := tokenRequest(ns, "defaulted", validSpec(nil))
	if err := k8sClient.Create(context.Background(), obj, client.DryRunAll); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := unstructured.NestedString(obj.Object, "spec", "deletionPolicy"); got != "Delete" {
		t.Errorf("deletionPolicy defaulted to %q, want Delete", got)
	}
}

// TestAdmissionOfTemplates: templates of spec.secretTemplate.data and of
// spec.http (headers, body fields) that use range, with, define, template
// or block, or call printf or call, are refused at admission with what to
// use instead. The operator's sandbox checks every template fully; these
// rules only answer the common mistakes at once, so text that merely names
// a keyword is accepted.
func TestAdmissionOfTemplates(t *testing.T) {
	ns := newNamespace(t)
	const (
		keywords = "templates must not use range, with, define, template or block"
		funcs    = "templates must not call printf or call: use print"
	)
	data := func(tmpl string) map[string]any {
		return validSpec(func(s map[string]any) {
			s["secretTemplate"] = map[string]any{"data": map[string]any{"Authorization": tmpl}}
		})
	}
	header := func(tmpl string) map[string]any {
		return httpSpec(func(h map[string]any) { h["headers"] = map[string]any{"X-Key": tmpl} })
	}
	field := func(tmpl string) map[string]any {
		return httpSpec(func(h map[string]any) { h["body"] = map[string]any{"fields": map[string]any{"key": tmpl}} })
	}
	rejected := []struct {
		name string
		spec map[string]any
		want string
	}{
		{"the issue's template: range over integers", data("{{range 100000}}{{range 100000}}{{$.token}}{{end}}{{end}}"), keywords},
		{"range with trim markers", data("{{- range $i, $c := .token -}}{{ $c }}{{- end -}}"), keywords},
		{"with", data("{{ with .token }}Bearer {{ . }}{{ end }}"), keywords},
		{"else with", data("{{ with .userId }}{{ . }}{{ else with .token }}{{ . }}{{ end }}"), keywords},
		{"define and template", data(`{{ define "t" }}{{ template "t" . }}{{ end }}{{ template "t" . }}`), keywords},
		{"block", data(`{{ block "t" . }}x{{ end }}`), keywords},
		{"printf", data(`{{ printf "%0999999999d" 1 }}`), funcs},
		{"printf in a pipeline", data(`{{ .token | printf "%s" }}`), funcs},
		{"printf nested", data(`{{ print (printf "%s" .token) }}`), funcs},
		{"call", data(`{{ call .token }}`), funcs},
		{"range in a header", header("{{ range 100000 }}{{ .key }}{{ end }}"), keywords},
		{"printf in a header", header(`{{ printf "%s" .key }}`), funcs},
		{"range in a body field", field("{{ range 100000 }}{{ .key }}{{ end }}"), keywords},
		{"call in a body field", field(`{{ .key | call }}`), funcs},
	}
	for i, tt := range rejected {
		t.Run(tt.name, func(t *testing.T) {
			err := k8sClient.Create(context.Background(), tokenRequest(ns, fmt.Sprintf("r%d", i), tt.spec), client.DryRunAll)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want a rejection containing %q", err, tt.want)
			}
		})
	}
	accepted := []struct {
		name string
		spec map[string]any
	}{
		{"keywords in the text", data("Bearer {{ .token }} (range: all; call support, printf and with template)")},
		{"keywords as keys and strings", data(`{{ index . "range" }}{{ .template }}{{ print "with" "printf" }}`)},
		{"keywords in a comment", data("{{/* no range, no with */}}{{ .token }}")},
		{"names that start with a keyword", data("{{ .ranges }}{{ .caller }}{{ .printfLike }}")},
		{"if, else if, else", data(`{{ if .userId }}{{ .userId }}{{ else if eq .token "" }}-{{ else }}{{ .token | b64enc }}{{ end }}`)},
		{"a header with functions", header(`Basic {{ print .user ":" .key | b64enc }}`)},
		{"a body field with functions", field(`{{ .key | trim | urlquery }}`)},
	}
	for i, tt := range accepted {
		t.Run(tt.name, func(t *testing.T) {
			if err := k8sClient.Create(context.Background(), tokenRequest(ns, fmt.Sprintf("a%d", i), tt.spec), client.DryRunAll); err != nil {
				t.Fatalf("rejected: %v", err)
			}
		})
	}
}

// httpSpec is a valid provider http spec (the AML Watcher login), changed by mut.
func httpSpec(mut func(h map[string]any)) map[string]any {
	h := map[string]any{
		"path":    "/api/get-access-token",
		"body":    map[string]any{"fields": map[string]any{"email": "{{ .email }}", "password": "{{ .password }}"}},
		"token":   map[string]any{"jsonPointer": "/data/access_token"},
		"expiry":  map[string]any{"fromJWT": true, "lifetime": "3h"},
		"success": map[string]any{"jsonPointer": "/status", "equals": "SUCCESS"},
	}
	if mut != nil {
		mut(h)
	}
	return map[string]any{
		"provider": "http", "endpoint": "https://api.amlwatcher.com",
		"credentialsSecretRef": map[string]any{"name": "creds"}, "http": h,
	}
}

// oauth2Spec is a valid provider oauth2 spec, changed by mut.
func oauth2Spec(mut func(o map[string]any)) map[string]any {
	o := map[string]any{"scopes": []any{"api.read"}, "parameters": map[string]any{"audience": "https://api.example.com"}}
	if mut != nil {
		mut(o)
	}
	return map[string]any{
		"provider": "oauth2", "endpoint": "https://idp.example.com/oauth/token",
		"credentialsSecretRef": map[string]any{"name": "creds"}, "oauth2": o,
	}
}

// TestAdmissionOfProviderSettings: kubectl apply rejects an incomplete or
// misplaced spec.http or spec.oauth2 with a message that says what is
// missing.
func TestAdmissionOfProviderSettings(t *testing.T) {
	ns := newNamespace(t)
	rejected := []struct {
		name string
		spec map[string]any
		want string
	}{
		{"http without spec.http", func() map[string]any { s := httpSpec(nil); delete(s, "http"); return s }(),
			"spec.http is required for provider http"},
		{"http without endpoint", func() map[string]any { s := httpSpec(nil); delete(s, "endpoint"); return s }(),
			"spec.endpoint is required for providers "},
		{"spec.http with another provider", func() map[string]any { s := httpSpec(nil); s["provider"] = "partner"; return s }(),
			"spec.http is only allowed with provider http"},
		{"oauth2 without spec.oauth2", func() map[string]any { s := oauth2Spec(nil); delete(s, "oauth2"); return s }(),
			"spec.oauth2 is required for provider oauth2"},
		{"spec.oauth2 with another provider", func() map[string]any {
			s := oauth2Spec(nil)
			s["provider"] = "http"
			s["http"] = httpSpec(nil)["http"]
			return s
		}(),
			"spec.oauth2 is only allowed with provider oauth2"},
		{"no token", httpSpec(func(h map[string]any) { delete(h, "token") }), "spec.http.token: Required value"},
		{"empty token", httpSpec(func(h map[string]any) { h["token"] = map[string]any{} }),
			"spec.http.token must set exactly one of jsonPointer (where the token is in a JSON answer), rawBody: true"},
		{"two token modes", httpSpec(func(h map[string]any) { h["token"] = map[string]any{"jsonPointer": "/t", "header": "X-Token"} }),
			"spec.http.token must set exactly one of"},
		{"rawBody false", httpSpec(func(h map[string]any) { h["token"] = map[string]any{"rawBody": false} }),
			"spec.http.token must set exactly one of"},
		{"token pointer without /", httpSpec(func(h map[string]any) { h["token"] = map[string]any{"jsonPointer": "data/token"} }),
			"spec.http.token.jsonPointer in body should match"},
		{"token pointer with a bad escape", httpSpec(func(h map[string]any) { h["token"] = map[string]any{"jsonPointer": "/a~2"} }),
			"spec.http.token.jsonPointer in body should match"},
		{"no expiry", httpSpec(func(h map[string]any) { delete(h, "expiry") }), "spec.http.expiry: Required value"},
		{"empty expiry", httpSpec(func(h map[string]any) { h["expiry"] = map[string]any{} }),
			"spec.http.expiry must set at least one of fromJWT: true, jsonPointer (with format) or lifetime"},
		{"fromJWT false only", httpSpec(func(h map[string]any) { h["expiry"] = map[string]any{"fromJWT": false} }),
			"spec.http.expiry must set at least one of"},
		{"expiry pointer without format", httpSpec(func(h map[string]any) { h["expiry"] = map[string]any{"jsonPointer": "/exp"} }),
			"spec.http.expiry.format (RFC3339, UnixSeconds or SecondsFromNow) is required with expiry.jsonPointer"},
		{"expiry format without pointer", httpSpec(func(h map[string]any) { h["expiry"] = map[string]any{"lifetime": "1h", "format": "RFC3339"} }),
			"and only allowed with it"},
		{"unknown expiry format", httpSpec(func(h map[string]any) { h["expiry"] = map[string]any{"jsonPointer": "/exp", "format": "Unix"} }),
			`spec.http.expiry.format: Unsupported value: "Unix": supported values: "RFC3339", "UnixSeconds", "SecondsFromNow"`},
		{"lifetime not a duration", httpSpec(func(h map[string]any) { h["expiry"] = map[string]any{"lifetime": "3 hours"} }),
			"spec.http.expiry.lifetime in body should match"},
		{"lifetime zero", httpSpec(func(h map[string]any) { h["expiry"] = map[string]any{"lifetime": "0s"} }),
			"spec.http.expiry.lifetime must be at least 1s"},
		{"unknown method", httpSpec(func(h map[string]any) { h["method"] = "DELETE" }),
			`spec.http.method: Unsupported value: "DELETE": supported values: "GET", "POST", "PUT", "PATCH"`},
		{"body with GET", httpSpec(func(h map[string]any) { h["method"] = "GET" }), "spec.http.body is not allowed with method GET"},
		{"unknown body format", httpSpec(func(h map[string]any) { h["body"] = map[string]any{"format": "xml"} }),
			`spec.http.body.format: Unsupported value: "xml": supported values: "json", "form"`},
		{"path with a query", httpSpec(func(h map[string]any) { h["path"] = "/login?x=1" }), "spec.http.path must be a path only"},
		{"path leaving the endpoint", httpSpec(func(h map[string]any) { h["path"] = "../admin/keys" }),
			"spec.http.path must not contain '.' or '..' segments, also percent-encoded (%2e) or with ';' parameters: joined to spec.endpoint they would lead out of its path; write the path below the endpoint"},
		{"path ending in ..", httpSpec(func(h map[string]any) { h["path"] = "/v1/.." }), "spec.http.path must not contain '.' or '..' segments"},
		{"path with a . segment", httpSpec(func(h map[string]any) { h["path"] = "/v1/./login" }), "spec.http.path must not contain '.' or '..' segments"},
		{"path of one .", httpSpec(func(h map[string]any) { h["path"] = "." }), "spec.http.path must not contain '.' or '..' segments"},
		{"path with %2e%2e", httpSpec(func(h map[string]any) { h["path"] = "/v1/%2e%2e/admin" }), "spec.http.path must not contain '.' or '..' segments"},
		{"path with %2E%2E", httpSpec(func(h map[string]any) { h["path"] = "%2E%2E/admin" }), "spec.http.path must not contain '.' or '..' segments"},
		{"path with .%2e", httpSpec(func(h map[string]any) { h["path"] = "/.%2e/admin" }), "spec.http.path must not contain '.' or '..' segments"},
		{"path with %2E.", httpSpec(func(h map[string]any) { h["path"] = "/%2E./admin" }), "spec.http.path must not contain '.' or '..' segments"},
		{"path with ..;", httpSpec(func(h map[string]any) { h["path"] = "/..;/admin" }), "spec.http.path must not contain '.' or '..' segments"},
		{"path with ..;param", httpSpec(func(h map[string]any) { h["path"] = "/v1/..;jsessionid=x/admin" }), "spec.http.path must not contain '.' or '..' segments"},
		{"path with ..%3B", httpSpec(func(h map[string]any) { h["path"] = "/..%3B/admin" }), "spec.http.path must not contain '.' or '..' segments"},
		{"path with an encoded slash", httpSpec(func(h map[string]any) { h["path"] = "/v1%2F..%2Fadmin" }),
			"spec.http.path must not contain backslashes or percent-encoded slashes or backslashes (%2f, %5c)"},
		{"path with an encoded backslash", httpSpec(func(h map[string]any) { h["path"] = "/v1%5c" }), "percent-encoded slashes or backslashes (%2f, %5c)"},
		{"path with a backslash", httpSpec(func(h map[string]any) { h["path"] = `/v1\..\admin` }), "spec.http.path must not contain backslashes"},
		{"header name with a space", httpSpec(func(h map[string]any) { h["headers"] = map[string]any{"X Key": "v"} }),
			"spec.http.headers keys must be header names"},
		{"Host header", httpSpec(func(h map[string]any) { h["headers"] = map[string]any{"host": "evil.example"} }),
			"spec.http.headers must not set Host, Content-Length, Transfer-Encoding, Connection or User-Agent"},
		{"template too long", httpSpec(func(h map[string]any) { h["headers"] = map[string]any{"X": strings.Repeat("a", 5000)} }),
			"spec.http.headers.X: Too long"},
		{"token header not a header name", httpSpec(func(h map[string]any) { h["token"] = map[string]any{"header": "X Token"} }),
			"spec.http.token.header in body should match"},
		{"success without equals", httpSpec(func(h map[string]any) { h["success"] = map[string]any{"jsonPointer": "/status"} }),
			"spec.http.success.equals: Required value"},
		{"unknown http field", httpSpec(func(h map[string]any) { h["tokens"] = map[string]any{} }), `unknown field "spec.http.tokens"`},
		{"unknown client auth", oauth2Spec(func(o map[string]any) { o["clientAuth"] = "jwt" }),
			`spec.oauth2.clientAuth: Unsupported value: "jwt": supported values: "basic", "post"`},
		{"grant_type parameter", oauth2Spec(func(o map[string]any) { o["parameters"] = map[string]any{"grant_type": "password"} }),
			"must not be grant_type, scope, client_id or client_secret"},
		{"scope with a space", oauth2Spec(func(o map[string]any) { o["scopes"] = []any{"a b"} }),
			"spec.oauth2.scopes[0] in body should match"},
		{"defaultLifetime zero", oauth2Spec(func(o map[string]any) { o["defaultLifetime"] = "0s" }),
			"spec.oauth2.defaultLifetime must be at least 1s"},
	}
	for i, tt := range rejected {
		t.Run(tt.name, func(t *testing.T) {
			err := k8sClient.Create(context.Background(), tokenRequest(ns, fmt.Sprintf("x%d", i), tt.spec), client.DryRunAll, client.FieldValidation("Strict"))
			if err == nil {
				t.Fatalf("accepted, want rejection containing %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("message %q does not contain %q", err.Error(), tt.want)
			}
		})
	}

	accepted := []struct {
		name string
		spec map[string]any
	}{
		{"the AML Watcher login as http", httpSpec(nil)},
		{"rawBody token, JWT expiry", httpSpec(func(h map[string]any) {
			h["token"] = map[string]any{"rawBody": true}
			h["expiry"] = map[string]any{"fromJWT": true}
			delete(h, "success")
		})},
		{"header token, pointer expiry, form body, PUT", httpSpec(func(h map[string]any) {
			h["method"] = "PUT"
			h["headers"] = map[string]any{"Authorization": "Basic {{ print .user \":\" .key | b64enc }}", "Accept": "application/json"}
			h["body"] = map[string]any{"format": "form", "fields": map[string]any{"grant": "session"}}
			h["token"] = map[string]any{"header": "X-Session-Token"}
			h["expiry"] = map[string]any{"jsonPointer": "/expires_at", "format": "RFC3339"}
		})},
		{"GET without a body", httpSpec(func(h map[string]any) {
			h["method"] = "GET"
			delete(h, "body")
			h["headers"] = map[string]any{"X-Api-Key": "{{ .apiKey }}"}
			h["expiry"] = map[string]any{"jsonPointer": "/ttl", "format": "SecondsFromNow", "lifetime": "10m"}
		})},
		{"oauth2 with every field", oauth2Spec(func(o map[string]any) {
			o["clientAuth"] = "post"
			o["defaultLifetime"] = "1h"
			o["scopes"] = []any{"openid", "https://graph.microsoft.com/.default"}
		})},
		{"oauth2 with defaults only", oauth2Spec(func(o map[string]any) { delete(o, "scopes"); delete(o, "parameters") })},
		// Dots that are not whole segments are ordinary characters.
		{"path with dots inside segments", httpSpec(func(h map[string]any) { h["path"] = "/.well-known/v1.2/login.../a..b/%2e%2ex" })},
		{"relative path, trailing slash", httpSpec(func(h map[string]any) { h["path"] = "api/login/" })},
	}
	for i, tt := range accepted {
		t.Run(tt.name, func(t *testing.T) {
			if err := k8sClient.Create(context.Background(), tokenRequest(ns, fmt.Sprintf("ok%d", i), tt.spec), client.DryRunAll, client.FieldValidation("Strict")); err != nil {
				t.Fatalf("rejected: %v", err)
			}
		})
	}
}

// TestProviderSettingsDefaults: the API server fills in the documented
// defaults, so the settings digest the operator records does not change
// when a user writes them out.
func TestProviderSettingsDefaults(t *testing.T) {
	ns := newNamespace(t)
	h := tokenRequest(ns, "h", httpSpec(func(h map[string]any) { h["body"] = map[string]any{"fields": map[string]any{"a": "b"}} }))
	o := tokenRequest(ns, "o", oauth2Spec(nil))
	for _, obj := range []*unstructured.Unstructured{h, o} {
		if err := k8sClient.Create(context.Background(), obj, client.DryRunAll); err != nil {
			t.Fatal(err)
		}
	}
	if m, _, _ := unstructured.NestedString(h.Object, "spec", "http", "method"); m != "POST" {
		t.Errorf("http.method defaulted to %q", m)
	}
	if f, _, _ := unstructured.NestedString(h.Object, "spec", "http", "body", "format"); f != "json" {
		t.Errorf("http.body.format defaulted to %q", f)
	}
	if a, _, _ := unstructured.NestedString(o.Object, "spec", "oauth2", "clientAuth"); a != "basic" {
		t.Errorf("oauth2.clientAuth defaulted to %q", a)
	}
}

// TestAdmissionOfHTTPPathAgreesWithRuntime: spec.http.path's admission
// rules refuse what the operator refuses at runtime (urlpath.Check, which
// providers/httplogin and the endpoint policy apply), so that a path is
// refused when it is written rather than when it is first used. Only
// nested encodings, which CEL does not decode, are left to the runtime.
func TestAdmissionOfHTTPPathAgreesWithRuntime(t *testing.T) {
	ns := newNamespace(t)
	runtimeOnly := map[string]bool{"/%252e%252e/admin": true, "/%25252e%25252e/x": true, "/a%252fb": true, "/%2525252e": true}
	paths := []string{
		"/api/get-access-token", "api/login/", "/.well-known/x", "/v1.2/login...", "/a..b", "/%2e%2ex", "/a%20b", "/~user",
		".", "..", "../admin", "/v1/..", "/v1/./x", "/%2e", "/%2E%2e/x", "/.%2E", "/..;/x", "/.;a/x", "/..%3b/x", "/..%00/x",
		"/a%2fb", "/a%2Fb", "/a%5cb", `/a\b`, "/..%2f", "/%252e%252e/admin", "/%25252e%25252e/x", "/a%252fb", "/%2525252e",
	}
	for i, path := range paths {
		t.Run(path, func(t *testing.T) {
			err := k8sClient.Create(context.Background(), tokenRequest(ns, fmt.Sprintf("p%d", i), httpSpec(func(h map[string]any) { h["path"] = path })), client.DryRunAll)
			admitted := err == nil
			refusedAtRuntime := urlpath.Check(path) != nil
			switch {
			case admitted && refusedAtRuntime && !runtimeOnly[path]:
				t.Errorf("admitted, but refused at runtime: %v", urlpath.Check(path))
			case !admitted && !refusedAtRuntime:
				t.Errorf("rejected at admission but fine at runtime: %v", err)
			case runtimeOnly[path] && (!admitted || !refusedAtRuntime):
				t.Errorf("want admitted and refused at runtime; admission: %v, runtime: %v", err, urlpath.Check(path))
			}
		})
	}
}
