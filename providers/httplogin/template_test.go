package httplogin

import (
	"slices"
	"strings"
	"testing"

	"github.com/tokensync/tokensync/providers"
)

func TestTemplateKeys(t *testing.T) {
	for text, want := range map[string][]string{
		``:                               nil,
		`literal`:                        nil,
		`{{ .email }}`:                   {"email"},
		`{{ $.email }}`:                  {"email"},
		`{{ index . "client-id" }}`:      {"client-id"},
		`{{ index . "k" 0 }}`:            {"k"},
		`{{ .a }}:{{ .b | b64enc }}`:     {"a", "b"},
		`{{ print .a ":" .b | b64enc }}`: {"a", "b"},
		`{{ if .flag }}{{ .x }}{{ else }}{{ .y }}{{ end }}`:                              {"flag", "x", "y"},
		`{{ $v := .a }}{{ $v }}{{ $v | trim | lower }}`:                                  {"a"},
		`{{ if eq (len .a) 0 }}none{{ end }}`:                                            {"a"},
		`{{ slice .a 1 2 | upper | urlquery }}`:                                          {"a"},
		`{{/* a comment */}}{{ .a }}`:                                                    {"a"},
		`{{ and .a .b | not }}{{ or .c "x" }}`:                                           {"a", "b", "c"},
		`{{ ne .a "x" }}{{ lt 1 2 }}{{ le 1 2 }}{{ gt 1 2 }}{{ ge 1 2 }}{{ b64dec .b }}`: {"a", "b"},
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

func TestRender(t *testing.T) {
	data := map[string]string{"user": "ali", "pass": "p@ss w/rd", "b64": "aGk=", "client-id": "c1", "pad": " x\n"}
	for text, want := range map[string]string{
		`{{ .user }}`: "ali",
		`Basic {{ print .user ":" .pass | b64enc }}`:      "Basic YWxpOnBAc3Mgdy9yZA==",
		`{{ .pass | urlquery }}`:                          "p%40ss+w%2Frd",
		`{{ b64dec .b64 }}`:                               "hi",
		`{{ index . "client-id" }}`:                       "c1",
		`[{{ trim .pad }}]`:                               "[x]",
		`{{ if eq .user "ali" }}yes{{ else }}no{{ end }}`: "yes",
		`{{ .user | upper }}{{ "X" | lower }}`:            "ALIx",
		`{{ .pass }}`:                                     "p@ss w/rd", // text/template does no escaping
	} {
		tmpl, err := parseTemplate("t", text)
		if err != nil {
			t.Fatalf("parseTemplate(%q): %v", text, err)
		}
		got, err := tmpl.render(data)
		if err != nil || got != want {
			t.Errorf("render(%q) = %q, %v; want %q", text, got, err, want)
		}
	}
}

func TestRenderFailures(t *testing.T) {
	secret := map[string]string{"v": "SECRET-VALUE-1234", "n": "not base64!"}
	for _, text := range []string{`{{ .missing }}`, `{{ b64dec .n }}`, `{{ slice .v 100 }}`, `{{ index .v 100 }}`, `{{ eq .v 1 }}`} {
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
