package safetemplate

import (
	"encoding/base64"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"unicode"
	"unicode/utf8"
)

// builtins are the text/template builtins a template may call as they are:
// none builds text (and, or and not return an argument or a bool, the
// comparisons a bool, len a number), and their errors name types, never
// values. index, slice, print and urlquery are replaced by this package's
// own (funcs), which bound what they build and whose errors quote nothing.
// printf, println, html, js and call are not allowed.
var builtins = []string{"and", "or", "not", "eq", "ne", "lt", "le", "gt", "ge", "len"}

// allowed is every function a template may call: the one list.
var allowed = func() map[string]bool {
	m := map[string]bool{}
	for _, f := range builtins {
		m[f] = true
	}
	for f := range new(render).funcs() {
		m[f] = true
	}
	return m
}()

// Functions are the names of the functions a template may call, sorted.
func Functions() []string { return slices.Sorted(maps.Keys(allowed)) }

// render is the state of one render: what its functions have built.
type render struct {
	built int
}

// funcs are this package's functions, bound to r.
func (r *render) funcs() template.FuncMap {
	return template.FuncMap{
		"index":      index,
		"slice":      slice,
		"print":      r.print,
		"urlquery":   r.urlquery,
		"b64enc":     r.b64enc,
		"b64dec":     r.b64dec,
		"trim":       strings.TrimSpace,
		"trimPrefix": func(prefix, s string) string { return strings.TrimPrefix(s, prefix) },
		"trimSuffix": func(suffix, s string) string { return strings.TrimSuffix(s, suffix) },
		"replace":    r.replace,
		"upper":      func(s string) (string, error) { return r.mapRunes("upper", s, unicode.ToUpper, strings.ToUpper) },
		"lower":      func(s string) (string, error) { return r.mapRunes("lower", s, unicode.ToLower, strings.ToLower) },
		"quote":      r.quote,
	}
}

// funcError is an error of this package's functions. Its message names the
// function and the problem and never holds a value, so it is shown whole.
type funcError struct{ msg string }

func (e *funcError) Error() string { return e.msg }

func funcErrorf(format string, args ...any) error { return &funcError{fmt.Sprintf(format, args...)} }

// build reserves n bytes for what function fn is about to build: at most
// MaxValueBytes, and MaxWorkBytes for all of a render's functions.
func (r *render) build(fn string, n int) error {
	if n > MaxValueBytes {
		return funcErrorf("%s would build more than %d KiB, the limit of one value", fn, MaxValueBytes>>10)
	}
	r.built += n
	if r.built > MaxWorkBytes {
		return funcErrorf("the functions of one template may build %d KiB in all, and %s would pass it", MaxWorkBytes>>10, fn)
	}
	return nil
}

var errNotBase64 = &funcError{"b64dec was given a value that is not base64"}

func (r *render) b64enc(s string) (string, error) {
	if err := r.build("b64enc", base64.StdEncoding.EncodedLen(len(s))); err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString([]byte(s)), nil
}

func (r *render) b64dec(s string) (string, error) {
	if err := r.build("b64dec", base64.StdEncoding.DecodedLen(len(s))); err != nil {
		return "", err
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return "", errNotBase64
	}
	return string(b), nil
}

// replace replaces every old in s by new.
func (r *render) replace(old, new, s string) (string, error) {
	if err := r.build("replace", replacedLen(old, new, s)); err != nil {
		return "", err
	}
	return strings.ReplaceAll(s, old, new), nil
}

// replacedLen is len(strings.ReplaceAll(s, old, new)), or more than
// MaxValueBytes when it is larger (n*grow could overflow). An empty old
// matches before every rune and at the end, as strings.Count counts it.
func replacedLen(old, new, s string) int {
	n, grow := strings.Count(s, old), len(new)-len(old)
	if grow > 0 && n > (MaxValueBytes+1)/grow {
		return MaxValueBytes + 1
	}
	return len(s) + n*grow
}

// upper and lower: one rune's case can take more bytes than the rune, and
// an invalid byte becomes U+FFFD (three bytes).
func (r *render) mapRunes(fn, s string, mapRune func(rune) rune, mapString func(string) string) (string, error) {
	if err := r.build(fn, mappedLen(s, mapRune)); err != nil {
		return "", err
	}
	return mapString(s), nil
}

// mappedLen is len(strings.Map(mapRune, s)) for a mapRune that drops
// nothing: strings.Map writes an invalid byte as U+FFFD mapped.
func mappedLen(s string, mapRune func(rune) rune) int {
	size := 0
	for _, c := range s {
		if n := utf8.RuneLen(mapRune(c)); n > 0 {
			size += n
		} else {
			size += utf8.UTFMax
		}
	}
	return size
}

