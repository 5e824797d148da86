package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/yaml"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
	"github.com/tokensync/tokensync/controllers"
	"github.com/tokensync/tokensync/providers"
	"github.com/tokensync/tokensync/providers/builtin"
	"github.com/tokensync/tokensync/providers/providertest"
)

// The envtest tests run the plugin, in process, against a real API server
// (kube-apiserver and etcd from hack/envtest-binaries.sh) with the CRDs of
// config/crd and the operator running in this process as main.go wires it
// (controllers.Setup), logging in to the providers' fakes
// (providers/providertest). Each test works in namespaces of its own and
// runs the plugin as a user of its own: admin, or one bound to view or
// edit (rbac_test.go). status_test.go, renew_test.go, inspect_test.go and
// check_test.go test each command; the pure parts have table and golden
// tests next to them (statusview_test.go, renewpolicy_test.go, ...).

var (
	testEnv   *envtest.Environment
	cfg       *rest.Config
	k8sClient client.Client
	// adminKubeconfig is a kubeconfig of a cluster administrator.
	adminKubeconfig string
	kubeconfigDir   string
)

// The operator's own namespace in tests, where it keeps its fingerprint key.
const operatorNamespace = "tokensync-system"

// Generous: envtest on a loaded 2-core machine.
const readyTimeout = 60 * time.Second

func TestMain(m *testing.M) {
	flag.Parse()
	if f := flag.Lookup("test.list"); f != nil && f.Value.String() != "" {
		os.Exit(m.Run())
	}
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		// make test sets it; a plain go test finds the binaries if built.
		if dirs, _ := filepath.Glob(filepath.Join("..", "..", "..", "..", "bin", "k8s", "*")); len(dirs) > 0 {
			os.Setenv("KUBEBUILDER_ASSETS", dirs[len(dirs)-1])
		} else {
			fmt.Fprintln(os.Stderr, "envtest binaries not found: run `make test` (or hack/envtest-binaries.sh) first")
			return 1
		}
	}
	ctrl.SetLogger(zap.New(zap.WriteTo(operatorLog()), zap.UseDevMode(false)))
	testEnv = &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "..", "..", "..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	var err error
	if cfg, err = testEnv.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "start envtest: %v\n", err)
		_ = testEnv.Stop()
		return 1
	}
	defer func() {
		if err := testEnv.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "stop envtest: %v\n", err)
		}
	}()
	if err := setUp(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(kubeconfigDir)
	stop, err := startOperator(operatorOptions{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	code := m.Run()
	if err := stop(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	return code
}

// setUp makes the client, the operator's namespace, an administrator's
// kubeconfig, and the roles people are bound to.
func setUp() error {
	var err error
	if k8sClient, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		return err
	}
	ctx := context.Background()
	if err := k8sClient.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: operatorNamespace}}); err != nil {
		return fmt.Errorf("operator namespace: %w", err)
	}
	if kubeconfigDir, err = os.MkdirTemp("", "kubectl-tokensync-test-"); err != nil {
		return err
	}
	if adminKubeconfig, err = kubeconfigOf(envtest.User{Name: "admin", Groups: []string{"system:masters"}}); err != nil {
		return err
	}
	return installRoles(ctx)
}

// operatorLog keeps the operator's log, printed with TOKENSYNC_TEST_LOGS=1.
func operatorLog() io.Writer {
	if os.Getenv("TOKENSYNC_TEST_LOGS") != "" {
		return os.Stderr
	}
	return io.Discard
}

var userCounter atomic.Int64

// kubeconfigOf writes a kubeconfig of a new user of the API server.
func kubeconfigOf(u envtest.User) (string, error) {
	user, err := testEnv.AddUser(u, nil)
	if err != nil {
		return "", fmt.Errorf("add user %s: %w", u.Name, err)
	}
	kc, err := user.KubeConfig()
	if err != nil {
		return "", err
	}
	path := filepath.Join(kubeconfigDir, fmt.Sprintf("kubeconfig-%d", userCounter.Add(1)))
	return path, os.WriteFile(path, kc, 0o600)
}

