package urlpath

import (
	"net/url"
	"strings"
	"testing"
)

// FuzzCheck: a path Check accepts, joined under a base as the providers
// join it (url.JoinPath, which resolves dot segments), stays under the base
// in every decoding a server might make, and its Normalize spelling is
// accepted too and stable.
func FuzzCheck(f *testing.F) {
	for _, seed := range []string{"/api/login", "../admin", "%2e%2e/x", "..;/x", "a%2f..%2fb", "%252e%252e/x", ".well-known/x", "/a..b/", "%", "%7%30"} {
		f.Add(seed)
	}
	base, _ := url.Parse("https://gw.example.com/tenant-a")
	f.Fuzz(func(t *testing.T, p string) {
		if Check(p) != nil {
			return
		}
		n := Normalize(p)
		if Check(n) != nil || Normalize(n) != n {
			t.Fatalf("Check accepts %q but not its normal spelling %q (or that is not stable)", p, n)
		}
		joined := base.JoinPath(p)
		for s, i := joined.EscapedPath(), 0; i <= maxDecodings; s, i = decode(s), i+1 {
			if s != "/tenant-a" && !strings.HasPrefix(s, "/tenant-a/") {
				t.Fatalf("Check accepts %q, but joined it reads %q after %d decodings", p, s, i)
			}
			for _, part := range strings.FieldsFunc(s, isSeparator) {
				part, _, _ = strings.Cut(part, ";")
				part, _, _ = strings.Cut(part, "\x00")
				if part == "." || part == ".." {
					t.Fatalf("Check accepts %q, but joined it reads %q after %d decodings", p, s, i)
				}
			}
		}
	})
}
