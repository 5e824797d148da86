package endpointpolicy

import (
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tokensync/tokensync/providers"
)

// wantNotAllowed fails unless err is a *providers.Error of kind EndpointNotAllowed.
func wantNotAllowed(t *testing.T, err error) *providers.Error {
	t.Helper()
	var pe *providers.Error
	if !errors.As(err, &pe) || pe.Kind != providers.EndpointNotAllowed {
		t.Fatalf("error = %v (%T), want a *providers.Error of kind EndpointNotAllowed", err, err)
	}
	return pe
}

// allowedOf lists a policy's entries as "provider=prefix" strings.
func allowedOf(p *Policy) []string {
	var got []string
	for _, provider := range p.providers() {
		for _, e := range p.allowed[provider] {
			got = append(got, provider+"="+e.String())
		}
	}
	return got
}

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		spec    string
		rules   Rules
		want    []string
		wantErr string
	}{
		{name: "empty", spec: "", want: nil},
		{name: "only separators", spec: " , ,", want: nil},
		{
			name: "issue example",
			spec: "aml=https://api.amlwatcher.com,partner=https://partner.example,partner=https://other.example/base",
			want: []string{"aml=https://api.amlwatcher.com", "partner=https://partner.example", "partner=https://other.example/base"},
		},
		{name: "bare host means any https URL on it", spec: "amplifi=api.amplifi.example", want: []string{"amplifi=https://api.amplifi.example"}},
		{name: "bare host with port", spec: "amplifi=api.amplifi.example:8443", want: []string{"amplifi=https://api.amplifi.example:8443"}},
		{name: "bare host with trailing slash", spec: "amplifi=api.amplifi.example/", want: []string{"amplifi=https://api.amplifi.example"}},
		{name: "spaces and trailing comma", spec: " aml = https://a.example/base/ , ", want: []string{"aml=https://a.example/base"}},
		{name: "case and default port normalised", spec: "AML=HTTPS://API.Example:443/Base", want: []string{"aml=https://api.example/Base"}},
		{name: "duplicates collapse", spec: "aml=https://a.example,aml=a.example,aml=https://a.example/", want: []string{"aml=https://a.example"}},
		{name: "http to loopback", spec: "local=http://127.0.0.1:8080,local=http://localhost:9000,local=http://[::1]", rules: Rules{AllowLoopback: true}, want: []string{"local=http://127.0.0.1:8080", "local=http://localhost:9000", "local=http://[::1]"}},
		{name: "http with insecure allowed", spec: "aml=http://aml.internal", rules: Rules{AllowInsecureHTTP: true}, want: []string{"aml=http://aml.internal"}},
		{name: "normalised path", spec: "aml=https://a.example/%74enant%2da/", want: []string{"aml=https://a.example/tenant-a"}},
		{name: "ipv6 canonicalised", spec: "aml=https://[2001:DB8:0::1]:8443/x", want: []string{"aml=https://[2001:db8::1]:8443/x"}},

		{name: "missing equals", spec: "https://a.example", wantErr: "want provider="},
		{name: "empty provider", spec: "=https://a.example", wantErr: "want provider="},
		{name: "empty value", spec: "aml=", wantErr: "want provider="},
		{name: "bad provider name", spec: "a ml=https://a.example", wantErr: "provider name"},
		{name: "bad scheme", spec: "aml=ftp://a.example", wantErr: "scheme"},
		{name: "http to remote host", spec: "aml=http://a.example", wantErr: "plain http://"},
		{name: "bare host with path", spec: "aml=a.example/base", wantErr: "bare host cannot carry a path"},
		{name: "user-info", spec: "aml=https://user:hunter2@a.example", wantErr: "user-info"},
		{name: "query", spec: "aml=https://a.example/?x=1", wantErr: "queries and fragments"},
		{name: "metadata address", spec: "aml=http://169.254.169.254", rules: Rules{AllowInsecureHTTP: true, AllowLoopback: true}, wantErr: "metadata"},
		{name: "loopback without the flag", spec: "local=http://127.0.0.1:8080", wantErr: "loopback hosts are refused unless --allow-loopback-endpoints is set"},
		{name: "https localhost without the flag", spec: "local=https://localhost", rules: Rules{AllowInsecureHTTP: true}, wantErr: "--allow-loopback-endpoints"},
		{name: "bare localhost name without the flag", spec: "local=api.localhost", wantErr: "--allow-loopback-endpoints"},
		{name: "unspecified address without the flag", spec: "local=https://0.0.0.0", wantErr: "--allow-loopback-endpoints"},
		{name: "mapped metadata address", spec: "aml=https://[::ffff:169.254.169.254]", wantErr: "metadata"},
		{name: "numeric host", spec: "aml=https://2130706433", wantErr: "non-standard form"},
		{name: "dot segment", spec: "aml=https://a.example/base/..", wantErr: `".."`},
		{name: "encoded slash", spec: "aml=https://a.example/base%2fx", wantErr: "%2f"},
		{name: "bad port", spec: "aml=https://a.example:99999", wantErr: "port"},
		{name: "no host", spec: "aml=https:///path", wantErr: "no host"},
		{name: "bad host characters", spec: "aml=https://a!b.example", wantErr: "not a valid DNS name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse(tt.spec, tt.rules)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Parse(%q) error = %v, want one containing %q", tt.spec, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.spec, err)
			}
			if got := allowedOf(p); strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Errorf("Parse(%q) entries = %q, want %q", tt.spec, got, tt.want)
			}
			if p.Rules != tt.rules {
				t.Errorf("Rules = %+v, want %+v", p.Rules, tt.rules)
			}
		})
	}
}

