package controllers

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/go-logr/logr"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
	"github.com/tokensync/tokensync/providers"
	"github.com/tokensync/tokensync/providers/builtin"
)

// Where tests go: next to the file they test, named after it (the theme
// is in the test's name, not the file's). Pure policies have table tests:
// decision_test.go, reasons_test.go, bookkeeping_test.go (and what kstatus
// reads of the conditions), backoff_test.go, schedule_test.go,
// secretdata_test.go, datatemplate_test.go, restarts_test.go,
// logingate_test.go, hosthealth_test.go, memory_test.go,
// fingerprint_test.go. tokenrequest_controller_unit_test.go drives
// Reconcile with the fake client and a fake clock, and
// hosthealth_fleet_test.go a fleet of TokenRequests so through provider
// outages. Against a real API server (envtest):
// tokenrequest_controller_test.go (each provider end to end, the life of a
// TokenRequest, no secret in logs, events or statuses, printer columns),
// login_test.go (logins off the workers: provider faults, the endpoint
// policy, hanging and hostile endpoints, leaks, a manager stopped mid-login),
// hosthealth_test.go (a provider host's outage with a manager),
// credentials_test.go (the credentials label, hostile and huge
// credentials), secretwriter_test.go (conflicting writes, an API server
// outage), setup_test.go (the wiring, leader election), rbac_test.go (the
// deployed RBAC on a hardened API server), argocd_test.go (the Argo CD
// scripts in config/argocd). What the API server alone accepts and prints is
// tested in api/v1alpha1.
//
// The envtest control plane (a real kube-apiserver and etcd, built by
// hack/envtest-binaries.sh) is shared by every test in this package; each
// test works in a namespace of its own, and startManager is the one way to
// run a manager; env (env_test.go) wraps a namespace, fake providers and a
// manager for one test.
var (
	testEnv    *envtest.Environment
	cfg        *rest.Config
	k8sClient  client.Client
	testScheme = runtime.NewScheme()
	nsCounter  atomic.Int64
)

// The operator's own namespace in tests, where it keeps its fingerprint key.
const operatorNamespace = "tokensync-system"

var fingerprintKey = types.NamespacedName{Namespace: operatorNamespace, Name: "tokensync-fingerprint-key"}

func init() {
	utilruntime.Must(clientgoscheme.AddToScheme(testScheme))
	utilruntime.Must(tokensyncv1alpha1.AddToScheme(testScheme))
}

func TestMain(m *testing.M) {
	flag.Parse()
	for _, name := range []string{"test.fuzz", "test.list"} {
		if f := flag.Lookup(name); f != nil && f.Value.String() != "" {
			// Fuzzing (make fuzz) runs pure functions only, and its workers
			// re-run this binary; listing runs nothing: neither needs a
			// control plane.
			os.Exit(m.Run())
		}
	}
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		// `make test` sets it; a plain `go test` finds the binaries if built.
		if dirs, _ := filepath.Glob(filepath.Join("..", "bin", "k8s", "*")); len(dirs) > 0 {
			os.Setenv("KUBEBUILDER_ASSETS", dirs[len(dirs)-1])
		} else {
			fmt.Fprintln(os.Stderr, "envtest binaries not found: run `make test` (or hack/envtest-binaries.sh) first")
			os.Exit(1)
		}
	}
	ctrl.SetLogger(testLogger())
	if os.Getenv(memoryChildEnv) != "" {
		// A process of its own for TestManagerMemoryIsBounded: the parent's
		// control plane, no other test.
		if err := childConfig(); err != nil {
			fmt.Fprintf(os.Stderr, "memory child: %v\n", err)
			os.Exit(1)
		}
		os.Exit(m.Run())
	}
	judgeDir, err := os.MkdirTemp("", "tokensync-gitops-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "temp dir: %v\n", err)
		os.Exit(1)
	}
	defer os.RemoveAll(judgeDir)
	if gitopsJudge, err = buildGitOpsJudge(judgeDir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	testEnv = &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	// As hardened clusters (OpenShift) run it: blockOwnerDeletion on the
	// target Secret's owner reference needs update on tokenrequests/finalizers.
	testEnv.ControlPlane.GetAPIServer().Configure().Append("enable-admission-plugins", "OwnerReferencesPermissionEnforcement")
	cfg, err = testEnv.Start()
	if err != nil {
		fmt.Fprintf(os.Stderr, "start envtest: %v\n", err)
		_ = testEnv.Stop() // a failed CRD install leaves the control plane running
		os.Exit(1)
	}
	k8sClient, err = client.New(cfg, client.Options{Scheme: testScheme})
	if err != nil {
		fmt.Fprintf(os.Stderr, "client: %v\n", err)
		_ = testEnv.Stop()
		os.Exit(1)
	}
	if err := k8sClient.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: operatorNamespace}}); err != nil {
		fmt.Fprintf(os.Stderr, "operator namespace: %v\n", err)
		_ = testEnv.Stop()
		os.Exit(1)
	}
	code := m.Run()
	if err := testEnv.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "stop envtest: %v\n", err)
	}
	os.RemoveAll(judgeDir)
	os.Exit(code)
}

