// Package cli is kubectl-tokensync: status, renew, inspect secret, check and
// version, for TokenRequests and ClusterTokenRequests, from a person's
// kubeconfig and with a person's rights.
//
// The commands fetch with the API server's client (clients.go) and render
// with pure functions of the objects and the time (statusview.go,
// inspectview.go, renewpolicy.go, checkpolicy.go), so that every output is
// tested with a fixed clock (testdata/*.golden) and, against a real API
// server and operator, by the envtest tests (suite_test.go).
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/discovery"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Env is what the plugin runs with: its arguments, output and clock.
type Env struct {
	// Args are the command line, the program's name first (os.Args).
	Args           []string
	Stdout, Stderr io.Writer
	// Clock tells the time the output's durations count from; nil is the
	// real clock.
	Clock clock.Clock
	// Version is the plugin's own version (stamped with -ldflags).
	Version string

	// client and discovery, when set, replace the kubeconfig's API server
	// (the golden tests of whole commands).
	client    client.Client
	discovery discovery.DiscoveryInterface
}

// Exit codes.
const (
	exitOK      = 0
	exitFailed  = 1
	exitTimeout = 124 // check --wait ran out of time, as cmctl and timeout(1) say
)

// exitError ends the command with a code other than 1.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// errReported is a failure whose reasons the command has printed already.
var errReported = errors.New("reported")

// Main runs the plugin and returns its exit code.
func Main(env Env) int {
	if env.Clock == nil {
		env.Clock = clock.RealClock{}
	}
	cmd := NewCommand(&env)
	cmd.SetArgs(env.Args[1:])
	err := cmd.ExecuteContext(context.Background())
	if err == nil {
		return exitOK
	}
	code := exitFailed
	var ee *exitError
	if errors.As(err, &ee) {
		code = ee.code
	}
	if !errors.Is(err, errReported) {
		fmt.Fprintf(env.Stderr, "Error: %s\n", err)
	}
	return code
}

// displayName is how the plugin is called: "kubectl tokensync" when run as
// kubectl-tokensync (kubectl's plugin naming: a dash for a space, an
// underscore for a dash), else the program's own name, e.g. "tokensync".
func displayName(program string) string {
	name := strings.TrimSuffix(filepath.Base(program), ".exe")
	if rest, ok := strings.CutPrefix(name, "kubectl-"); ok && rest != "" {
		return "kubectl " + strings.ReplaceAll(strings.ReplaceAll(rest, "-", " "), "_", "-")
	}
	if name == "" || name == "." {
		return "kubectl tokensync"
	}
	return name
}

// app holds what every command shares: the kubeconfig flags and the output.
type app struct {
	env   *Env
	name  string
	flags *genericclioptions.ConfigFlags
}

// NewCommand builds the command tree.
func NewCommand(env *Env) *cobra.Command {
	a := &app{env: env, name: displayName(env.Args[0]), flags: genericclioptions.NewConfigFlags(true)}
	// --cluster selects ClusterTokenRequests here; the kubeconfig cluster
	// is chosen with --context. Nothing is cached on disk (one discovery
	// request, by check), so --cache-dir would do nothing.
	a.flags.ClusterName = nil
	a.flags.CacheDir = nil
	root := &cobra.Command{
		Use:   "tokensync",
		Short: "See, renew and check tokensync's TokenRequests and the Secrets they keep",
		Long: `See, renew and check tokensync's TokenRequests and ClusterTokenRequests,
and the Secrets they keep the tokens in, without printing a token.`,
		Annotations:   map[string]string{cobra.CommandDisplayNameAnnotation: a.name},
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	root.SetOut(env.Stdout)
	root.SetErr(env.Stderr)
	a.flags.AddFlags(root.PersistentFlags())
	root.AddCommand(a.statusCommand(), a.renewCommand(), a.inspectCommand(), a.checkCommand(), a.versionCommand())
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return fmt.Errorf("%w\nSee '%s --help'.", err, c.CommandPath())
	})
	return root
}

// usageError is a command line the command cannot run.
func usageError(c *cobra.Command, format string, args ...any) error {
	return fmt.Errorf("%s\nSee '%s --help'.", fmt.Sprintf(format, args...), c.CommandPath())
}