func TestParseErrorHidesUserInfo(t *testing.T) {
	_, err := Parse("aml=https://user:hunter2@a.example", Rules{})
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("error = %v, want an error that does not show the user-info", err)
	}
}

func TestParseFile(t *testing.T) {
	tests := []struct {
		name    string
		content string
		want    []string
		wantErr string
	}{
		{name: "empty file", content: "", want: nil},
		{
			name: "comments and blank lines",
			content: "# endpoints the operator may call\n\n" +
				"aml=https://api.amlwatcher.com   # production\n" +
				"  partner = https://partner.example\n" +
				"partner=https://other.example/base\r\n" +
				"amplifi=api.amplifi.example\n",
			want: []string{"aml=https://api.amlwatcher.com", "amplifi=https://api.amplifi.example", "partner=https://partner.example", "partner=https://other.example/base"},
		},
		{name: "malformed line names its number", content: "aml=https://a.example\n\nnot an entry\n", wantErr: ":3: entry"},
		{name: "http refused", content: "aml=http://a.example\n", wantErr: ":1: entry aml="},
		{name: "no comma lists in a file", content: "aml=https://a.example,aml=https://b.example\n", wantErr: "not a valid DNS name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "allowed-endpoints")
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			p, err := ParseFile(path, Rules{})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseFile error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseFile: %v", err)
			}
			if got := allowedOf(p); strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Errorf("entries = %q, want %q", got, tt.want)
			}
		})
	}

	if _, err := ParseFile(filepath.Join(t.TempDir(), "missing"), Rules{}); err == nil {
		t.Error("ParseFile of a missing file: want an error")
	}
}

