package safetemplate

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// sentinel is in every value templates are rendered with in these tests; no
// error may quote it.
const sentinel = "SENTINEL-7f3a"

func testData() map[string]string {
	return map[string]string{
		"token": sentinel + "-tok", "user": sentinel + "-user", "client-id": sentinel + "-c1",
		"b64": "aGk=", "pad": " x\n", "empty": "",
	}
}

func TestParseAllowsAndReadsKeys(t *testing.T) {
	for text, want := range map[string][]string{
		``:                     nil,
		`literal text`:         nil,
		`{{/* a comment */}}x`: nil,
		`{{ "s" }}{{ 1 }}{{ 1.5 }}{{ true }}{{ 'x' }}`: nil,
		`{{ .token }}`:                   {"token"},
		`{{ $.token }}`:                  {"token"},
		`{{ index . "client-id" }}`:      {"client-id"},
		`{{ index . "token" 0 }}`:        {"token"},
		`{{ .a }}:{{ .b | b64enc }}`:     {"a", "b"},
		`{{ print .a ":" .b | b64enc }}`: {"a", "b"},
		// Chained and nested pipelines: every command and argument is read.
		`{{ .a | trim | lower | upper | quote }}`:                  {"a"},
		`{{ print (print .a (print .b (b64enc .c))) | urlquery }}`: {"a", "b", "c"},
		// if, else if, else: every branch.
		`{{ if .flag }}{{ .x }}{{ else if .other }}{{ .y }}{{ else }}{{ .z }}{{ end }}`: {"flag", "other", "x", "y", "z"},
		`{{- if not .a -}} none {{- end -}}`:                                            {"a"},
		// Variables hold values read from the data.
		`{{ $v := .a }}{{ $v }}{{ $v | trim }}`:                                                 {"a"},
		`{{ $v := .a }}{{ $v = print $v .b }}{{ $v }}`:                                          {"a", "b"},
		`{{ if $v := .a }}{{ $v }}{{ end }}`:                                                    {"a"},
		`{{ and .a .b | not }}{{ or .c "x" }}`:                                                  {"a", "b", "c"},
		`{{ eq .a "x" "y" }}{{ ne .a "x" }}{{ lt 1 2 }}{{ le 1 2 }}{{ gt 1 2 }}{{ ge 1 2 }}`:    {"a"},
		`{{ len .a }}{{ slice .a 1 }}{{ slice .a 1 2 }}{{ index .a 0 }}`:                        {"a"},
		`{{ b64dec .a }}{{ trimPrefix "x" .a }}{{ trimSuffix "x" .a }}{{ replace "a" "b" .a }}`: {"a"},
		`{{ print nil }}`: nil,
	} {
		tmpl, err := Parse("t", text)
		if err != nil {
			t.Errorf("Parse(%q): %v", text, err)
			continue
		}
		if got := tmpl.Keys(); !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
			t.Errorf("keys of %q = %v, want %v", text, got, want)
		}
	}
}

func TestParseRefuses(t *testing.T) {
	tests := []struct{ text, want string }{
		// The template: range over an integer, twice.
		{"{{range 100000}}{{range 100000}}{{$.token}}{{end}}{{end}}", "range is not allowed"},
		{`{{ range $k, $v := . }}{{ $k }}{{ end }}`, "range is not allowed"},
		{`{{ range .a }}{{ break }}{{ end }}`, "range is not allowed"},
		{`{{ range .a }}{{ continue }}{{ end }}`, "range is not allowed"},
		{`{{ if .a }}{{ else }}{{ range 3 }}x{{ end }}{{ end }}`, "range is not allowed"},
		{`{{ with .token }}{{ . }}{{ end }}`, "with is not allowed"},
		{`{{ with .a }}{{ else with .b }}{{ . }}{{ end }}`, "with is not allowed"},
		{`{{ define "t" }}{{ template "t" (print . .) }}{{ end }}{{ template "t" .token }}`, "define, block and template are not allowed"},
		{`{{ define "t" }}x{{ end }}`, "define, block and template are not allowed"},
		{`{{ block "t" . }}x{{ end }}`, "define, block and template are not allowed"},
		{`{{ template "t" }}`, "define, block and template are not allowed"},
		// Functions not on the list, wherever they are in a pipeline.
		{`{{ printf "%0999999999d" 1 }}`, "function printf is not allowed: use print"},
		{`{{ .token | printf "%s" }}`, "function printf is not allowed"},
		{`{{ print (printf "%s" .token) }}`, "function printf is not allowed"},
		{`{{ if eq (printf "x") "x" }}{{ end }}`, "function printf is not allowed"},
		{`{{ if .a }}{{ else }}{{ .b | print | println }}{{ end }}`, "function println is not allowed"},
		{`{{ call .token }}`, "function call is not allowed"},
		{`{{ html .token }}`, "function html is not allowed"},
		{`{{ js .token }}`, "function js is not allowed"},
		{`{{ print (print (print (js .a))) }}`, "function js is not allowed"},
		{`{{ env "HOME" }}`, `function "env" not defined`},
		// Data is read only as .key, $.key or index . "key".
		{`{{ . }}`, "the data is read only as"},
		{`{{ $ }}`, "the data is read only as"},
		{`{{ len . }}`, "the data is read only as"},
		{`{{ index $ "a" }}`, "the data is read only as"},
		{`{{ "a" | index . }}`, `index . takes a quoted key`},
		{`{{ index . .a }}`, `index . takes a quoted key`},
		{`{{ index . }}`, `index . takes a quoted key`},
		{`{{ index (.) "a" }}`, "the data is read only as"},
		{`{{ .a.b }}`, "has no fields"},
		{`{{ $.a.b }}`, "the data is read only as"},
		{`{{ (.a).b }}`, "has no fields"},
		{`{{ (print .a).Len }}`, "has no fields"},
		{`{{ $v := .a }}{{ $v.b }}`, "has no fields"},
		{`{{ $ := .a }}`, "$ always holds the data"},
		{`{{ $ = .a }}`, "$ always holds the data"},
		// Text.
		{`{{ .token `, "does not parse"},
		{strings.Repeat("x", MaxTextBytes+1), "is longer than 4096 bytes"},
	}
	for _, tt := range tests {
		_, err := Parse(`spec.x["k"]`, tt.text)
		var e *Error
		if !errors.As(err, &e) || e.Name != `spec.x["k"]` || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Parse(%q) = %v, want an *Error containing %q", tt.text, err, tt.want)
		}
	}
}