// quote is strconv.Quote, its result's size counted first (quotedLen).
func (r *render) quote(s string) (string, error) {
	if err := r.build("quote", quotedLen(s)); err != nil {
		return "", err
	}
	return strconv.Quote(s), nil
}

// print is text/template's print (fmt.Sprint), its result's size counted
// first. Its operands are text, numbers, booleans or nil: a template reads
// nothing else.
func (r *render) print(args ...any) (string, error) {
	size, err := printedLen("print", args)
	if err != nil {
		return "", err
	}
	if err := r.build("print", size); err != nil {
		return "", err
	}
	return fmt.Sprint(args...), nil
}

// urlquery is text/template's urlquery (url.QueryEscape of the operands
// printed), its result's size counted first.
func (r *render) urlquery(args ...any) (string, error) {
	s, ok := "", len(args) == 1
	if ok {
		s, ok = args[0].(string)
	}
	if !ok {
		var err error
		if s, err = r.print(args...); err != nil {
			return "", err
		}
	}
	if err := r.build("urlquery", queryEscapedLen(s)); err != nil {
		return "", err
	}
	return url.QueryEscape(s), nil
}

// queryEscapedLen is len(url.QueryEscape(s)): letters, digits, -_.~ and
// space (as +) stay one byte; every other byte is %XX.
func queryEscapedLen(s string) int {
	size := 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			c == '-', c == '_', c == '.', c == '~', c == ' ':
			size++
		default:
			size += 3
		}
	}
	return size
}

// printedLen is the length of fmt.Sprint(args...): operands printed with
// %v, a space between two operands when neither is text.
func printedLen(fn string, args []any) (int, error) {
	size, prevText := 0, false
	for i, a := range args {
		text := false
		switch v := a.(type) {
		case string:
			size += len(v)
			text = true
		case nil, bool, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, uintptr, float32, float64, complex64, complex128:
			size += len(fmt.Sprint(v))
		default:
			return 0, funcErrorf("%s takes text, numbers and booleans, not %T", fn, a)
		}
		if i > 0 && !text && !prevText {
			size++
		}
		prevText = text
	}
	return size, nil
}

// index is text/template's index, for what a template can hold: the data
// with a key (index . "key"; the checker makes the key a literal), and text
// with a position (a byte). Its errors quote no value.
func index(item any, indices ...any) (any, error) {
	v := item
	for _, ix := range indices {
		switch x := v.(type) {
		case map[string]string:
			k, ok := ix.(string)
			if !ok {
				return nil, funcErrorf(`index . takes a quoted key, as in index . "client-id"`)
			}
			s, ok := x[k]
			if !ok {
				return nil, funcErrorf("index . %q: the data has no such key", k)
			}
			v = s
		case string:
			i, ok := toInt(ix)
			if !ok {
				return nil, funcErrorf("index of text takes a position (a number)")
			}
			if i < 0 || i >= len(x) {
				return nil, funcErrorf("the position is out of range")
			}
			v = x[i]
		default:
			return nil, funcErrorf("index takes the data and a key, or text and a position; not %T", v)
		}
	}
	return v, nil
}

// slice is text/template's slice for text: slice s i is s[i:], slice s i j
// is s[i:j]. Its errors quote no value.
func slice(item any, indices ...any) (string, error) {
	s, ok := item.(string)
	if !ok {
		return "", funcErrorf("slice takes text, not %T", item)
	}
	if len(indices) > 2 {
		return "", funcErrorf("slice of text takes at most two positions")
	}
	bounds := []int{0, len(s)}
	for i, ix := range indices {
		n, ok := toInt(ix)
		if !ok {
			return "", funcErrorf("slice takes positions (numbers)")
		}
		bounds[i] = n
	}
	if bounds[0] < 0 || bounds[0] > bounds[1] || bounds[1] > len(s) {
		return "", funcErrorf("a position is out of range")
	}
	return s[bounds[0]:bounds[1]], nil
}

// toInt reads a position: any integer that fits an int.
func toInt(v any) (int, bool) {
	switch n := v.(type) {
	case int:
		return n, true
	case int8:
		return int(n), true
	case int16:
		return int(n), true
	case int32:
		return int(n), true
	case int64:
		return int(n), int64(int(n)) == n
	case uint:
		return int(n), int(n) >= 0
	case uint8:
		return int(n), true
	case uint16:
		return int(n), true
	case uint32:
		return int(n), int(n) >= 0
	case uint64:
		return int(n), int(n) >= 0 && uint64(int(n)) == n
	case uintptr:
		return int(n), int(n) >= 0
	}
	return 0, false
}
