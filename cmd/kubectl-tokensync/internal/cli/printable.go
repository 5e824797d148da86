package cli

import (
	"strconv"
	"strings"
	"unicode"
)

// printable makes text written by others (a condition message, an event, a
// claim, an annotation a tenant may edit) safe to print on a terminal: every
// control character is escaped as Go would quote it ("\x1b", "\n"), so that
// no value can move the cursor, rewrite a line already printed or break the
// table it sits in.
func printable(s string) string {
	if strings.IndexFunc(s, unsafeRune) < 0 {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if unsafeRune(r) {
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// unsafeRune: control characters (C0, DEL, C1), the Unicode line and
// paragraph separators, bidirectional overrides, and invalid UTF-8.
func unsafeRune(r rune) bool {
	return unicode.IsControl(r) || r == unicode.ReplacementChar ||
		r == '\u2028' || r == '\u2029' || unicode.Is(unicode.Bidi_Control, r)
}