// TestFunctions pins the one list: a function added to it is a decision,
// with a row in TestRender.
func TestFunctions(t *testing.T) {
	want := []string{"and", "b64dec", "b64enc", "eq", "ge", "gt", "index", "le", "len", "lower", "lt", "ne", "not", "or",
		"print", "quote", "replace", "slice", "trim", "trimPrefix", "trimSuffix", "upper", "urlquery"}
	if got := Functions(); !slices.Equal(got, want) {
		t.Errorf("Functions() = %v, want %v", got, want)
	}
}

func TestRender(t *testing.T) {
	data := map[string]string{"user": "ali", "pass": "p@ss w/rd", "b64": "aGk=", "client-id": "c1", "pad": " x\n", "mixed": "Straße ɐȺ"}
	tests := []struct{ text, want string }{
		{`{{ .user }}`, "ali"},
		{`{{ $.user }}`, "ali"},
		{`{{ index . "client-id" }}`, "c1"},
		{`plain`, "plain"},
		{`{{ "lit" }} {{ 42 }} {{ true }}`, "lit 42 true"},
		{`{{ $v := .user }}{{ $v = print $v "!" }}{{ $v }}`, "ali!"},
		{`{{ if eq .user "ali" }}yes{{ else }}no{{ end }}`, "yes"},
		{`{{ if eq .user "bob" }}b{{ else if eq .user "ali" }}a{{ else }}-{{ end }}`, "a"},
		// Every function on the list.
		{`{{ and .user .pass }}`, "p@ss w/rd"},
		{`{{ or "" .user }}`, "ali"},
		{`{{ not .user }}`, "false"},
		{`{{ eq .user "x" "ali" }}`, "true"},
		{`{{ ne .user "ali" }}`, "false"},
		{`{{ lt "a" .user }}{{ le 1 1 }}{{ gt 2 1 }}{{ ge 1 2 }}`, "truetruetruefalse"},
		{`{{ len .pass }}`, "9"},
		{`{{ index .user 0 }}`, "97"},
		{`{{ index . "user" 1 }}`, "108"},
		{`{{ slice .pass 2 }}|{{ slice .pass 0 3 }}|{{ slice .pass }}`, "ss w/rd|p@s|p@ss w/rd"},
		{`{{ print .user ":" .pass }}`, "ali:p@ss w/rd"},
		{`{{ print 1 2 "x" 3 nil }}`, "1 2x3 <nil>"},
		{`{{ .pass | urlquery }}`, "p%40ss+w%2Frd"},
		{`{{ urlquery .user 1 }}`, "ali1"},
		{`Basic {{ print .user ":" .pass | b64enc }}`, "Basic YWxpOnBAc3Mgdy9yZA=="},
		{`{{ b64dec .b64 }}`, "hi"},
		{`[{{ trim .pad }}]`, "[x]"},
		{`{{ trimPrefix "a" .user }}{{ trimSuffix "i" .user }}`, "lial"},
		{`{{ replace "s" "S" .pass }}`, "p@SS w/rd"},
		{`{{ replace "" "-" .user }}`, "-a-l-i-"},
		{`{{ upper .mixed }} {{ lower .mixed }}`, "STRAßE ⱯȺ straße ɐⱥ"},
		{`{{ quote .pad }}`, `" x\n"`},
		{`{{ .pass }}`, "p@ss w/rd"}, // text/template does no escaping
	}
	for _, tt := range tests {
		tmpl, err := Parse("t", tt.text)
		if err != nil {
			t.Fatalf("Parse(%q): %v", tt.text, err)
		}
		got, err := tmpl.Render(data)
		if err != nil || got != tt.want {
			t.Errorf("Render(%q) = %q, %v; want %q", tt.text, got, err, tt.want)
		}
	}
	// Every function on the list has a row above.
	for _, f := range Functions() {
		if !slices.ContainsFunc(tests, func(tt struct{ text, want string }) bool {
			return strings.Contains(tt.text, "{{ "+f+" ") || strings.Contains(tt.text, "| "+f+" }}")
		}) {
			t.Errorf("function %s has no row in TestRender", f)
		}
	}
}

