// Command kubectl-tokensync is tokensync's kubectl plugin: kubectl tokensync
// status, renew, inspect secret, check and version. On the PATH as
// kubectl-tokensync, kubectl runs it as kubectl tokensync.
package main

import (
	"os"
	"runtime/debug"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/tokensync/tokensync/cmd/kubectl-tokensync/internal/cli"
)

// version is the plugin's version, stamped by make plugin:
// -ldflags "-X main.version=v0.1.0".
var version = ""

func main() {
	// The client logs nothing a person needs; unset, controller-runtime
	// would warn that no logger was set.
	ctrllog.SetLogger(logr.Discard())
	os.Exit(cli.Main(cli.Env{Args: os.Args, Stdout: os.Stdout, Stderr: os.Stderr, Version: pluginVersion()}))
}

// pluginVersion is the stamped version, else the module's (go install
// ...@v0.1.0), else "devel".
func pluginVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}
