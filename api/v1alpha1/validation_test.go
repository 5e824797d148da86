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
			obj.SetNamespace(ns)
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
			`spec.provider: Unsupported value: "okta": supported values: "aml", "amplifi", "partner"`},
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
			"spec.endpoint is required for providers amplifi and partner"},
		{"partner without endpoint", tokenRequest(ns, "x", validSpec(func(s map[string]any) { delete(s, "endpoint") })),
			"spec.endpoint is required for providers amplifi and partner"},
		{"partner with empty endpoint", tokenRequest(ns, "x", validSpec(func(s map[string]any) { s["endpoint"] = "" })),
			"spec.endpoint is required for providers amplifi and partner"},
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
			"data": map[string]any{".dockerconfigjson": `{"auths":{"registry.example.com":{"auth":"{{ printf "x:%s" .token | b64enc }}"}}}`}}),
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