func TestCheck(t *testing.T) {
	policy, err := Parse("aml=https://api.amlwatcher.com,"+
		"partner=https://partner.example,partner=https://other.example/base,"+
		"amplifi=api.amplifi.example,"+
		"ported=https://p.example:8443/api/,"+
		"v6=https://[2001:db8::1]/x,"+
		"local=http://localhost:8080", Rules{AllowLoopback: true})
	if err != nil {
		t.Fatal(err)
	}
	insecure, err := Parse("aml=http://aml.internal,aml=https://api.amlwatcher.com", Rules{AllowInsecureHTTP: true})
	if err != nil {
		t.Fatal(err)
	}
	loopback := &Policy{Rules: Rules{AllowLoopback: true}}
	private := &Policy{Rules: Rules{AllowLoopback: true, AllowPrivate: true}}
	tests := []struct {
		name     string
		policy   *Policy
		provider string
		endpoint string
		// wantErr is "" when the endpoint is allowed, else a substring of the refusal.
		wantErr string
	}{
		// allowlists
		{name: "listed host", policy: policy, provider: "aml", endpoint: "https://api.amlwatcher.com"},
		{name: "listed host, any path", policy: policy, provider: "aml", endpoint: "https://api.amlwatcher.com/v1/login"},
		{name: "other listed entry", policy: policy, provider: "partner", endpoint: "https://other.example/base/v2"},
		{name: "unlisted host", policy: policy, provider: "aml", endpoint: "https://evil.example", wantErr: "allowed: https://api.amlwatcher.com"},
		{name: "another provider's host", policy: policy, provider: "aml", endpoint: "https://partner.example", wantErr: "--allowed-endpoints"},
		{name: "provider without entries allows any https", policy: policy, provider: "other", endpoint: "https://anything.example/x"},
		{name: "provider name case", policy: policy, provider: "AML", endpoint: "https://evil.example", wantErr: "not allowed"},

		// prefix boundaries
		{name: "prefix itself", policy: policy, provider: "partner", endpoint: "https://other.example/base"},
		{name: "prefix with slash", policy: policy, provider: "partner", endpoint: "https://other.example/base/"},
		{name: "prefix sibling", policy: policy, provider: "partner", endpoint: "https://other.example/basement", wantErr: "not allowed"},
		{name: "prefix parent", policy: policy, provider: "partner", endpoint: "https://other.example/", wantErr: "not allowed"},
		{name: "host suffix", policy: policy, provider: "aml", endpoint: "https://api.amlwatcher.com.evil.com", wantErr: "not allowed"},
		{name: "host as subdomain", policy: policy, provider: "aml", endpoint: "https://evil.api.amlwatcher.com", wantErr: "not allowed"},
		{name: "escaped slash", policy: policy, provider: "partner", endpoint: "https://other.example/base%2Fv2", wantErr: "%2f"},
		{name: "escaped unreserved characters", policy: policy, provider: "partner", endpoint: "https://other.example/%62ase/v%32"},
		{name: "escaped hex case", policy: policy, provider: "partner", endpoint: "https://other.example/base/a%3ab"},
		{name: "dot segment", policy: policy, provider: "partner", endpoint: "https://other.example/base/../admin", wantErr: `".."`},
		{name: "encoded dot segment", policy: policy, provider: "partner", endpoint: "https://other.example/base/%2e%2e/admin", wantErr: `".."`},
		{name: "tomcat dot segment", policy: policy, provider: "partner", endpoint: "https://other.example/base/..;/admin", wantErr: `".."`},
		{name: "backslash", policy: policy, provider: "partner", endpoint: `https://other.example/base/..\admin`, wantErr: "backslash"},
		{name: "path case matters", policy: policy, provider: "partner", endpoint: "https://other.example/BASE", wantErr: "not allowed"},
		{name: "encoded slashes around dot segments", policy: policy, provider: "partner", endpoint: "https://other.example/base/..%2f..%2fadmin", wantErr: `"." and ".." segments`},
		{name: "encoded slashes around dot segments, no allowlist", policy: nil, provider: "aml", endpoint: "https://aml.example.com/v1/..%2f..%2finternal", wantErr: `"." and ".." segments`},

		// case
		{name: "host case", policy: policy, provider: "aml", endpoint: "https://API.AmlWatcher.COM/v1"},
		{name: "scheme case", policy: policy, provider: "aml", endpoint: "HTTPS://api.amlwatcher.com"},

		// ports
		{name: "default port written out", policy: policy, provider: "aml", endpoint: "https://api.amlwatcher.com:443/v1"},
		{name: "other port", policy: policy, provider: "aml", endpoint: "https://api.amlwatcher.com:8443", wantErr: "not allowed"},
		{name: "listed port", policy: policy, provider: "ported", endpoint: "https://p.example:8443/api/v1"},
		{name: "listed port missing", policy: policy, provider: "ported", endpoint: "https://p.example/api/v1", wantErr: "not allowed"},
		{name: "port with leading zero", policy: policy, provider: "ported", endpoint: "https://p.example:08443/api"},
		{name: "port zero", policy: nil, provider: "aml", endpoint: "https://a.example:0", wantErr: "port"},
		{name: "port out of range", policy: nil, provider: "aml", endpoint: "https://aml.example.com:99999", wantErr: `port "99999" is out of range`},
		{name: "bare host entry, other port", policy: policy, provider: "amplifi", endpoint: "https://api.amplifi.example:444", wantErr: "not allowed"},
		{name: "bare host entry", policy: policy, provider: "amplifi", endpoint: "https://api.amplifi.example/any/path"},
		{name: "bare host entry is https only", policy: policy, provider: "amplifi", endpoint: "http://api.amplifi.example", wantErr: "plain http://"},
		{name: "ipv6 entry, other spelling", policy: policy, provider: "v6", endpoint: "https://[2001:0db8:0:0::1]:443/x/y"},

		// http vs https, loopback exemption (with AllowLoopback; without it,
		// see TestCheckLoopback)
		{name: "http remote", policy: nil, provider: "aml", endpoint: "http://a.example", wantErr: "plain http:// is refused; use https://"},
		{name: "http remote, loopback allowed", policy: loopback, provider: "aml", endpoint: "http://a.example", wantErr: "plain http:// is only allowed to loopback hosts"},
		{name: "http localhost", policy: loopback, provider: "aml", endpoint: "http://localhost:8080/mock"},
		{name: "http LOCALHOST", policy: loopback, provider: "aml", endpoint: "http://LOCALHOST"},
		{name: "http 127.0.0.1", policy: loopback, provider: "aml", endpoint: "http://127.0.0.1:9999"},
		{name: "http 127.255.0.9", policy: loopback, provider: "aml", endpoint: "http://127.255.0.9"},
		{name: "http ::1", policy: loopback, provider: "aml", endpoint: "http://[::1]:8080"},
		{name: "http mapped loopback", policy: loopback, provider: "aml", endpoint: "http://[::ffff:127.0.0.1]"},
		{name: "http localhost subdomain", policy: loopback, provider: "aml", endpoint: "http://x.localhost", wantErr: "plain http://"},
		{name: "https localhost subdomain", policy: loopback, provider: "aml", endpoint: "https://x.localhost"},
		{name: "http 10/8", policy: loopback, provider: "aml", endpoint: "http://10.0.0.1", wantErr: "private address"},
		{name: "http 10/8, private allowed", policy: private, provider: "aml", endpoint: "http://10.0.0.1", wantErr: "plain http://"},
		{name: "http name, even one resolving to loopback", policy: loopback, provider: "partner", endpoint: "http://partner.tokensync.test:8080", wantErr: "plain http:// is only allowed to loopback hosts"},
		{name: "http loopback still needs the allowlist", policy: policy, provider: "aml", endpoint: "http://localhost", wantErr: "not allowed"},
		{name: "http loopback listed", policy: policy, provider: "local", endpoint: "http://localhost:8080/mock"},
		{name: "insecure allows http", policy: insecure, provider: "aml", endpoint: "http://aml.internal/login"},
		{name: "insecure keeps the allowlist", policy: insecure, provider: "aml", endpoint: "http://other.internal", wantErr: "not allowed"},
		{name: "insecure keeps scheme apart", policy: insecure, provider: "aml", endpoint: "https://aml.internal", wantErr: "not allowed"},
		{name: "insecure, provider without entries", policy: insecure, provider: "partner", endpoint: "http://partner.internal"},

		// link-local and metadata addresses, always refused
		{name: "aws/gcp/azure metadata", policy: nil, provider: "aml", endpoint: "https://169.254.169.254/latest/meta-data", wantErr: "metadata"},
		{name: "metadata over http", policy: nil, provider: "amplifi", endpoint: "http://169.254.169.254/latest", wantErr: "link-local and cloud metadata addresses are always refused"},
		{name: "link-local v4 with a port", policy: nil, provider: "aml", endpoint: "https://169.254.10.10:8443", wantErr: "metadata"},
		{name: "alibaba metadata https", policy: nil, provider: "partner", endpoint: "https://100.100.100.200", wantErr: "metadata"},
		{name: "link-local v4 http insecure", policy: insecure, provider: "partner", endpoint: "http://169.254.170.2", wantErr: "metadata"},
		{name: "alibaba metadata", policy: insecure, provider: "partner", endpoint: "http://100.100.100.200", wantErr: "metadata"},
		{name: "100.100.100.201 is not metadata", policy: private, provider: "aml", endpoint: "https://100.100.100.201"},
		{name: "metadata with private allowed", policy: private, provider: "aml", endpoint: "https://100.100.100.200", wantErr: "metadata"},
		{name: "aws v6 metadata with private allowed", policy: private, provider: "aml", endpoint: "https://[fd00:ec2::254]", wantErr: "metadata"},
		{name: "aws v6 metadata", policy: insecure, provider: "partner", endpoint: "http://[fd00:ec2::254]", wantErr: "metadata"},
		{name: "aws v6 metadata long form", policy: nil, provider: "aml", endpoint: "https://[FD00:0EC2:0:0:0:0:0:0254]", wantErr: "metadata"},
		{name: "aws pod identity", policy: nil, provider: "aml", endpoint: "https://[fd00:ec2::23]", wantErr: "metadata"},
		{name: "link-local v6", policy: nil, provider: "aml", endpoint: "https://[fe80::1]", wantErr: "metadata"},
		{name: "link-local v6 upper end", policy: nil, provider: "aml", endpoint: "https://[febf::1]", wantErr: "metadata"},
		{name: "fec0 is not link-local", policy: nil, provider: "aml", endpoint: "https://[fec0::1]"},
		{name: "link-local v6 with zone", policy: nil, provider: "aml", endpoint: "https://[fe80::1%25eth0]", wantErr: "zones"},
		{name: "mapped metadata", policy: nil, provider: "aml", endpoint: "https://[::ffff:169.254.169.254]", wantErr: "metadata"},
		{name: "mapped metadata hex", policy: nil, provider: "aml", endpoint: "https://[::ffff:a9fe:a9fe]", wantErr: "metadata"},
		{name: "mapped alibaba", policy: nil, provider: "aml", endpoint: "https://[::ffff:100.100.100.200]:80", wantErr: "metadata"},
		{name: "nat64 metadata", policy: nil, provider: "aml", endpoint: "https://[64:ff9b::169.254.169.254]", wantErr: "metadata"},
		{name: "nat64 metadata hex", policy: nil, provider: "aml", endpoint: "https://[64:ff9b::a9fe:a9fe]", wantErr: "metadata"},
		{name: "metadata even when listed host matches nothing", policy: policy, provider: "aml", endpoint: "https://169.254.169.254", wantErr: "metadata"},
		{name: "decimal ip", policy: nil, provider: "aml", endpoint: "https://2852039166", wantErr: "non-standard form"},
		{name: "hex ip", policy: nil, provider: "aml", endpoint: "https://0xa9.0xfe.0xa9.0xfe", wantErr: "non-standard form"},
		{name: "short ip", policy: nil, provider: "aml", endpoint: "https://169.254.43518", wantErr: "non-standard form"},
		{name: "octal ip", policy: nil, provider: "aml", endpoint: "https://0251.0376.0251.0376", wantErr: "non-standard form"},
		{name: "short loopback ip", policy: loopback, provider: "aml", endpoint: "http://127.1", wantErr: "non-standard form"},
		{name: "ip with trailing dot", policy: nil, provider: "aml", endpoint: "https://169.254.169.254.", wantErr: "non-standard form"},
		{name: "numeric-looking name is fine", policy: nil, provider: "aml", endpoint: "https://1password.example"},

		// URL shape
		{name: "user-info", policy: nil, provider: "aml", endpoint: "https://user:pass@a.example", wantErr: "user-info"},
		{name: "user-info hiding the host", policy: policy, provider: "aml", endpoint: "https://api.amlwatcher.com@evil.example", wantErr: "user-info"},
		{name: "empty user-info", policy: nil, provider: "aml", endpoint: "https://@a.example", wantErr: "user-info"},
		{name: "fragment", policy: nil, provider: "aml", endpoint: "https://a.example/#x", wantErr: "fragments"},
		{name: "empty fragment", policy: nil, provider: "aml", endpoint: "https://a.example#", wantErr: "fragments"},
		{name: "query", policy: nil, provider: "aml", endpoint: "https://a.example/?next=http://169.254.169.254", wantErr: "queries"},
		{name: "empty query", policy: nil, provider: "aml", endpoint: "https://a.example?", wantErr: "queries"},
		{name: "empty", policy: nil, provider: "aml", endpoint: "", wantErr: "empty"},
		{name: "relative", policy: nil, provider: "aml", endpoint: "/login", wantErr: "scheme"},
		{name: "no scheme", policy: nil, provider: "aml", endpoint: "a.example", wantErr: "scheme"},
		{name: "other scheme", policy: nil, provider: "aml", endpoint: "file:///etc/passwd", wantErr: "scheme"},
		{name: "opaque", policy: nil, provider: "aml", endpoint: "https:a.example", wantErr: "no host"},
		{name: "no host", policy: nil, provider: "aml", endpoint: "https:///login", wantErr: "no host"},
		{name: "leading space", policy: nil, provider: "aml", endpoint: " https://a.example", wantErr: "not a valid URL"},
		{name: "control character", policy: nil, provider: "aml", endpoint: "https://a.example/\n", wantErr: "not a valid URL"},
		{name: "unicode host", policy: nil, provider: "aml", endpoint: "https://bücher.example", wantErr: "not a valid DNS name"},
		{name: "zero-width space in host", policy: nil, provider: "aml", endpoint: "https://partner\u200b.example.com", wantErr: "not a valid DNS name"},
		{name: "cyrillic homograph", policy: nil, provider: "aml", endpoint: "https://\u0440artner.example.com", wantErr: "not a valid DNS name"},
		{name: "emoji host", policy: nil, provider: "aml", endpoint: "https://\U0001F600.example.com", wantErr: "not a valid DNS name"},
		{name: "no-break space after host", policy: nil, provider: "aml", endpoint: "https://partner.example.com\u00a0", wantErr: "not a valid DNS name"},
		{name: "unbracketed ipv6", policy: nil, provider: "aml", endpoint: "https://fe80::1", wantErr: "not"},
		{name: "nil policy allows https", policy: nil, provider: "aml", endpoint: "https://api.amlwatcher.com/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.policy.Check(tt.provider, tt.endpoint)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Check(%q, %q) = %v, want allowed", tt.provider, tt.endpoint, err)
				}
				return
			}
			pe := wantNotAllowed(t, err)
			if !strings.Contains(pe.Message, tt.wantErr) {
				t.Errorf("Check(%q, %q) message = %q, want it to contain %q", tt.provider, tt.endpoint, pe.Message, tt.wantErr)
			}
		})
	}
}

