package safetemplate

import (
	"errors"
	"maps"
	"strings"
	"testing"
	"time"
)

// renderTimeBound is far above what any render takes (microseconds to a few
// milliseconds), so that a loaded machine does not fail the target; a
// template that could loop or multiply its work would pass it by orders of
// magnitude.
const renderTimeBound = 5 * time.Second

// bigValue is a value near the bound of one value, with bytes that make
// functions' results longer (invalid UTF-8, reserved URL bytes, a).
var bigValue = strings.Repeat("a/ \xffQUFB", (MaxValueBytes-1024)/9)

// FuzzRender checks the sandbox on any template text and value: a template
// the checker refuses is refused with an *Error; a template it accepts
// renders within MaxValueBytes and renderTimeBound, reads only the keys it
// names (rendering with only those gives the same result), and fails only
// with an *Error that quotes no value.
// Seeds: the templates (range over integers; replace and b64enc
// stages multiplying a token) and the shapes users write.
func FuzzRender(f *testing.F) {
	for _, seed := range []string{
		"{{range 100000}}{{range 100000}}{{$.token}}{{end}}{{end}}",
		`{{ .token | replace "a" "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" | replace "a" "aaaaaaaaaaaaaaaaaaaaaaaaaaaa" | b64enc | b64enc }}`,
		`{{ .big | replace "a" "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" | replace "a" "aaaaaaaaaaaaaaaaaaaaaaaaaaaa" | b64enc | b64enc }}`,
		`{{ .token | replace "" "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" | replace "" "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" | replace "" "xx" | b64enc }}`,
		`{{ $v := .big }}{{ $v = print $v $v }}{{ $v = print $v $v }}{{ len $v }}`,
		`{{ len (b64dec (b64enc (b64dec (b64enc (b64dec (b64enc (b64dec (b64enc .big)))))))) }}`,
		`{{ upper .big }}{{ quote .big }}{{ urlquery .big }}`,
		`{{ print .big .big .big }}`,
		"Bearer {{ .token }}",
		`{"auths":{"r.example":{"auth":"{{ print .userId ":" .token | b64enc }}"}}}`,
		`{{ if eq (len .token) 0 }}none{{ else if .userId }}{{ .userId | upper }}{{ else }}{{ index . "client-id" | urlquery }}{{ end }}`,
		`{{ slice .token 1 3 }}{{ index .token 0 }}{{ b64dec .token }}{{ trim .token | quote }}`,
		`{{ printf "%0999999999d" 1 }}`, `{{ call .token }}`, `{{ template "x" }}`, `{{ with .token }}{{ . }}{{ end }}`,
		`{{ define "t" }}{{ template "t" (print . .) }}{{ end }}{{ template "t" .token }}`,
	} {
		f.Add(seed, "tok")
	}
	f.Fuzz(func(t *testing.T, text, value string) {
		tmpl, err := Parse("k", text)
		quotesSentinel := func(err error) bool {
			return strings.Contains(err.Error(), "SENTINEL") && !strings.Contains(text, "SENTINEL")
		}
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || quotesSentinel(err) {
				t.Fatalf("Parse: %T %v", err, err)
			}
			return
		}
		data := map[string]string{
			"token": sentinel + value, "userId": sentinel + "-user", "client-id": sentinel + "-c",
			"expiresAt": "2026-11-22T13:00:00Z", "big": sentinel + bigValue,
		}
		start := time.Now()
		out, err := tmpl.Render(data)
		if d := time.Since(start); d > renderTimeBound {
			t.Fatalf("rendered in %v", d)
		}
		if len(out) > MaxValueBytes {
			t.Fatalf("rendered %d bytes", len(out))
		}
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || quotesSentinel(err) {
				t.Fatalf("Render: %T %v", err, err)
			}
		}
		// With only the keys it names, the template renders the same.
		used := maps.Clone(data)
		maps.DeleteFunc(used, func(k, _ string) bool {
			for _, used := range tmpl.Keys() {
				if k == used {
					return false
				}
			}
			return true
		})
		outUsed, errUsed := tmpl.Render(used)
		if outUsed != out || (err == nil) != (errUsed == nil) {
			t.Fatalf("rendering depends on keys the template does not name (%v): %d bytes, %v; with them %d bytes, %v",
				tmpl.Keys(), len(outUsed), errUsed, len(out), err)
		}
	})
}