// TestRenderFailures: each failure is an *Error naming the template, and no
// message quotes a value.
func TestRenderFailures(t *testing.T) {
	tests := []struct{ text, want string }{
		{`{{ .missing }}`, "it reads .missing, which is not there (available: .b64, index . \"client-id\", .empty, .pad, .token, .user)"},
		{`{{ index . "no-such" }}`, `it reads index . "no-such", which is not there`},
		{`{{ if false }}{{ .missing }}{{ end }}`, "it reads .missing"},
		{`{{ b64dec .token }}`, "b64dec was given a value that is not base64"},
		{`{{ slice .token 100 }}`, "a position is out of range"},
		{`{{ slice .token 2 1 }}`, "a position is out of range"},
		{`{{ slice .token 1 2 3 }}`, "at most two positions"},
		{`{{ slice 5 1 }}`, "slice takes text"},
		{`{{ index .token 100 }}`, "the position is out of range"},
		{`{{ index .token "x" }}`, "index of text takes a position"},
		{`{{ index 5 1 }}`, "index takes the data and a key, or text and a position"},
		{`{{ eq .token 1 }}`, "incompatible types for comparison"},
		{`{{ lt .token true }}`, "does not render"},
		{`{{ replace .token }}`, "wrong number of args for replace"},
		{`{{ b64enc 5 }}`, "does not render"},
		{`{{ len 5 }}`, "len of type int"},
	}
	for _, tt := range tests {
		tmpl, err := Parse(`spec.http.headers["X"]`, tt.text)
		if err != nil {
			t.Fatalf("Parse(%q): %v", tt.text, err)
		}
		_, err = tmpl.Render(testData())
		var e *Error
		if !errors.As(err, &e) || !strings.HasPrefix(err.Error(), `spec.http.headers["X"]: `) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Render(%q) = %v, want an *Error containing %q", tt.text, err, tt.want)
			continue
		}
		if strings.Contains(err.Error(), "SENTINEL") {
			t.Errorf("Render(%q): %q quotes a value", tt.text, err)
		}
	}
}

// TestRenderProblemNeverQuotesAValue: a message of text/template's own that
// would hold a value is replaced.
func TestRenderProblemNeverQuotesAValue(t *testing.T) {
	err := errors.New(`template: k:1:3: executing "k" at <eq .token 1>: incompatible: ` + sentinel)
	if got := renderProblem("k", err, map[string]string{"token": sentinel}); strings.Contains(got, sentinel) || !strings.Contains(got, "does not render") {
		t.Errorf("renderProblem = %q", got)
	}
	err = errors.New(`template: k:1:3: executing "k" at <eq .token 1>: incompatible types for comparison`)
	if got := renderProblem("k", err, map[string]string{"token": sentinel}); got != "does not render: 1:3: at <eq .token 1>: incompatible types for comparison" {
		t.Errorf("renderProblem = %q", got)
	}
}

