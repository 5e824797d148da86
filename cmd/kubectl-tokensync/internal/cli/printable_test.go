package cli

import "testing"

func TestPrintable(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"Secret partner-token holds a valid token", "Secret partner-token holds a valid token"},
		{"naïve ünïcode ✓", "naïve ünïcode ✓"},
		{"line\nbreak\ttab", `line\nbreak\ttab`},
		{"\x1b[2J\x1b[Hcleared", `\x1b[2J\x1b[Hcleared`},
		{"bell\a del\x7f c1\u0085", `bell\a del\x7f c1\u0085`},
		{"right-to-left \u202eevil", `right-to-left \u202eevil`},
		{"separator\u2028here", `separator\u2028here`},
		{"bad \xff byte", "bad \ufffd byte"},
	} {
		if got := printable(tc.in); got != tc.want {
			t.Errorf("printable(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
