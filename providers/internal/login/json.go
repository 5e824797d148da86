package login

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strconv"

	"github.com/tokensync/tokensync/providers"
)

// Bounds on a JSON answer. A login answer is a handful of members a level
// or two deep; the 1 MiB body alone does not bound what decoding builds
// ("[{},{},...]" decoded into a generic tree is tens of MiB).
const (
	// MaxJSONDepth bounds the nesting of arrays and objects.
	MaxJSONDepth = 32
	// MaxJSONValues bounds the values: every scalar, array and object
	// counts as one (object member names do not).
	MaxJSONValues = 10_000
)

// CheckJSON returns an InvalidResponse when body, read as JSON, nests
// deeper than MaxJSONDepth or holds more than MaxJSONValues values. It
// reads only the tokens, never builds the document, and stops at the first
// limit passed. A body that is not an array or object, or not JSON at all,
// passes: the provider's own parsing says what is wrong with it.
//
// Send and Transport run it on every answer they pass on, before any
// provider decodes one, so that no provider's decoding (nor a library's,
// golang.org/x/oauth2's) sees a document past the bounds.
func CheckJSON(provider string, status int, body []byte) error {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' && trimmed[0] != '[' {
		return nil // a scalar is one value at depth zero, or not JSON
	}
	depth, values, err := jsonBounds(trimmed)
	switch {
	case err != nil:
		return nil
	case depth > MaxJSONDepth:
		return providers.Errorf(providers.InvalidResponse,
			"%s answered HTTP %d with JSON nested deeper than %d levels, the most tokensync reads", provider, status, MaxJSONDepth)
	case values > MaxJSONValues:
		return providers.Errorf(providers.InvalidResponse,
			"%s answered HTTP %d with JSON of more than %s values, the most tokensync reads", provider, status, formatCount(MaxJSONValues))
	}
	return nil
}

// jsonBounds scans the JSON documents in body, up to the first one past a
// bound: it returns the deepest nesting and the number of values seen, and
// stops as soon as either passes its limit. err is a syntax error met
// before that.
func jsonBounds(body []byte) (depth, values int, err error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber() // a number stays its text: nothing is converted
	// The open arrays and objects; an object's wantKey tells whether a
	// member name comes next (Token returns names as strings, like values).
	type container struct{ object, wantKey bool }
	var open []container
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return depth, values, nil
		}
		if err != nil {
			return depth, values, err
		}
		if n := len(open); n > 0 {
			top := &open[n-1]
			if d, ok := tok.(json.Delim); ok && (d == '}' || d == ']') {
				open = open[:n-1]
				continue
			}
			if top.object {
				if top.wantKey {
					top.wantKey = false // a member name; its value follows
					continue
				}
				top.wantKey = true // after this value, the next name
			}
		}
		values++
		if d, ok := tok.(json.Delim); ok {
			open = append(open, container{object: d == '{', wantKey: d == '{'})
			depth = max(depth, len(open))
		}
		if depth > MaxJSONDepth || values > MaxJSONValues {
			return depth, values, nil
		}
	}
}

// formatCount writes n with thousands separators, as messages show counts.
func formatCount(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