func TestCheckMessage(t *testing.T) {
	p, err := Parse("aml=https://api.amlwatcher.com", Rules{})
	if err != nil {
		t.Fatal(err)
	}
	err = p.Check("aml", "https://x")
	want := `endpoint "https://x" is not allowed for provider "aml" by the operator's --allowed-endpoints policy; allowed: https://api.amlwatcher.com`
	if pe := wantNotAllowed(t, err); pe.Message != want {
		t.Errorf("message = %q\nwant      %q", pe.Message, want)
	}
}

func TestCheckMessageHidesSecrets(t *testing.T) {
	for _, endpoint := range []string{
		"https://user:hunter2@a.example",
		"https://hunter2@a.example",
		"https://a.example/?token=hunter2",
		"https://a.example/#hunter2",
		"https://user:hunter2@a.example:bad/",
	} {
		err := (*Policy)(nil).Check("aml", endpoint)
		if pe := wantNotAllowed(t, err); strings.Contains(pe.Message, "hunter2") {
			t.Errorf("Check(%q) message shows a secret: %q", endpoint, pe.Message)
		}
	}
}

func TestMerge(t *testing.T) {
	flag, err := Parse("aml=https://a.example,partner=https://p.example", Rules{})
	if err != nil {
		t.Fatal(err)
	}
	file, err := Parse("aml=https://b.example,aml=https://a.example,local=http://localhost", Rules{AllowLoopback: true})
	if err != nil {
		t.Fatal(err)
	}
	got := allowedOf(flag.Merge(file))
	want := []string{"aml=https://a.example", "aml=https://b.example", "local=http://localhost", "partner=https://p.example"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("merged entries = %q, want %q", got, want)
	}
	if got := allowedOf(flag); len(got) != 2 {
		t.Errorf("Merge changed its receiver: %q", got)
	}

	var none *Policy
	if m := none.Merge(nil); m == nil || len(allowedOf(m)) != 0 || m.Rules != (Rules{}) {
		t.Errorf("nil.Merge(nil) = %+v, want an empty policy", m)
	}
	if m := none.Merge(&Policy{Rules: Rules{AllowInsecureHTTP: true}}); !m.AllowInsecureHTTP || m.AllowLoopback {
		t.Errorf("Merge of AllowInsecureHTTP: %+v", m.Rules)
	}
	if m := flag.Merge(file); !m.AllowLoopback || m.AllowInsecureHTTP {
		t.Errorf("Merge of AllowLoopback: %+v", m.Rules)
	}
	if got := allowedOf(none.Merge(file)); len(got) != 3 {
		t.Errorf("nil.Merge(file) entries = %q", got)
	}
}