// installRoles applies the operator's TokenRequest and ClusterTokenRequest
// roles (config/rbac), aggregated into view, edit and admin as the
// clusterrole-aggregation controller of kube-controller-manager would
// (envtest runs no controller manager, so the API server's bootstrap roles
// view, edit and admin hold only the rules given to them directly).
func installRoles(ctx context.Context) error {
	for _, f := range []string{"tokenrequest_viewer_role.yaml", "tokenrequest_editor_role.yaml",
		"clustertokenrequest_viewer_role.yaml", "clustertokenrequest_editor_role.yaml"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "..", "..", "config", "rbac", f))
		if err != nil {
			return err
		}
		role := &rbacv1.ClusterRole{}
		if err := yaml.Unmarshal(b, role); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		if err := k8sClient.Create(ctx, role); err != nil {
			return fmt.Errorf("create %s: %w", f, err)
		}
	}
	for _, name := range []string{"view", "edit", "admin"} {
		if err := aggregate(ctx, name); err != nil {
			return fmt.Errorf("aggregate ClusterRole %s: %w", name, err)
		}
	}
	return nil
}

// aggregate sets an aggregated ClusterRole's rules to those of the
// ClusterRoles its aggregationRule selects.
func aggregate(ctx context.Context, name string) error {
	role := &rbacv1.ClusterRole{}
	if err := k8sClient.Get(ctx, types.NamespacedName{Name: name}, role); err != nil {
		return err
	}
	if role.AggregationRule == nil {
		return errors.New("it has no aggregationRule")
	}
	var rules []rbacv1.PolicyRule
	for _, sel := range role.AggregationRule.ClusterRoleSelectors {
		s, err := metav1.LabelSelectorAsSelector(&sel)
		if err != nil {
			return err
		}
		list := &rbacv1.ClusterRoleList{}
		if err := k8sClient.List(ctx, list, client.MatchingLabelsSelector{Selector: s}); err != nil {
			return err
		}
		for _, r := range list.Items {
			if r.Name != name {
				rules = append(rules, r.Rules...)
			}
		}
	}
	role.Rules = rules
	return k8sClient.Update(ctx, role)
}

// operatorOptions describe an operator run in this process; the zero value
// watches every namespace, without leader election.
type operatorOptions struct {
	namespaces []string
	// lease turns on leader election with a Lease of that name in the
	// operator's namespace, released on stop.
	lease string
}

// startOperator runs the operator as main.go wires it, until stop.
func startOperator(o operatorOptions) (stop func() error, err error) {
	opts := ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache:                  controllers.CacheOptions(o.namespaces, operatorNamespace),
		Controller:             config.Controller{SkipNameValidation: ptr.To(true)},
	}
	if o.lease != "" {
		opts.LeaderElection = true
		opts.LeaderElectionID = o.lease
		opts.LeaderElectionNamespace = operatorNamespace
		opts.LeaderElectionReleaseOnCancel = true
		opts.LeaseDuration = ptr.To(15 * time.Second)
		opts.RenewDeadline = ptr.To(10 * time.Second)
		opts.RetryPeriod = ptr.To(500 * time.Millisecond)
	}
	mgr, err := ctrl.NewManager(cfg, opts)
	if err != nil {
		return nil, fmt.Errorf("new manager: %w", err)
	}
	if _, err := controllers.Setup(mgr, controllers.Options{
		Providers:               builtin.NewRegistry(providers.Options{Timeout: 5 * time.Second}),
		FingerprintKey:          types.NamespacedName{Namespace: operatorNamespace, Name: "tokensync-fingerprint-key"},
		Namespaces:              o.namespaces,
		MaxConcurrentReconciles: 4,
		SkipNameValidation:      true,
	}); err != nil {
		return nil, fmt.Errorf("set up the operator: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	return func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(60 * time.Second):
			return errors.New("the operator did not stop within 60s")
		}
	}, nil
}

// result is what one run of the plugin printed and its exit code.
type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\n--- stdout\n%s--- stderr\n%s", r.code, r.stdout, r.stderr)
}

// plugin runs the plugin in process with a kubeconfig and arguments, as
// kubectl runs kubectl-tokensync.
func plugin(t *testing.T, kubeconfig string, args ...string) result {
	t.Helper()
	return pluginWithClock(t, clock.RealClock{}, kubeconfig, args...)
}

func pluginWithClock(t *testing.T, clk clock.Clock, kubeconfig string, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := Main(Env{
		Args:   append([]string{"kubectl-tokensync", "--kubeconfig", kubeconfig}, args...),
		Stdout: &stdout, Stderr: &stderr, Clock: clk, Version: "v0.0.0-test",
	})
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// wantExit fails the test unless the run ended with code.
func wantExit(t *testing.T, r result, code int) {
	t.Helper()
	if r.code != code {
		t.Fatalf("want exit %d, got:\n%s", code, r)
	}
}

// wantIn fails the test unless s holds every one of parts.
func wantIn(t *testing.T, what, s string, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(s, p) {
			t.Errorf("%s does not say %q:\n%s", what, p, s)
		}
	}
}

