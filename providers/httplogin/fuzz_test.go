package httplogin

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/tokensync/tokensync/providers"
	"github.com/tokensync/tokensync/providers/internal/login"
	"github.com/tokensync/tokensync/providers/providertest/conformance"
)

// FuzzJSONPointer checks pointer parsing and lookup on any pointer and
// document: no panic; a parsed pointer's tokens written back as RFC 6901
// writes them give the pointer; a pointer found in a document of one
// member, built from its own tokens, finds that member's value.
// Seeds are in testdata/fuzz/FuzzJSONPointer.
func FuzzJSONPointer(f *testing.F) {
	f.Add("/data/access_token", []byte(`{"data": {"access_token": "t"}}`))
	f.Add("/data/0/access_token", []byte(`{"data": [{"access_token": "t"}]}`))
	f.Add("/a~1b/m~0n", []byte(`{"a/b": {"m~n": 1}}`))
	f.Fuzz(func(t *testing.T, pointer string, body []byte) {
		p, err := parseJSONPointer(pointer)
		if err != nil {
			return
		}
		var b strings.Builder
		for _, tok := range p.tokens {
			b.WriteString("/" + strings.ReplaceAll(strings.ReplaceAll(tok, "~", "~0"), "/", "~1"))
		}
		if b.String() != pointer {
			t.Fatalf("tokens %q write back as %q, not %q", p.tokens, b.String(), pointer)
		}
		if doc, err := decodeJSON(body); err == nil {
			_, _ = p.lookup(doc)
		}
		if len(p.tokens) > 0 && utf8.ValidString(pointer) {
			// {"t1": {"t2": ... "found"}} holds "found" at p.
			var doc any = "found"
			for i := len(p.tokens) - 1; i >= 0; i-- {
				doc = map[string]any{p.tokens[i]: doc}
			}
			if v, ok := p.lookup(doc); !ok || v != "found" {
				t.Fatalf("%q not found in the document built from it", pointer)
			}
		}
	})
}

// FuzzParseReply checks the answer parser of the AML Watcher login written
// as spec.http: no panic; errors are classified and never quote the body;
// a success is a usable token with a sane expiry.
// Seeds are in testdata/fuzz/FuzzParseReply.
func FuzzParseReply(f *testing.F) {
	f.Add(200, []byte(`{"error": false, "status": "SUCCESS", "data": {"access_token": "Random Access Token"}}`))
	f.Add(200, []byte(`{"error": "Invalid email or password.", "status": "FAIL", "data": []}`))
	f.Add(401, []byte(`{"error": "SENTINEL-BODY-7890", "status": "FAIL"}`))
	p := configured(f, providers.Options{}, amlSettings)
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		status = 200 + abs(status)%300
		if status >= 300 && status < 400 {
			status += 100 // Send answers 3xx itself
		}
		token, err := p.login.parseReply(&login.Reply{StatusCode: status, Body: body}, conformance.Now)
		if err != nil {
			var pe *providers.Error
			if !errors.As(err, &pe) {
				t.Fatalf("err is %T", err)
			}
			if status < 300 && strings.Contains(pe.Message, "SENTINEL") {
				t.Fatalf("message %q quotes the body", pe.Message)
			}
			return
		}
		if status >= 300 {
			t.Fatalf("HTTP %d accepted", status)
		}
		if login.CheckTokenValue("t", token.Value) != nil || !token.ExpiresAt.After(conformance.Now) {
			t.Fatalf("token %+v", token)
		}
	})
}

func abs(n int) int {
	if n < 0 {
		if n == -n {
			return 0
		}
		return -n
	}
	return n
}