// gitopsJudge is the hack/gitops command, built by TestMain: what kstatus
// (Flux, cli-utils) and Argo CD's Lua make of an object. A module of its
// own keeps cli-utils and gopher-lua out of the product's go.mod.
var gitopsJudge string

func buildGitOpsJudge(dir string) (string, error) {
	path := filepath.Join(dir, "gitops")
	// Static and -trimpath, as make vet builds the module: one build of its
	// packages in the cache serves both.
	cmd := exec.Command("go", "build", "-trimpath", "-o", path, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	cmd.Dir = filepath.Join("..", "hack", "gitops")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build hack/gitops: %v\n%s", err, out)
	}
	return path, nil
}

// judge runs the gitops command on input (JSON) and decodes its answer.
func judge(command string, input, answer any) error {
	in, err := json.Marshal(input)
	if err != nil {
		return err
	}
	cmd := exec.Command(gitopsJudge, command)
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("gitops %s: %v: %s", command, err, stderr.String())
	}
	return json.Unmarshal(out, answer)
}

// kstatus statuses (sigs.k8s.io/cli-utils/pkg/kstatus/status).
const (
	kstatusCurrent    = "Current"
	kstatusInProgress = "InProgress"
	kstatusFailed     = "Failed"
)

// kstatusResult is what kstatus computes for an object.
type kstatusResult struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

// kstatusOfObject asks kstatus about obj, as the API server returned it.
func kstatusOfObject(t *testing.T, obj *unstructured.Unstructured) kstatusResult {
	t.Helper()
	var res kstatusResult
	if err := judge("kstatus", obj.Object, &res); err != nil {
		t.Fatalf("kstatus: %v", err)
	}
	return res
}

// newNamespace creates a namespace for one test.
func newNamespace(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("t%d-%s", nsCounter.Add(1), strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name())))
	if len(name) > 63 {
		name = strings.TrimRight(name[:63], "-")
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := k8sClient.Create(context.Background(), ns); err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	return name
}