// TestRenderBounds: no value passes MaxValueBytes, no function builds more,
// and a render's functions build at most MaxWorkBytes together.
func TestRenderBounds(t *testing.T) {
	const kib = 1 << 10
	data := map[string]string{
		"token":  sentinel + strings.Repeat("a", 30-len(sentinel)), // a token of 30 bytes, 18 of them a
		"v10k":   strings.Repeat("x", 10*kib),
		"v48k":   strings.Repeat("y", 48*kib),
		"v64k":   strings.Repeat("z", MaxValueBytes),
		"v100k":  strings.Repeat("w", 100*kib),
		"slash":  strings.Repeat("/", 22*kib),    // urlquery: %2F, three times as long
		"ctrl":   strings.Repeat("\x01", 16*kib), // quote: \x01, four times as long
		"bad":    strings.Repeat("\xff", 22*kib), // upper: U+FFFD, three times as long
		"b64big": strings.Repeat("QUFB", 22*kib), // decodes to 66 KiB
	}
	tests := []struct{ name, text, want string }{
		{"a value of exactly 64 KiB", `{{ .v64k }}`, ""},
		{"one byte more", `{{ .v64k }}!`, "renders to more than 64 KiB, the limit of one value"},
		{"a value repeated", strings.Repeat("{{ .v10k }}", 7), "renders to more than 64 KiB"},
		{"a value too large", `{{ .v100k }}`, "renders to more than 64 KiB"},
		// The pipeline: each stage multiplies what it is given.
		{"replace multiplied, under the bound", `{{ .token | replace "a" "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" | replace "a" "aaaaaaaaaaaaaaaaaaaaaaaaaaaa" | b64enc | b64enc }}`, ""},
		{"replace multiplied once more", `{{ .token | replace "a" "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" | replace "a" "aaaaaaaaaaaaaaaaaaaaaaaaaaaa" | replace "a" "aa" | b64enc | b64enc }}`,
			"error calling b64enc: b64enc would build more than 64 KiB"},
		{"replace multiplied, every rune", `{{ .token | replace "" "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" | replace "" "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" | replace "" "xx" | b64enc }}`,
			"error calling replace: replace would build more than 64 KiB"},
		{"replace with an empty old", `{{ replace "" .v10k .v10k }}`, "replace would build more than 64 KiB"},
		{"b64enc", `{{ b64enc .v64k }}`, "b64enc would build more than 64 KiB"},
		{"b64enc of 48 KiB fits", `{{ b64enc .v48k }}`, ""},
		{"b64dec", `{{ b64dec .b64big }}`, "b64dec would build more than 64 KiB"},
		{"print", `{{ print .v48k .v48k }}`, "print would build more than 64 KiB"},
		{"print nested", `{{ print (print .v10k .v10k .v10k) (print .v10k .v10k .v10k) .v10k }}`, "print would build more than 64 KiB"},
		{"urlquery", `{{ urlquery .slash }}`, "urlquery would build more than 64 KiB"},
		{"urlquery of operands", `{{ urlquery .v48k .v48k }}`, "print would build more than 64 KiB"},
		{"quote", `{{ quote .ctrl }}`, "quote would build more than 64 KiB"},
		{"upper", `{{ upper .bad }}`, "upper would build more than 64 KiB"},
		{"lower", `{{ lower .bad }}`, "lower would build more than 64 KiB"},
		{"variables doubling", `{{ $v := .v10k }}{{ $v = print $v $v }}{{ $v = print $v $v }}{{ $v = print $v $v }}{{ len $v }}`,
			"print would build more than 64 KiB"},
		{"work: stages each under the bound", `{{ len (` + strings.Repeat("b64dec (b64enc (", 12) + ".v48k" + strings.Repeat("))", 12) + `) }}`,
			"the functions of one template may build 1024 KiB in all"},
		{"work: a few stages fit", `{{ len (b64dec (b64enc (b64dec (b64enc .v48k)))) }}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmpl, err := Parse("k", tt.text)
			if err != nil {
				t.Fatal(err)
			}
			out, err := tmpl.Render(data)
			if len(out) > MaxValueBytes {
				t.Fatalf("rendered %d bytes", len(out))
			}
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Render = %v, want an *Error containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), sentinel) || strings.Contains(err.Error(), "xxxx") {
				t.Fatalf("%q quotes a value", err)
			}
		})
	}
}

// BenchmarkParseRender is what a reconcile pays per data template.
func BenchmarkParseRender(b *testing.B) {
	data := map[string]string{"token": strings.Repeat("t", 900), "userId": "u-1"}
	b.ReportAllocs()
	for b.Loop() {
		tmpl, err := Parse("k", `{"auths":{"r.example":{"auth":"{{ print .userId ":" .token | b64enc }}"}}}`)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := tmpl.Render(data); err != nil {
			b.Fatal(err)
		}
	}
}

// TestRenderConcurrently: one Template may be rendered from several
// goroutines (a provider's compiled login); each render has its own budget.
func TestRenderConcurrently(t *testing.T) {
	tmpl, err := Parse("k", `{{ len (b64dec (b64enc (b64dec (b64enc .v)))) }}`)
	if err != nil {
		t.Fatal(err)
	}
	data := map[string]string{"v": strings.Repeat("v", 48<<10)}
	errs := make(chan error, 8)
	for range 8 {
		go func() {
			var err error
			for range 20 {
				var out string
				if out, err = tmpl.Render(data); err == nil && out != "49152" {
					err = errors.New("rendered " + out)
				}
				if err != nil {
					break
				}
			}
			errs <- err
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
