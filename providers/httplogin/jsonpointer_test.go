package httplogin

import (
	"encoding/json"
	"reflect"
	"testing"
)

// The examples of RFC 6901 §5.
const rfc6901Doc = `{
	"foo": ["bar", "baz"],
	"": 0,
	"a/b": 1,
	"c%d": 2,
	"e^f": 3,
	"g|h": 4,
	"i\\j": 5,
	"k\"l": 6,
	" ": 7,
	"m~n": 8
}`

func TestJSONPointerRFC6901(t *testing.T) {
	doc, err := decodeJSON([]byte(rfc6901Doc))
	if err != nil {
		t.Fatal(err)
	}
	for pointer, want := range map[string]string{
		"/foo":   `["bar","baz"]`,
		"/foo/0": `"bar"`,
		"/":      `0`,
		"/a~1b":  `1`,
		"/c%d":   `2`,
		"/e^f":   `3`,
		"/g|h":   `4`,
		"/i\\j":  `5`,
		"/k\"l":  `6`,
		"/ ":     `7`,
		"/m~0n":  `8`,
	} {
		p, err := parseJSONPointer(pointer)
		if err != nil {
			t.Fatalf("parse %q: %v", pointer, err)
		}
		v, ok := p.lookup(doc)
		got, _ := json.Marshal(v)
		if !ok || string(got) != want {
			t.Errorf("%q = %s (%v), want %s", pointer, got, ok, want)
		}
	}
	p, _ := parseJSONPointer("")
	if v, ok := p.lookup(doc); !ok || !reflect.DeepEqual(v, doc) {
		t.Error(`"" is not the whole document`)
	}
}

func TestJSONPointerMisses(t *testing.T) {
	doc, _ := decodeJSON([]byte(`{"a": [10, 20], "s": "x", "n": null, "o": {"01": "member"}}`))
	for pointer, found := range map[string]bool{
		"/a/1":                    true,
		"/a/2":                    false,
		"/a/-":                    false,
		"/a/01":                   false,
		"/a/+1":                   false,
		"/a/-1":                   false,
		"/a/":                     false,
		"/a/1e0":                  false,
		"/a/99999999999999999999": false,
		"/s/0":                    false,
		"/n":                      true,
		"/n/x":                    false,
		"/o/01":                   true, // a member name, not an index
		"/x":                      false,
		"/a/0/b":                  false,
	} {
		p, err := parseJSONPointer(pointer)
		if err != nil {
			t.Fatalf("parse %q: %v", pointer, err)
		}
		if _, ok := p.lookup(doc); ok != found {
			t.Errorf("%q found = %v, want %v", pointer, ok, found)
		}
	}
	for _, bad := range []string{"a", "a/b", "/~", "/~2", "/a~"} {
		if _, err := parseJSONPointer(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestDecodeJSON(t *testing.T) {
	doc, err := decodeJSON([]byte(`{"big": 12345678901234567890}`))
	if err != nil || doc.(map[string]any)["big"].(json.Number).String() != "12345678901234567890" {
		t.Errorf("numbers lose precision: %v %v", doc, err)
	}
	for _, bad := range []string{``, `{`, `{} {}`, `{}x`, `<html>`} {
		if _, err := decodeJSON([]byte(bad)); err == nil {
			t.Errorf("%q decoded", bad)
		}
	}
}
