package endpointpolicy

import (
	"strings"
	"testing"
)

// mustPrivate parses --allowed-private-endpoints entries or fails the test.
func mustPrivate(t *testing.T, spec string) *PrivateEndpoints {
	t.Helper()
	p, err := ParsePrivateEndpoints(spec)
	if err != nil {
		t.Fatalf("ParsePrivateEndpoints(%q): %v", spec, err)
	}
	return p
}

func TestParsePrivateEndpoints(t *testing.T) {
	tests := []struct {
		spec    string
		want    string // the entries, normalised, in the flag's syntax
		wantErr string
	}{
		{spec: "", want: ""},
		{spec: " , ,", want: ""},
		{spec: "10.0.0.1", want: "10.0.0.1"},
		{spec: "10.0.0.1:443", want: "10.0.0.1:443"},
		{spec: "fd00::1", want: "fd00::1"},
		{spec: "[fd00::1]", want: "fd00::1"},
		{spec: "[FD00:0::1]:8443", want: "[fd00::1]:8443"},
		{spec: "::ffff:10.0.0.1", want: "10.0.0.1"},
		{spec: "10.20.0.0/16", want: "10.20.0.0/16"},
		{spec: "10.20.1.2/16", want: "10.20.0.0/16"},
		{spec: "fd00:10::/64", want: "fd00:10::/64"},
		{spec: "100.64.0.0/10", want: "100.64.0.0/10"},
		{spec: "10.0.0.0/7", want: "10.0.0.0/7"}, // overlaps 10.0.0.0/8; only private addresses are ever judged
		{spec: "IDP.Internal.", want: "idp.internal"},
		{spec: "idp.internal:8443", want: "idp.internal:8443"},
		{spec: "vpce-1.sts.eu-west-1.vpce.amazonaws.com", want: "vpce-1.sts.eu-west-1.vpce.amazonaws.com"},
		{spec: " idp.internal , 10.0.0.0/8 ,", want: "idp.internal,10.0.0.0/8"},
		{spec: "idp.internal,IDP.internal,10.0.0.1,10.0.0.1/32", want: "idp.internal,10.0.0.1"},

		{spec: "10.0.0.0/33", wantErr: `entry "10.0.0.0/33": not a valid CIDR range`},
		{spec: "10.0.0/8", wantErr: "not a valid CIDR range"},
		{spec: "::ffff:10.0.0.0/104", wantErr: "IPv4 form"},
		{spec: "8.0.0.0/8", wantErr: "outside the private ranges"},
		{spec: "8.8.8.8", wantErr: "8.8.8.8 is not in the private ranges"},
		{spec: "2001:db8::1", wantErr: "not in the private ranges"},
		{spec: "169.254.169.254", wantErr: "always refused"},
		{spec: "100.100.100.200", wantErr: "always refused"},
		{spec: "[fd00:ec2::254]:80", wantErr: "always refused"},
		{spec: "127.0.0.1", wantErr: "--allow-loopback-endpoints"},
		{spec: "localhost:8080", wantErr: "--allow-loopback-endpoints"},
		{spec: "api.localhost", wantErr: "--allow-loopback-endpoints"},
		{spec: "fe80::1%eth0", wantErr: "zones"},
		{spec: "fd00::1%eth0", wantErr: "zones"},
		{spec: "https://idp.internal", wantErr: "not a URL"},
		{spec: "idp.internal/path", wantErr: "not a valid CIDR range"},
		{spec: "idp.internal:0", wantErr: `port "0" is out of range`},
		{spec: "idp.internal:99999", wantErr: "out of range"},
		{spec: "idp.internal:", wantErr: "out of range"},
		{spec: "bad host!", wantErr: "not a valid DNS name"},
		{spec: "10.1", wantErr: "non-standard form"},
		{spec: "idp.internal,8.8.8.8", wantErr: `entry "8.8.8.8"`},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			p, err := ParsePrivateEndpoints(tt.spec)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParsePrivateEndpoints(%q) error = %v, want one containing %q", tt.spec, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParsePrivateEndpoints(%q): %v", tt.spec, err)
			}
			if got := p.String(); got != tt.want {
				t.Errorf("entries %q, want %q", got, tt.want)
			}
			if tt.want == "" && p != nil {
				t.Errorf("no entries, want a nil *PrivateEndpoints, got %+v", p)
			}
		})
	}
}