// newNamespace creates a namespace named after the test; fixed names keep
// the golden files stable, and each test binary has a control plane of its own.
func newNamespace(t *testing.T, name string) string {
	t.Helper()
	if err := k8sClient.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
		t.Fatalf("create namespace %s: %v", name, err)
	}
	return name
}

// createCredentials creates a Secret labelled as credentials.
func createCredentials(t *testing.T, ns, name string, data map[string]string) {
	t.Helper()
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{tokensyncv1alpha1.LabelCredentials: "true"}},
		StringData: data,
	}
	if err := k8sClient.Create(context.Background(), s); err != nil {
		t.Fatalf("create Secret %s/%s: %v", ns, name, err)
	}
}

// credsFor returns credentials the provider's fake accepts.
func credsFor(t *testing.T, provider string) map[string]string {
	t.Helper()
	f, ok := providertest.FakeOf(provider)
	if !ok {
		t.Fatalf("no fake for provider %s", provider)
	}
	out := map[string]string{}
	for k, v := range f.Credentials {
		out[k] = v
	}
	return out
}

// createTokenRequest creates a TokenRequest logging in at endpoint.
func createTokenRequest(t *testing.T, ns, name, provider, endpoint, creds string, mut ...func(*tokensyncv1alpha1.TokenRequest)) {
	t.Helper()
	tr := &tokensyncv1alpha1.TokenRequest{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: tokensyncv1alpha1.TokenRequestSpec{
			LoginSpec:            tokensyncv1alpha1.LoginSpec{Provider: tokensyncv1alpha1.Provider(provider), Endpoint: endpoint},
			CredentialsSecretRef: tokensyncv1alpha1.SecretReference{Name: creds},
		},
	}
	for _, m := range mut {
		m(tr)
	}
	if err := k8sClient.Create(context.Background(), tr); err != nil {
		t.Fatalf("create TokenRequest %s/%s: %v", ns, name, err)
	}
}

func withLabels(l map[string]string) func(*tokensyncv1alpha1.TokenRequest) {
	return func(tr *tokensyncv1alpha1.TokenRequest) { tr.Labels = l }
}

func suspended(tr *tokensyncv1alpha1.TokenRequest) { tr.Spec.Suspend = true }

func tokenRequest(t *testing.T, ns, name string) *tokensyncv1alpha1.TokenRequest {
	t.Helper()
	tr := &tokensyncv1alpha1.TokenRequest{}
	if err := k8sClient.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, tr); err != nil {
		t.Fatalf("get TokenRequest %s/%s: %v", ns, name, err)
	}
	return tr
}

// waitReady waits for the Ready condition's status and reason.
func waitReady(t *testing.T, ns, name string, status metav1.ConditionStatus, reason string) *tokensyncv1alpha1.TokenRequest {
	t.Helper()
	var tr *tokensyncv1alpha1.TokenRequest
	eventually(t, readyTimeout, func() error {
		tr = tokenRequest(t, ns, name)
		c := meta.FindStatusCondition(tr.Status.Conditions, tokensyncv1alpha1.ConditionReady)
		if c == nil || c.Status != status || c.Reason != reason {
			return fmt.Errorf("TokenRequest %s/%s: Ready is %+v, want %s/%s", ns, name, c, status, reason)
		}
		return nil
	})
	return tr
}

// secretToken is the token in a Secret, "" when there is none.
func secretToken(t *testing.T, ns, name string) string {
	t.Helper()
	s := &corev1.Secret{}
	if err := k8sClient.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, s); err != nil {
		if apierrors.IsNotFound(err) {
			return ""
		}
		t.Fatal(err)
	}
	return string(s.Data[tokensyncv1alpha1.SecretKeyToken])
}

// eventually polls cond until it returns nil or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %v", timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// closedEndpoint is an http URL on loopback where nothing listens: the
// provider is down.
func closedEndpoint(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

// bind binds a user to a ClusterRole in a namespace and returns the
// user's kubeconfig.
func bind(t *testing.T, ns, user, clusterRole string) string {
	t.Helper()
	kc, err := kubeconfigOf(envtest.User{Name: user, Groups: []string{"system:authenticated"}})
	if err != nil {
		t.Fatal(err)
	}
	rb := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: user + "-" + clusterRole, Namespace: ns},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: clusterRole},
	}
	if err := k8sClient.Create(context.Background(), rb); err != nil {
		t.Fatal(err)
	}
	return kc
}
