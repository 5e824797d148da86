package cli

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
)

func TestDisplayName(t *testing.T) {
	for _, tc := range []struct{ program, want string }{
		{"kubectl-tokensync", "kubectl tokensync"},
		{"/usr/local/bin/kubectl-tokensync", "kubectl tokensync"},
		{"kubectl-tokensync.exe", "kubectl tokensync"},
		{"kubectl-token_sync", "kubectl token-sync"},
		{"tokensync", "tokensync"},
		{"./bin/tokensync", "tokensync"},
	} {
		if got := displayName(tc.program); got != tc.want {
			t.Errorf("displayName(%q) = %q, want %q", tc.program, got, tc.want)
		}
	}
}

// TestHelpNamesTheProgram: run as kubectl-tokensync, the help says
// kubectl tokensync; run as tokensync, it says tokensync.
func TestHelpNamesTheProgram(t *testing.T) {
	for _, tc := range []struct{ program, usage, example string }{
		{"/krew/bin/kubectl-tokensync", "kubectl tokensync renew NAME...", "  kubectl tokensync renew partner-token -n team-a --wait"},
		{"/usr/bin/tokensync", "tokensync renew NAME...", "  tokensync renew partner-token -n team-a --wait"},
	} {
		var out bytes.Buffer
		code := Main(Env{Args: []string{tc.program, "renew", "--help"}, Stdout: &out, Stderr: &out, Version: "test"})
		if code != 0 || !strings.Contains(out.String(), "\n  "+tc.usage) || !strings.Contains(out.String(), tc.example) {
			t.Errorf("%s renew --help (exit %d) does not say %q and %q:\n%s", tc.program, code, tc.usage, tc.example, out.String())
		}
		if tc.program == "/usr/bin/tokensync" && strings.Contains(out.String(), "kubectl tokensync") {
			t.Errorf("run as tokensync, the help says kubectl tokensync:\n%s", out.String())
		}
	}
}

// TestFlags: kubectl's flags are there, but for --cluster, which selects
// ClusterTokenRequests.
func TestFlags(t *testing.T) {
	var out bytes.Buffer
	Main(Env{Args: []string{"kubectl-tokensync", "status", "--help"}, Stdout: &out, Stderr: &out})
	for _, flag := range []string{"--kubeconfig", "--context", "-n, --namespace", "-A, --all-namespaces", "-l, --selector", "-o, --output", "--as string", "--request-timeout"} {
		if !strings.Contains(out.String(), flag) {
			t.Errorf("status --help has no %s:\n%s", flag, out.String())
		}
	}
	if !regexp.MustCompile(`\n +--cluster +ClusterTokenRequests instead of TokenRequests`).MatchString(out.String()) {
		t.Errorf("--cluster is not the ClusterTokenRequests flag:\n%s", out.String())
	}
}
