package httplogin

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"
)

// jsonPointer is an RFC 6901 JSON pointer: "/data/access_token",
// "/data/0/access_token", "/a~1b" for the member "a/b", "/m~0n" for "m~n".
// The empty pointer is the whole document.
type jsonPointer struct {
	text   string
	tokens []string
}

// parseJSONPointer parses s. The error says what is wrong; it quotes
// nothing, s being the caller's to quote.
func parseJSONPointer(s string) (jsonPointer, error) {
	p := jsonPointer{text: s}
	if s == "" {
		return p, nil
	}
	if s[0] != '/' {
		return p, errors.New("a JSON pointer starts with /")
	}
	for _, tok := range strings.Split(s[1:], "/") {
		for i := 0; i < len(tok); i++ {
			if tok[i] == '~' && (i+1 == len(tok) || tok[i+1] != '0' && tok[i+1] != '1') {
				return p, errors.New("in a JSON pointer, ~ is followed by 0 (for ~) or 1 (for /)")
			}
		}
		// RFC 6901 §4: ~1 first, then ~0, so that "~01" is "~1".
		p.tokens = append(p.tokens, strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~"))
	}
	return p, nil
}

func (p jsonPointer) String() string { return p.text }

// lookup returns the value p points to in doc, a document decoded by
// decodeJSON. ok is false when nothing is there: a missing member, an
// index out of range or not written as RFC 6901 writes one (no sign, no
// leading zero; "-" is past the end), or a step into a scalar.
func (p jsonPointer) lookup(doc any) (value any, ok bool) {
	cur := doc
	for _, tok := range p.tokens {
		switch v := cur.(type) {
		case map[string]any:
			if cur, ok = v[tok]; !ok {
				return nil, false
			}
		case []any:
			i, ok := arrayIndex(tok)
			if !ok || i >= len(v) {
				return nil, false
			}
			cur = v[i]
		default:
			return nil, false
		}
	}
	return cur, true
}

func arrayIndex(tok string) (int, bool) {
	if tok == "" || len(tok) > 1 && tok[0] == '0' {
		return 0, false
	}
	for i := 0; i < len(tok); i++ {
		if tok[i] < '0' || tok[i] > '9' {
			return 0, false
		}
	}
	i, err := strconv.Atoi(tok)
	return i, err == nil
}

// decodeJSON decodes one JSON document, numbers as json.Number so that
// none loses precision. Data after it is an error.
func decodeJSON(body []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("data after the JSON document")
	}
	return doc, nil
}