func TestString(t *testing.T) {
	p, err := Parse("partner=https://p.example,aml=https://a.example/base,partner=https://q.example", Rules{AllowLoopback: true})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		policy *Policy
		want   string
	}{
		{name: "nil", policy: nil, want: "any endpoint for every provider; plain http: refused; loopback: refused; private addresses: refused; link-local and metadata addresses: always refused"},
		{name: "insecure", policy: &Policy{Rules: Rules{AllowInsecureHTTP: true}}, want: "any endpoint for every provider; plain http: allowed (insecure); loopback: refused; private addresses: refused; link-local and metadata addresses: always refused"},
		{name: "entries", policy: p, want: "aml: https://a.example/base; partner: https://p.example, https://q.example; other providers: any endpoint; plain http: loopback only; loopback: allowed (--allow-loopback-endpoints); private addresses: refused; link-local and metadata addresses: always refused"},
		{name: "private allowed", policy: &Policy{Rules: Rules{AllowPrivate: true}}, want: "any endpoint for every provider; plain http: refused; loopback: refused; private addresses: allowed (--allow-private-endpoints); link-local and metadata addresses: always refused"},
		{name: "private entries", policy: &Policy{Rules: Rules{PrivateEndpoints: mustPrivate(t, "idp.internal, 10.20.0.0/16")}}, want: "any endpoint for every provider; plain http: refused; loopback: refused; private addresses: refused but for idp.internal,10.20.0.0/16 (--allowed-private-endpoints); link-local and metadata addresses: always refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.policy.String(); got != tt.want {
				t.Errorf("String() = %q\nwant       %q", got, tt.want)
			}
		})
	}
}

