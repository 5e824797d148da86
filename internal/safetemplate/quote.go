package safetemplate

import (
	"strconv"
	"unicode/utf8"
)

// quotedLen is len(strconv.Quote(s)), counted without building it, as
// strconv escapes: \" and \\; printable runes as they are; \a \b \f \n \r
// \t \v; other bytes below space, DEL and invalid UTF-8 as \xNN; other
// runes as \uNNNN or \UNNNNNNNN. A test holds it to strconv.
func quotedLen(s string) int {
	n := 2
	for len(s) > 0 {
		r, width := utf8.DecodeRuneInString(s)
		s = s[width:]
		switch {
		case width == 1 && r == utf8.RuneError:
			n += 4
		case r == '"' || r == '\\':
			n += 2
		case strconv.IsPrint(r):
			n += width
		case r == '\a' || r == '\b' || r == '\f' || r == '\n' || r == '\r' || r == '\t' || r == '\v':
			n += 2
		case r < ' ' || r == 0x7f:
			n += 4
		case r < 0x10000:
			n += 6
		default:
			n += 10
		}
	}
	return n
}
