package urlpath

import (
	"errors"
	"testing"
)

func TestCheck(t *testing.T) {
	tests := []struct {
		path string
		want error
	}{
		{"", nil},
		{"/", nil},
		{"/api/get-access-token", nil},
		{"api/login", nil},
		{"/tenant-a/", nil},
		{"/a//b", nil},
		{"/...", nil},
		{"/.well-known/x", nil},
		{"/a..b/c.", nil},
		{"/%7Euser/%41", nil},
		{"/a%20b", nil},
		{"/a%25b", nil},        // a literal "%", once encoded
		{"/100%", nil},         // a "%" starting no encoding stays as it is
		{"/a;b=c/x", nil},      // a parameter on an ordinary segment
		{"/%2525", nil},        // decodes to "%25", then "%": no more
		{"/v1/token%3Bx", nil}, // an encoded ";" on an ordinary segment
		{"/%252E%252Ex", nil},  // "%2E%2Ex", then "..x": not a dot segment
		{"/tenant-a/%2E%2Ex", nil},

		{"..", ErrDotSegment},
		{".", ErrDotSegment},
		{"../admin/keys", ErrDotSegment},
		{"/tenant-a/../admin", ErrDotSegment},
		{"/a/./b", ErrDotSegment},
		{"/a/.", ErrDotSegment},
		{"/a/..", ErrDotSegment},
		{"/a/../", ErrDotSegment},
		{"/%2e%2e/admin", ErrDotSegment},
		{"/%2E%2E/admin", ErrDotSegment},
		{"/.%2e/admin", ErrDotSegment},
		{"/%2e./admin", ErrDotSegment},
		{"/%2e/admin", ErrDotSegment},
		{"/..;/admin", ErrDotSegment},
		{"/..;jsessionid=x/admin", ErrDotSegment},
		{"/..%3b/admin", ErrDotSegment},
		{"/.%00/admin", ErrDotSegment},
		{"/..%00.json/admin", ErrDotSegment},
		{"/%252e%252e/admin", ErrDotSegment},     // decoded twice
		{"/%25252e%25252e/admin", ErrDotSegment}, // decoded three times
		{"/%2525252e%2525252e/admin", ErrNestedEncoding},

		{`/a\b`, ErrSeparator},
		{`\..\admin`, ErrSeparator},
		{`/a\b/../c`, ErrSeparator},
		{"/tenant-a%2f..%2fadmin", ErrDotSegment},
		{"/tenant-a%2F..%2Fadmin", ErrDotSegment},
		{"/tenant-a%5c..%5cadmin", ErrDotSegment},
		{"/..%2f", ErrDotSegment},
		{"/a%2fb", ErrSeparator},
		{"/a%5cb", ErrSeparator},
		{"/a%5Cb", ErrSeparator},
		{"/a%252fb", ErrSeparator},
	}
	for _, tt := range tests {
		if got := Check(tt.path); !errors.Is(got, tt.want) {
			t.Errorf("Check(%q) = %v, want %v", tt.path, got, tt.want)
		}
	}
}

func TestNormalize(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"/tenant-a", "/tenant-a"},
		{"/%74enant%2Da", "/tenant-a"},
		{"/%7e%7E%5f", "/~~_"},
		{"/a%2fb", "/a%2Fb"},
		{"/a%3ab%3A", "/a%3Ab%3A"},
		{"/a%20b", "/a%20b"},
		{"/100%", "/100%25"},
		{"/%zz%4", "/%25zz%254"},
		{"/%7%30", "/%2570"},
		{"/%252e", "/%252e"}, // "%25" is reserved: the "2e" after it is text
	}
	for _, tt := range tests {
		if got := Normalize(tt.in); got != tt.want {
			t.Errorf("Normalize(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