// TestCheckLoopback: without AllowLoopback every spelling of the local host
// is refused, over http and https, with one message whatever the port;
// with it, they are allowed (plain http only to local addresses and
// localhost itself).
func TestCheckLoopback(t *testing.T) {
	refusing := []*Policy{nil, {}, {Rules: Rules{AllowInsecureHTTP: true}}}
	allowing := &Policy{Rules: Rules{AllowLoopback: true}}
	tests := []struct {
		endpoint string
		// httpRefused: refused even with AllowLoopback, as plain http to a
		// name that is not certainly local.
		httpRefused bool
	}{
		{endpoint: "http://localhost"},
		{endpoint: "http://localhost:15000/quitquitquit"},
		{endpoint: "https://localhost:8443"},
		{endpoint: "http://LocalHost:1"},
		{endpoint: "https://localhost."},
		{endpoint: "https://api.localhost"},
		{endpoint: "http://a.b.LOCALHOST:9090", httpRefused: true},
		{endpoint: "https://x.localhost.:443"},
		{endpoint: "http://127.0.0.1"},
		{endpoint: "http://127.0.0.1:15000/quitquitquit"},
		{endpoint: "https://127.0.0.1:8443"},
		{endpoint: "http://127.1.2.3:80"},
		{endpoint: "http://127.255.255.254:65535"},
		{endpoint: "http://[::1]:15000"},
		{endpoint: "https://[0:0:0:0:0:0:0:1]"},
		{endpoint: "http://[::ffff:127.0.0.1]:15000"},
		{endpoint: "https://[::ffff:7f00:1]"},
		{endpoint: "http://0.0.0.0:15000"},
		{endpoint: "https://0.0.0.0"},
		{endpoint: "http://0.1.2.3:80"},
		{endpoint: "http://[::]:15000"},
		{endpoint: "https://[::ffff:0.0.0.0]"},
	}
	for _, tt := range tests {
		t.Run(tt.endpoint, func(t *testing.T) {
			for _, p := range refusing {
				pe := wantNotAllowed(t, p.Check("http", tt.endpoint))
				want := "the operator refuses loopback endpoints (it was started without --allow-loopback-endpoints)"
				if !strings.HasSuffix(pe.Message, ": "+want) {
					t.Errorf("policy %v: message %q, want it to end with %q", p, pe.Message, want)
				}
			}
			err := allowing.Check("http", tt.endpoint)
			if tt.httpRefused {
				wantNotAllowed(t, err)
			} else if err != nil {
				t.Errorf("with AllowLoopback: %v, want allowed", err)
			}
		})
	}

	// Not the local host.
	for _, endpoint := range []string{"https://localhost.example.com", "https://mylocalhost", "https://localhostx", "https://128.0.0.1", "https://1.0.0.0"} {
		if err := (*Policy)(nil).Check("http", endpoint); err != nil {
			t.Errorf("Check(%q) = %v, want allowed", endpoint, err)
		}
	}

	// The refusal says the same for every port: it cannot tell which of the
	// pod's ports listen.
	a := wantNotAllowed(t, (*Policy)(nil).Check("http", "http://127.0.0.1:1/x")).Message
	b := wantNotAllowed(t, (*Policy)(nil).Check("http", "http://127.0.0.1:15000/x")).Message
	if strings.Replace(a, ":1/", ":15000/", 1) != b {
		t.Errorf("messages differ beyond the endpoint quoted:\n%s\n%s", a, b)
	}
}

// TestCheckPathEscape: the URL judged is the one requested. An allowlisted
// prefix cannot be left by a path: dot segments in any spelling are
// refused (never resolved), and the URL a resolving join would have made is
// outside the prefix.
func TestCheckPathEscape(t *testing.T) {
	p, err := Parse("http=https://gw.example.com/tenant-a", Rules{})
	if err != nil {
		t.Fatal(err)
	}
	allowed := []string{
		"https://gw.example.com/tenant-a",
		"https://gw.example.com/tenant-a/login",
		"https://gw.example.com/tenant-a/v1/token",
		"https://gw.example.com/%74enant-a/login",
		"https://gw.example.com/tenant%2Da/login",
		"https://gw.example.com/tenant-a/.well-known/x",
		"https://gw.example.com/tenant-a/...",
	}
	for _, u := range allowed {
		if err := p.Check("http", u); err != nil {
			t.Errorf("Check(%q) = %v, want allowed", u, err)
		}
	}
	refused := []struct{ url, want string }{
		{"https://gw.example.com/admin/keys", "allowed: https://gw.example.com/tenant-a"},
		{"https://gw.example.com/tenant-b/login", "allowed: https://gw.example.com/tenant-a"},
		{"https://gw.example.com/tenant-a-admin", "allowed: https://gw.example.com/tenant-a"},
		{"https://gw.example.com/tenant-a/../admin/keys", `"." and ".." segments`},
		{"https://gw.example.com/tenant-a/./../admin/keys", `"." and ".." segments`},
		{"https://gw.example.com/tenant-a/%2e%2e/admin/keys", `"." and ".." segments`},
		{"https://gw.example.com/tenant-a/%2E%2E/admin/keys", `"." and ".." segments`},
		{"https://gw.example.com/tenant-a/.%2e/admin/keys", `"." and ".." segments`},
		{"https://gw.example.com/tenant-a/%2e./admin/keys", `"." and ".." segments`},
		{"https://gw.example.com/tenant-a/..;/admin/keys", `"." and ".." segments`},
		{"https://gw.example.com/tenant-a/..;x=y/admin/keys", `"." and ".." segments`},
		{"https://gw.example.com/tenant-a/%252e%252e/admin/keys", `"." and ".." segments`},
		{"https://gw.example.com/tenant-a/..", `"." and ".." segments`},
		{"https://gw.example.com/tenant-a%2f..%2fadmin/keys", `"." and ".." segments`},
		{"https://gw.example.com/tenant-a/..%2Fadmin", `"." and ".." segments`},
		{"https://gw.example.com/tenant-a/..%5cadmin", `"." and ".." segments`},
		{"https://gw.example.com/tenant-a%2fadmin", "(%2f, %5c)"},
		{`https://gw.example.com/tenant-a/..\admin`, "backslashes are not allowed"},
	}
	for _, tt := range refused {
		pe := wantNotAllowed(t, p.Check("http", tt.url))
		if !strings.Contains(pe.Message, tt.want) {
			t.Errorf("Check(%q) message %q, want it to contain %q", tt.url, pe.Message, tt.want)
		}
	}
}

