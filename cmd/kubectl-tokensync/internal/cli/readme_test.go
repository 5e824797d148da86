package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestREADMEShowsTheGoldenOutput: the README's section "kubectl tokensync"
// shows the commands' output as the golden files hold it; a change to the
// output is a change to the README.
func TestREADMEShowsTheGoldenOutput(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{
		"status", "status-cluster", "status-detail", "status-detail-rejected",
		"renew-wait", "renew-all-wait", "inspect-secret", "check", "check-no-lease", "version",
	} {
		b, err := os.ReadFile(filepath.Join("testdata", name+".golden"))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(readme), "\n"+string(b)) {
			t.Errorf("README.md does not show testdata/%s.golden as it is", name)
		}
	}
}