// eventually polls cond until it returns nil or the timeout passes. The
// timeouts are generous: tests run on loaded 2-core machines.
func eventually(t *testing.T, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for {
		if err = cond(); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s: %v", timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// consistently checks cond for the whole duration.
func consistently(t *testing.T, d time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if err := cond(); err != nil {
			t.Fatalf("condition broken: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// managerOptions describe a test manager; the zero value is a manager on the
// shared API server, watching every namespace, with 4 workers and the
// built-in providers (5 s client timeout).
type managerOptions struct {
	// cfg is the API server and identity; nil means the shared one as admin.
	cfg        *rest.Config
	namespaces []string
	// workers is MaxConcurrentReconciles; 0 means 4.
	workers int
	// leaderID turns on leader election with a Lease of that name in
	// leaderNamespace (default: the first namespace), released on stop.
	leaderID, leaderNamespace string
	// providers replaces the built-in providers.
	providers providers.Registry
	limits    LoginLimits
	// hostHealth shortens how a provider host is found down and probed.
	hostHealth HostHealth
	// clusterOnly runs the ClusterTokenRequest controller alone (managers
	// that watch namespaces of their own do not serve ClusterTokenRequests).
	clusterOnly bool
	// tune adjusts the reconciler after controllers.Setup, before the start.
	tune func(*TokenRequestReconciler)
}

// startManager runs a manager with the TokenRequest controller, wired by
// Setup as main.go wires it, until the returned stop function is called (or
// the test ends). The lease timings are short for a test but far from the
// limits of a loaded 2-core machine.
func startManager(t *testing.T, o managerOptions) (ctrl.Manager, *TokenRequestReconciler, func()) {
	t.Helper()
	apiServer := o.cfg
	if apiServer == nil {
		apiServer = cfg
	}
	if apiServer.Host != cfg.Host {
		// Another API server: it needs the operator's namespace too.
		c, err := client.New(apiServer, client.Options{Scheme: testScheme})
		if err != nil {
			t.Fatal(err)
		}
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: operatorNamespace}}
		if err := c.Create(context.Background(), ns); client.IgnoreAlreadyExists(err) != nil {
			t.Fatalf("create the operator namespace: %v", err)
		}
	}
	opts := ctrl.Options{
		Scheme:                 testScheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache:                  CacheOptions(CacheNamespaces(o.namespaces, operatorNamespace, o.clusterOnly), operatorNamespace),
		Controller:             ctrlConfigForTests(),
	}
	if o.leaderID != "" {
		opts.LeaderElection = true
		opts.LeaderElectionID = o.leaderID
		opts.LeaderElectionNamespace = o.leaderNamespace
		if opts.LeaderElectionNamespace == "" {
			opts.LeaderElectionNamespace = o.namespaces[0]
		}
		opts.LeaderElectionReleaseOnCancel = true
		opts.LeaseDuration = ptr.To(15 * time.Second)
		opts.RenewDeadline = ptr.To(10 * time.Second)
		opts.RetryPeriod = ptr.To(500 * time.Millisecond)
	}
	mgr, err := ctrl.NewManager(apiServer, opts)
	if err != nil {
		t.Fatalf("new manager: %v", err)
	}
	if o.workers == 0 {
		o.workers = 4
	}
	if o.providers == nil {
		o.providers = builtin.NewRegistry(providers.Options{Timeout: 5 * time.Second})
	}
	r, err := Setup(mgr, Options{
		Providers: o.providers, FingerprintKey: fingerprintKey, Limits: o.limits, HostHealth: o.hostHealth,
		Namespaces: o.namespaces, MaxConcurrentReconciles: o.workers, SkipNameValidation: true,
		ClusterTokenRequestsOnly: o.clusterOnly,
	})
	if err != nil {
		t.Fatalf("setup: %v", err)
	}
	if o.tune != nil {
		o.tune(r)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	var stopped atomic.Bool
	stop := func() {
		if stopped.Swap(true) {
			return
		}
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("manager: %v", err)
			}
		case <-time.After(60 * time.Second):
			t.Errorf("manager did not stop within 60s")
		}
	}
	t.Cleanup(stop)
	return mgr, r, stop
}

// testLogs captures every log line of the test run, so the sentinel test can
// prove that no credential or token was ever logged.
var testLogs = &syncBuffer{}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testLogger captures every V level; TOKENSYNC_TEST_LOGS=1 also prints them.
func testLogger() logr.Logger {
	var out io.Writer = testLogs
	if os.Getenv("TOKENSYNC_TEST_LOGS") != "" {
		out = io.MultiWriter(testLogs, os.Stderr)
	}
	return zap.New(zap.WriteTo(out), zap.UseDevMode(false), zap.Level(zapcore.Level(-5)))
}

// ctrlConfigForTests lets several managers in one process register the
// same controller name.
func ctrlConfigForTests() config.Controller {
	skip := true
	return config.Controller{SkipNameValidation: &skip}
}
