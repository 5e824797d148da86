package safetemplate

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"unicode"
)

// sizeSamples hold what makes a function's result longer or shorter than
// its input: case changes that change a rune's length, invalid UTF-8,
// control characters, quotes, runes past U+FFFF, reserved URL bytes.
var sizeSamples = []string{
	"", "a", "plain ASCII text", "Straße", "ɐȺſıİK", "\xff\xfe", "a\xffb\xc3", "\x00\x01\x1f\x7f", "\a\b\f\n\r\t\v",
	`"quoted" \back\slash`, "\u2028\u00ad\ufeff", "\U0001F600\U000E0001", "\ufffd", "%/?#&=+ :@~-_.", "日本語",
}

// TestSizesMatchTheStandardLibrary: the sizes the functions reserve before
// building are exactly what the standard library then builds, so a bound
// checked on them holds.
func TestSizesMatchTheStandardLibrary(t *testing.T) {
	for _, s := range sizeSamples {
		checkSizes(t, s, "a", "xyz")
		checkSizes(t, s, "", "--")
		checkSizes(t, s, "ab", "")
	}
}

func checkSizes(t *testing.T, s, old, new string) {
	t.Helper()
	if got, want := quotedLen(s), len(strconv.Quote(s)); got != want {
		t.Errorf("quotedLen(%q) = %d, strconv.Quote makes %d", s, got, want)
	}
	if got, want := mappedLen(s, unicode.ToUpper), len(strings.ToUpper(s)); got != want {
		t.Errorf("mappedLen(%q, ToUpper) = %d, strings.ToUpper makes %d", s, got, want)
	}
	if got, want := mappedLen(s, unicode.ToLower), len(strings.ToLower(s)); got != want {
		t.Errorf("mappedLen(%q, ToLower) = %d, strings.ToLower makes %d", s, got, want)
	}
	if got, want := queryEscapedLen(s), len(url.QueryEscape(s)); got != want {
		t.Errorf("queryEscapedLen(%q) = %d, url.QueryEscape makes %d", s, got, want)
	}
	if got, want := replacedLen(old, new, s), len(strings.ReplaceAll(s, old, new)); got != want {
		t.Errorf("replacedLen(%q, %q, %q) = %d, strings.ReplaceAll makes %d", old, new, s, got, want)
	}
	for _, args := range [][]any{{s}, {s, 1}, {1, 2, s, true, nil}, {uint8(3), 2.5, s, s}, {complex(1, 2), -7}} {
		got, err := printedLen("print", args)
		if want := len(fmt.Sprint(args...)); err != nil || got != want {
			t.Errorf("printedLen(%v) = %d, %v; fmt.Sprint makes %d", args, got, err, want)
		}
	}
}

// TestReplacedLenDoesNotOverflow: a growth too large to count is more than
// the bound, never a small or negative size.
func TestReplacedLenDoesNotOverflow(t *testing.T) {
	s := strings.Repeat("a", 1<<20)
	if n := replacedLen("", strings.Repeat("b", 1<<20), s); n <= MaxValueBytes {
		t.Errorf("replacedLen = %d", n)
	}
}

func TestPrintRefusesOtherTypes(t *testing.T) {
	if _, err := printedLen("print", []any{map[string]string{}}); err == nil {
		t.Error("print of a map accepted")
	}
}

func TestToInt(t *testing.T) {
	for _, v := range []any{int(3), int8(3), int16(3), int32(3), int64(3), uint(3), uint8(3), uint16(3), uint32(3), uint64(3), uintptr(3)} {
		if n, ok := toInt(v); !ok || n != 3 {
			t.Errorf("toInt(%T 3) = %d, %v", v, n, ok)
		}
	}
	for _, v := range []any{uint64(1 << 63), "3", 3.0, nil} {
		if _, ok := toInt(v); ok {
			t.Errorf("toInt(%T %v) accepted", v, v)
		}
	}
}