// TestCheckURL: the transport's question is Check's, asked with the
// request's URL.
func TestCheckURL(t *testing.T) {
	p, err := Parse("http=https://gw.example.com/tenant-a", Rules{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		url     string
		allowed bool
	}{
		{"https://gw.example.com/tenant-a/login", true},
		{"https://gw.example.com/admin/keys", false},
		{"https://gw.example.com/tenant-a/%2e%2e/admin", false},
		{"http://127.0.0.1:15000/quitquitquit", false},
	} {
		u, err := url.Parse(tt.url)
		if err != nil {
			t.Fatal(err)
		}
		err = p.CheckURL("http", u)
		if tt.allowed != (err == nil) {
			t.Errorf("CheckURL(%s) = %v, want allowed %v", tt.url, err, tt.allowed)
		}
		if err != nil {
			wantNotAllowed(t, err)
		}
	}
	wantNotAllowed(t, p.CheckURL("http", nil))
}

// TestCheckPrivate: a literal private address in the login URL is refused
// before anything is dialed, with one message whatever the port, naming
// both flags and their Helm values; AllowPrivate and the entries lift
// exactly that refusal, and nothing else: the allowlist, the scheme rule
// and the metadata refusal still hold. A host name is judged at the dial.
func TestCheckPrivate(t *testing.T) {
	entries := &Policy{Rules: Rules{PrivateEndpoints: mustPrivate(t, "10.0.0.1:443,192.168.0.0/16,fd00::1,idp.internal")}}
	all := &Policy{Rules: Rules{AllowPrivate: true}}
	listed, err := Parse("aml=https://api.example.com", Rules{AllowPrivate: true})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		policy   *Policy
		provider string
		endpoint string
		wantErr  string
	}{
		{name: "10/8", endpoint: "https://10.0.0.1/login", wantErr: "10.0.0.1 is a private address"},
		{name: "172.16/12", endpoint: "https://172.16.0.1", wantErr: "private address"},
		{name: "172.31", endpoint: "https://172.31.255.255:8443", wantErr: "private address"},
		{name: "192.168/16", endpoint: "https://192.168.1.1", wantErr: "private address"},
		{name: "100.64/10", endpoint: "https://100.64.0.1", wantErr: "private address"},
		{name: "fd00::/8", endpoint: "https://[fd00::1]:8443/x", wantErr: "fd00::1 is a private address"},
		{name: "fc00::/8", endpoint: "https://[fc00::1]", wantErr: "private address"},
		{name: "mapped", endpoint: "https://[::ffff:10.0.0.1]", wantErr: "10.0.0.1 is a private address"},
		{name: "mapped hex", endpoint: "https://[::ffff:c0a8:101]", wantErr: "192.168.1.1 is a private address"},
		{name: "nat64", endpoint: "https://[64:ff9b::a00:1]", wantErr: "10.0.0.1 is a private address"},
		{name: "nat64 dotted", endpoint: "https://[64:ff9b::100.64.0.1]", wantErr: "100.64.0.1 is a private address"},
		{name: "not private: 11/8", endpoint: "https://11.0.0.1"},
		{name: "not private: 172.32", endpoint: "https://172.32.0.1"},
		{name: "not private: 100.128", endpoint: "https://100.128.0.1"},
		{name: "a name is judged at the dial", endpoint: "https://idp.svc.cluster.local"},

		{name: "all allowed", policy: all, endpoint: "https://10.0.0.1"},
		{name: "all allowed, v6", policy: all, endpoint: "https://[fd00::1]"},
		{name: "all allowed, metadata", policy: all, endpoint: "https://100.100.100.200", wantErr: "metadata"},
		{name: "all allowed, loopback", policy: all, endpoint: "https://127.0.0.1", wantErr: "--allow-loopback-endpoints"},
		{name: "all allowed, plain http", policy: all, endpoint: "http://10.0.0.1", wantErr: "plain http://"},
		{name: "all allowed, the allowlist holds", policy: listed, endpoint: "https://10.0.0.1", wantErr: "not allowed for provider \"aml\" by the operator's --allowed-endpoints policy"},
		{name: "all allowed, another provider", policy: listed, provider: "partner", endpoint: "https://10.0.0.1"},

		{name: "ip:port entry", policy: entries, endpoint: "https://10.0.0.1/login"},
		{name: "ip:port entry, default port written", policy: entries, endpoint: "https://10.0.0.1:443/login"},
		{name: "ip:port entry, other port", policy: entries, endpoint: "https://10.0.0.1:8443/login", wantErr: "--allowed-private-endpoints=10.0.0.1 "},
		{name: "ip:port entry, plain http is port 80", policy: entries, endpoint: "http://10.0.0.1", wantErr: "private address"},
		{name: "cidr entry", policy: entries, endpoint: "https://192.168.7.7:9443"},
		{name: "cidr entry, mapped", policy: entries, endpoint: "https://[::ffff:192.168.7.7]"},
		{name: "ipv6 entry", policy: entries, endpoint: "https://[fd00::1]:8443"},
		{name: "ipv6 entry, another address", policy: entries, endpoint: "https://[fd00::2]", wantErr: "--allowed-private-endpoints=fd00::2 "},
		{name: "name entry opens no address", policy: entries, endpoint: "https://172.16.0.1", wantErr: "private address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			provider := tt.provider
			if provider == "" {
				provider = "aml"
			}
			err := tt.policy.Check(provider, tt.endpoint)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Check(%q) = %v, want allowed", tt.endpoint, err)
				}
				return
			}
			pe := wantNotAllowed(t, err)
			if !strings.Contains(pe.Message, tt.wantErr) {
				t.Errorf("Check(%q) message %q, want it to contain %q", tt.endpoint, pe.Message, tt.wantErr)
			}
		})
	}

	// Which flag to set, and the Helm values, in the message.
	pe := wantNotAllowed(t, (*Policy)(nil).Check("http", "https://10.0.0.1:8443/x"))
	want := `endpoint "https://10.0.0.1:8443/x" is not allowed for provider "http": 10.0.0.1 is a private address (where cluster Services and pods live), ` +
		"which the operator refuses unless started with --allowed-private-endpoints=10.0.0.1 or --allow-private-endpoints (Helm values allowedPrivateEndpoints, allowPrivateEndpoints)"
	if pe.Message != want {
		t.Errorf("message %q\nwant      %q", pe.Message, want)
	}
	// The same for every port: the refusal tells nothing of which listen.
	a := wantNotAllowed(t, (*Policy)(nil).Check("http", "https://10.96.0.1:1/x")).Message
	b := wantNotAllowed(t, (*Policy)(nil).Check("http", "https://10.96.0.1:6443/x")).Message
	if strings.Replace(a, ":1/", ":6443/", 1) != b {
		t.Errorf("messages differ beyond the endpoint quoted:\n%s\n%s", a, b)
	}
}

