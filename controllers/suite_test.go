package controllers

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
)

// The envtest control plane (a real kube-apiserver and etcd, built by
// hack/envtest-binaries.sh) is shared by every test in this package; each
// test works in a namespace of its own.
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
	testEnv = &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	// As hardened clusters (OpenShift) run it: blockOwnerDeletion on the
	// target Secret's owner reference needs update on tokenrequests/finalizers.
	testEnv.ControlPlane.GetAPIServer().Configure().Append("enable-admission-plugins", "OwnerReferencesPermissionEnforcement")
	var err error
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
	os.Exit(code)
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

// managerOptions tune a test manager.
type managerOptions struct {
	reconciler func(*TokenRequestReconciler)
	namespaces []string
	// workers is MaxConcurrentReconciles; 0 means 4.
	workers int
}

// startManager runs a manager with the TokenRequest controller until the
// returned stop function is called (or the test ends).
func startManager(t *testing.T, r *TokenRequestReconciler, o managerOptions) (stop func()) {
	t.Helper()
	cacheOpts := CacheOptions(o.namespaces)
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 testScheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache:                  cacheOpts,
		Controller:             ctrlConfigForTests(),
	})
	if err != nil {
		t.Fatalf("new manager: %v", err)
	}
	cacheOpts.Scheme, cacheOpts.Mapper = mgr.GetScheme(), mgr.GetRESTMapper()
	creds, err := NewCredentialsCache(mgr.GetConfig(), cacheOpts)
	if err != nil {
		t.Fatalf("credentials cache: %v", err)
	}
	if err := mgr.Add(creds); err != nil {
		t.Fatal(err)
	}
	r.Client = mgr.GetClient()
	r.APIReader = mgr.GetAPIReader()
	r.Scheme = mgr.GetScheme()
	r.FingerprintKey = fingerprintKey
	if r.Recorder == nil {
		r.Recorder = mgr.GetEventRecorder("tokensync")
	}
	if o.reconciler != nil {
		o.reconciler(r)
	}
	workers := o.workers
	if workers == 0 {
		workers = 4
	}
	if err := r.SetupWithManager(mgr, creds, controller.Options{MaxConcurrentReconciles: workers, SkipNameValidation: ptr.To(true)}); err != nil {
		t.Fatalf("setup: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	var stopped atomic.Bool
	stop = func() {
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
	return stop
}
