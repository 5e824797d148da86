// Package urlpath judges URL paths as a server might read them, for the
// operator's endpoint policy and for the providers that join a login path
// to an endpoint: both must refuse the same paths, so the rule is here once.
//
// A path is judged in its escaped form, as sent on the wire. A server (or a
// proxy in front of it) may decode percent-encodings before it resolves dot
// segments or splits on "/", and some decode twice; a path that could leave
// the prefix it was allowed under in any of those readings is refused rather
// than resolved, since resolving it would only guess which reading the
// server makes.
package urlpath

import (
	"errors"
	"strings"
)

// The reasons Check gives, written for users.
var (
	// ErrDotSegment: a "." or ".." segment, also percent-encoded (%2e),
	// with a ";" parameter (Tomcat's "..;") or cut short by a NUL.
	ErrDotSegment = errors.New(`"." and ".." segments (also percent-encoded, as %2e, or with ";" parameters) are not allowed in a URL path`)
	// ErrSeparator: a backslash, or a slash or backslash percent-encoded
	// (%2f, %5c), which a server that decodes first reads as a separator.
	ErrSeparator = errors.New(`backslashes are not allowed in a URL path, nor slashes or backslashes percent-encoded (%2f, %5c)`)
	// ErrNestedEncoding: percent-encodings nested deeper than any real path needs.
	ErrNestedEncoding = errors.New("percent-encodings nested more than 3 deep are not allowed in a URL path")
)

// maxDecodings bounds how many times Check decodes a path: a server that
// decodes twice is rare, three times unheard of.
const maxDecodings = 3

// Check reports whether the escaped path could name a different place than
// it reads as: a backslash, a dot segment (also between separators hidden
// in an encoding), or a separator hidden in an encoding, in the path as
// written or after percent-decoding it once, twice or three times. It does
// not resolve anything.
func Check(escaped string) error {
	s := escaped
	for round := 0; ; round++ {
		if strings.Contains(s, `\`) {
			return ErrSeparator
		}
		segs := strings.Split(s, "/")
		for _, seg := range segs {
			// A traversal hidden behind encoded separators ("..%2f..") is
			// named as the traversal it is.
			for _, part := range strings.FieldsFunc(decode(seg), isSeparator) {
				part, _, _ = strings.Cut(part, ";")
				part, _, _ = strings.Cut(part, "\x00")
				if part == "." || part == ".." {
					return ErrDotSegment
				}
			}
		}
		for _, seg := range segs {
			if strings.ContainsFunc(decode(seg), isSeparator) {
				return ErrSeparator
			}
		}
		next := decode(s)
		if next == s {
			return nil
		}
		if round == maxDecodings-1 {
			return ErrNestedEncoding
		}
		s = next
	}
}

func isSeparator(r rune) bool { return r == '/' || r == '\\' }

// Normalize returns the escaped path in the one spelling two equal paths
// share (RFC 3986 §6.2.2): unreserved characters decoded ("%7E" is "~",
// "%41" is "A"), the hex digits of the other encodings upper-case, and a
// "%" that starts no encoding written "%25". Paths parsed by net/url hold no
// such "%"; for every other path it changes nothing a server could read
// differently.
func Normalize(escaped string) string {
	if !strings.Contains(escaped, "%") {
		return escaped
	}
	var b strings.Builder
	b.Grow(len(escaped))
	for i := 0; i < len(escaped); i++ {
		c := escaped[i]
		if c == '%' && i+2 < len(escaped) && isHex(escaped[i+1]) && isHex(escaped[i+2]) {
			v := unhex(escaped[i+1])<<4 | unhex(escaped[i+2])
			if unreserved(v) {
				b.WriteByte(v)
			} else {
				const digits = "0123456789ABCDEF"
				b.WriteByte('%')
				b.WriteByte(digits[v>>4])
				b.WriteByte(digits[v&15])
			}
			i += 2
			continue
		}
		if c == '%' {
			// A "%" that starts no encoding is a percent sign: spelt so, a
			// decoding above cannot make it start one ("%7%30").
			b.WriteString("%25")
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// decode percent-decodes s once, leaving a "%" that starts no valid
// encoding as it is, as lenient servers do.
func decode(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func unreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= 'a':
		return c - 'a' + 10
	case c >= 'A':
		return c - 'A' + 10
	}
	return c - '0'
}
