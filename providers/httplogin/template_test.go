package httplogin

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/tokensync/tokensync/providers"
	"github.com/tokensync/tokensync/providers/providertest/conformance"
)

// The template sandbox itself is tested in internal/safetemplate; these
// tests hold what the http provider adds: the keys a login reads, its
// errors as InvalidTemplate, and the bound on a whole request.

func TestTemplateKeys(t *testing.T) {
	for text, want := range map[string][]string{
		``:                               nil,
		`{{ .email }}`:                   {"email"},
		`{{ index . "client-id" }}`:      {"client-id"},
		`{{ print .a ":" .b | b64enc }}`: {"a", "b"},
		`{{ if .flag }}{{ .x }}{{ else }}{{ $.y }}{{ end }}`: {"flag", "x", "y"},
	} {
		tmpl, err := parseTemplate("t", text)
		if err != nil {
			t.Errorf("parseTemplate(%q): %v", text, err)
			continue
		}
		if !slices.Equal(tmpl.keys, want) && !(len(tmpl.keys) == 0 && len(want) == 0) {
			t.Errorf("keys of %q = %v, want %v", text, tmpl.keys, want)
		}
	}
}

func TestRenderFailures(t *testing.T) {
	secret := map[string]string{"v": "SECRET-VALUE-1234", "n": "not base64!"}
	for _, text := range []string{`{{ .missing }}`, `{{ b64dec .n }}`, `{{ slice .v 100 }}`, `{{ index .v 100 }}`, `{{ eq .v 1 }}`,
		`{{ .v | replace "" "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" | replace "" "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" | replace "" "xx" }}`} {
		tmpl, err := parseTemplate(`spec.http.headers["X"]`, text)
		if err != nil {
			t.Fatalf("parseTemplate(%q): %v", text, err)
		}
		_, err = tmpl.render(secret)
		if providers.KindOf(err) != providers.InvalidTemplate || !strings.Contains(err.Error(), `spec.http.headers["X"]`) ||
			strings.Contains(err.Error(), "SECRET") || strings.Contains(err.Error(), "base64!") {
			t.Errorf("render(%q) = %v", text, err)
		}
	}
	// No template renders to more than 64 KiB.
	tmpl, err := parseTemplate("t", strings.Repeat("{{ .v }}", 10))
	if err != nil {
		t.Fatal(err)
	}
	_, err = tmpl.render(map[string]string{"v": strings.Repeat("x", 10<<10)})
	if providers.KindOf(err) != providers.InvalidTemplate || !strings.Contains(err.Error(), "more than 64 KiB") {
		t.Errorf("render of 100 KiB = %v", err)
	}
}

// TestRequestBound: the templates of one request render at most 1 MiB
// together; past it nothing is sent.
func TestRequestBound(t *testing.T) {
	fields := make([]string, 0, 32)
	for i := range 32 {
		fields = append(fields, fmt.Sprintf(`"f%d": "{{ .v }}{{ .v }}"`, i))
	}
	p := configured(t, providers.Options{}, `{"body": {"fields": {`+strings.Join(fields, ", ")+`}}, "token": {"rawBody": true}, "expiry": {"lifetime": "1h"}}`)
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { t.Error("a request was sent") }))
	defer srv.Close()
	v := conformance.SentinelSecret + strings.Repeat("x", 20<<10) // 32 fields of 40 KiB
	_, err := p.Login(context.Background(), srv.URL, providers.Credentials{"v": []byte(v)})
	if pe := conformance.RequireError(t, err, providers.InvalidTemplate); !strings.Contains(pe.Message, "more than 1024 KiB in all") ||
		strings.Contains(pe.Message, conformance.SentinelSecret) {
		t.Errorf("message %q", pe.Message)
	}
}