// TestParsePrivateAllowlistEntry: an --allowed-endpoints entry on a literal
// private address is refused at start unless the private-address rules
// allow it, as a loopback entry is without --allow-loopback-endpoints.
func TestParsePrivateAllowlistEntry(t *testing.T) {
	_, err := Parse("partner=https://10.0.0.5/api", Rules{})
	if err == nil || !strings.Contains(err.Error(), "10.0.0.5 is a private address, refused unless --allowed-private-endpoints lists it or --allow-private-endpoints is set") {
		t.Errorf("Parse without private rules: %v", err)
	}
	_, err = Parse("partner=https://10.0.0.5:8443/api", Rules{PrivateEndpoints: mustPrivate(t, "10.0.0.5:443")})
	if err == nil || !strings.Contains(err.Error(), "private address") {
		t.Errorf("Parse with an entry for another port: %v", err)
	}
	for _, rules := range []Rules{{AllowPrivate: true}, {PrivateEndpoints: mustPrivate(t, "10.0.0.0/8")}, {PrivateEndpoints: mustPrivate(t, "10.0.0.5:8443")}} {
		if _, err := Parse("partner=https://10.0.0.5:8443/api", rules); err != nil {
			t.Errorf("Parse with %+v: %v", rules, err)
		}
	}
	// A name is not judged at start: it may resolve anywhere.
	if _, err := Parse("partner=https://idp.internal", Rules{}); err != nil {
		t.Errorf("Parse of a name: %v", err)
	}
}

// TestMergePrivate: the private-address rules of both sides hold.
func TestMergePrivate(t *testing.T) {
	a := &Policy{Rules: Rules{PrivateEndpoints: mustPrivate(t, "idp.internal,10.0.0.1")}}
	b := &Policy{Rules: Rules{PrivateEndpoints: mustPrivate(t, "10.0.0.1,192.168.0.0/16")}}
	m := a.Merge(b)
	if got, want := m.PrivateEndpoints.String(), "idp.internal,10.0.0.1,192.168.0.0/16"; got != want {
		t.Errorf("merged entries %q, want %q", got, want)
	}
	if m.AllowPrivate {
		t.Error("AllowPrivate set by merging entries")
	}
	if got := a.PrivateEndpoints.String(); got != "idp.internal,10.0.0.1" {
		t.Errorf("Merge changed its receiver: %q", got)
	}
	if !a.Merge(&Policy{Rules: Rules{AllowPrivate: true}}).AllowPrivate {
		t.Error("Merge dropped AllowPrivate")
	}
	if m := (*Policy)(nil).Merge(nil); m.PrivateEndpoints != nil || m.AllowPrivate {
		t.Errorf("nil.Merge(nil) = %+v", m.Rules)
	}
}
