package chart

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
)

// The Prometheus Operator module whose CRD files (example/prometheus-operator-crd)
// the ServiceMonitor and PrometheusRule are checked against: the newest
// version of its root module on the Go module proxy.
const prometheusOperatorModule = "github.com/prometheus-operator/prometheus-operator@v0.85.0"

var (
	testEnv   *envtest.Environment
	cfg       *rest.Config
	k8sClient client.Client
	scheme    = runtime.NewScheme()
)

func init() {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(tokensyncv1alpha1.AddToScheme(scheme))
}

// TestMain starts one control plane for the package: a real kube-apiserver
// and etcd (envtest, built by hack/envtest-binaries.sh) with
// OwnerReferencesPermissionEnforcement, as hardened clusters run it, and the
// CRDs of config/crd/bases (which the chart renders) and the Prometheus
// Operator's ServiceMonitor and PrometheusRule CRDs installed.
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
		if dirs, _ := filepath.Glob(repoFile("bin", "k8s", "*")); len(dirs) > 0 {
			os.Setenv("KUBEBUILDER_ASSETS", dirs[len(dirs)-1])
		} else {
			fmt.Fprintln(os.Stderr, "envtest binaries not found: run `make test` (or hack/envtest-binaries.sh) first")
			return 1
		}
	}
	monitoringCRDs, err := prometheusOperatorCRDs()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	testEnv = &envtest.Environment{
		CRDDirectoryPaths:     append([]string{repoFile("config", "crd", "bases")}, monitoringCRDs...),
		ErrorIfCRDPathMissing: true,
	}
	testEnv.ControlPlane.GetAPIServer().Configure().Append("enable-admission-plugins", "OwnerReferencesPermissionEnforcement")
	cfg, err = testEnv.Start()
	if err != nil {
		fmt.Fprintf(os.Stderr, "start envtest: %v\n", err)
		_ = testEnv.Stop()
		return 1
	}
	defer func() {
		if err := testEnv.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "stop envtest: %v\n", err)
		}
	}()
	if k8sClient, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		fmt.Fprintf(os.Stderr, "client: %v\n", err)
		return 1
	}
	defer func() {
		if managerDir != "" {
			os.RemoveAll(managerDir)
		}
	}()
	return m.Run()
}

// prometheusOperatorCRDs returns the paths of the ServiceMonitor and
// PrometheusRule CRDs in the Prometheus Operator module, downloaded into the
// module cache (from the Go module proxy) if need be. The download runs
// outside this module, so that it changes neither go.mod nor go.sum.
func prometheusOperatorCRDs() ([]string, error) {
	dir, err := os.MkdirTemp("", "tokensync-chart-download-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	cmd := exec.Command("go", "mod", "download", "-json", prometheusOperatorModule)
	cmd.Dir = dir // no go.mod: nothing to record the download in
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=")
	out, err := cmd.Output()
	var mod struct{ Dir, Error string }
	if jsonErr := json.Unmarshal(out, &mod); jsonErr != nil || mod.Dir == "" {
		return nil, fmt.Errorf("go mod download %s: %v %v %s", prometheusOperatorModule, err, jsonErr, mod.Error)
	}
	var paths []string
	for _, kind := range []string{"servicemonitors", "prometheusrules"} {
		p := filepath.Join(mod.Dir, "example", "prometheus-operator-crd", "monitoring.coreos.com_"+kind+".yaml")
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("the Prometheus Operator's %s CRD: %w", kind, err)
		}
		paths = append(paths, p)
	}
	return paths, nil
}

// createNamespace creates a namespace unless it exists.
func createNamespace(t *testing.T, name string) {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := k8sClient.Create(context.Background(), ns); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create namespace %s: %v", name, err)
	}
}

var (
	schemaSecret = corev1.SchemeGroupVersion.WithKind("Secret")
	schemaLease  = coordinationv1.SchemeGroupVersion.WithKind("Lease")
)

// controlPlane is a control plane of a test's own, for tests that install,
// delete or replace CRDs, which the package's shared one must keep.
type controlPlane struct {
	client client.Client
	// kubeconfig is a file for Helm and kubectl, as a cluster admin.
	kubeconfig string
}

// startControlPlane starts a kube-apiserver and etcd without CRDs, stopped
// when the test ends.
func startControlPlane(t *testing.T) *controlPlane {
	t.Helper()
	env := &envtest.Environment{}
	c, err := env.Start()
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Logf("stop the control plane: %v", err)
		}
	})
	if err != nil {
		t.Fatalf("start a control plane: %v", err)
	}
	cp := &controlPlane{kubeconfig: filepath.Join(t.TempDir(), "kubeconfig")}
	if cp.client, err = client.New(c, client.Options{Scheme: scheme}); err != nil {
		t.Fatal(err)
	}
	admin, err := env.AddUser(envtest.User{Name: "admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := admin.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cp.kubeconfig, kc, 0o600); err != nil {
		t.Fatal(err)
	}
	return cp
}
