package chart

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
	"github.com/tokensync/tokensync/internal/cabundle/cabundletest"
	"github.com/tokensync/tokensync/providers/providertest"
)

// readyTimeout bounds every wait: generous, for loaded 2-core machines.
const readyTimeout = 60 * time.Second

var (
	buildOnce   sync.Once
	managerPath string
	managerHelp string
	managerDir  string
	buildErr    error
)

// managerBinary builds the manager from the tree once, as the Dockerfile
// and make image do (CGO_ENABLED=0, -trimpath), and returns its path.
func managerBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		managerDir, buildErr = os.MkdirTemp("", "tokensync-chart-test-")
		if buildErr != nil {
			return
		}
		managerPath = filepath.Join(managerDir, "manager")
		cmd := exec.Command("go", "build", "-trimpath", "-o", managerPath, ".")
		cmd.Dir = repoFile()
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build the manager: %w\n%s", err, out)
			return
		}
		help, _ := exec.Command(managerPath, "--help").CombinedOutput() // exits 0 or 2 depending on the flag package
		managerHelp = string(help)
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return managerPath
}

// managerHasFlag tells whether the manager built from the tree has a flag.
func managerHasFlag(t *testing.T, name string) bool {
	managerBinary(t)
	return regexp.MustCompile(`(?m)^\s+-` + regexp.QuoteMeta(name) + `\b`).MatchString(managerHelp)
}

// loopbackValues are the values that let the manager log in to the fake
// providers on 127.0.0.1, when the manager has --allow-loopback-endpoints
// (without it, loopback endpoints are allowed).
func loopbackValues(t *testing.T, values map[string]any) map[string]any {
	if managerHasFlag(t, "allow-loopback-endpoints") {
		values["allowLoopbackEndpoints"] = true
	}
	return values
}

// chartManager is the manager binary running as the chart deploys it: with
// the rendered Deployment's args and env, as the chart's ServiceAccount,
// with only the RBAC the chart rendered (applied for real).
type chartManager struct {
	release, namespace string
	serviceAccount     string
	rendered           *rendered
	metricsAddr        string
	logs               *os.File
	// volumes are the pod's ConfigMap and Secret volumes the container
	// mounts, each a directory of the test's.
	volumes []podVolume
}

// podVolume is a ConfigMap or Secret volume of the manager's pod, in the
// directory that stands for its mountPath.
type podVolume struct {
	source corev1.VolumeSource
	dir    string
}

// startChartManager renders the chart with values (plus image.repository)
// for a release in namespace, applies its ServiceAccount and RBAC, and runs
// the manager until the test ends.
func startChartManager(t *testing.T, release, namespace string, values map[string]any) *chartManager {
	t.Helper()
	bin := managerBinary(t)
	createNamespace(t, namespace)
	r := mustRender(t, release, namespace, withImage(values))
	var deployment *unstructured.Unstructured
	for _, o := range r.objects {
		switch o.GetKind() {
		case "ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding":
			if ns := o.GetNamespace(); ns != "" {
				createNamespace(t, ns)
			}
			if err := k8sClient.Patch(context.Background(), o.DeepCopy(), client.Apply, client.FieldOwner("helm"), client.ForceOwnership); err != nil {
				t.Fatalf("apply %s %s/%s: %v", o.GetKind(), o.GetNamespace(), o.GetName(), err)
			}
		case "Deployment":
			deployment = o
		}
	}
	if deployment == nil {
		t.Fatal("no Deployment rendered")
	}
	m := &chartManager{release: release, namespace: namespace, rendered: r}
	m.serviceAccount, _, _ = unstructured.NestedString(deployment.Object, "spec", "template", "spec", "serviceAccountName")
	container := managerContainer(t, deployment.Object)

	// The pod's addresses are the container's ports on loopback here.
	probeAddr := freeAddr(t)
	m.metricsAddr = freeAddr(t)
	args, _, _ := unstructured.NestedStringSlice(container, "args")
	var bound int
	for i, a := range args {
		switch {
		case strings.HasPrefix(a, "--metrics-bind-address="):
			args[i], bound = "--metrics-bind-address="+m.metricsAddr, bound+1
		case strings.HasPrefix(a, "--health-probe-bind-address="):
			args[i], bound = "--health-probe-bind-address="+probeAddr, bound+1
		}
	}
	if bound != 2 {
		t.Fatalf("args %v: want one --metrics-bind-address and one --health-probe-bind-address", args)
	}
	args = m.mountVolumes(t, deployment, container, args)

	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	user, err := testEnv.AddUser(envtest.User{
		Name:   "system:serviceaccount:" + namespace + ":" + m.serviceAccount,
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + namespace, "system:authenticated"},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(kubeconfig, kc, 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"KUBECONFIG=" + kubeconfig}
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "KUBECONFIG=") && !strings.HasPrefix(e, "POD_NAMESPACE=") && !strings.HasPrefix(e, "GOMEMLIMIT=") {
			env = append(env, e)
		}
	}
	env = append(env, resolveEnv(t, container, namespace)...)

	if m.logs, err = os.Create(filepath.Join(t.TempDir(), "manager.log")); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env, cmd.Stdout, cmd.Stderr = env, m.logs, m.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("manager %s/%s log:\n%s", namespace, release, m.logTail())
		}
	})
	deadline := time.Now().Add(readyTimeout)
	for {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("the manager exited: %v\n%s", err, m.logTail())
		default:
		}
		if resp, err := http.Get("http://" + probeAddr + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return m
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the manager is not ready after %s\n%s", readyTimeout, m.logTail())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// mountVolumes does the kubelet's part for the container's volumeMounts of
// ConfigMap and Secret volumes: each is a directory of the test's, filled
// from the object in the API server as the kubelet fills it, and args that
// name a path under its mountPath name the same path under the directory.
// The volumes of other sources are refused.
func (m *chartManager) mountVolumes(t *testing.T, deployment *unstructured.Unstructured, container map[string]any, args []string) []string {
	t.Helper()
	var pod corev1.PodSpec
	podSpec, _, _ := unstructured.NestedMap(deployment.Object, "spec", "template", "spec")
	var c corev1.Container
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(podSpec, &pod); err != nil {
		t.Fatal(err)
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(container, &c); err != nil {
		t.Fatal(err)
	}
	for _, mount := range c.VolumeMounts {
		i := slices.IndexFunc(pod.Volumes, func(v corev1.Volume) bool { return v.Name == mount.Name })
		if i < 0 || (pod.Volumes[i].ConfigMap == nil && pod.Volumes[i].Secret == nil) || mount.SubPath != "" {
			t.Fatalf("volumeMount %+v: not a ConfigMap or Secret volume mounted whole, which this test cannot mount", mount)
		}
		dir := t.TempDir()
		m.volumes = append(m.volumes, podVolume{source: pod.Volumes[i].VolumeSource, dir: dir})
		for j, a := range args {
			args[j] = strings.ReplaceAll(a, strings.TrimSuffix(mount.MountPath, "/")+"/", dir+"/")
		}
	}
	m.syncVolumes(t)
	return args
}

// syncVolumes writes the pod's ConfigMap and Secret volumes from the API
// server again, as the kubelet does some time after the objects change.
func (m *chartManager) syncVolumes(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	for _, v := range m.volumes {
		data := map[string][]byte{}
		var items []corev1.KeyToPath
		if source := v.source.ConfigMap; source != nil {
			cm := &corev1.ConfigMap{}
			if err := k8sClient.Get(ctx, types.NamespacedName{Namespace: m.namespace, Name: source.Name}, cm); err != nil {
				t.Fatalf("the kubelet would not start the pod: %v", err)
			}
			for k, d := range cm.Data {
				data[k] = []byte(d)
			}
			maps.Copy(data, cm.BinaryData)
			items = source.Items
		} else {
			s := &corev1.Secret{}
			if err := k8sClient.Get(ctx, types.NamespacedName{Namespace: m.namespace, Name: v.source.Secret.SecretName}, s); err != nil {
				t.Fatalf("the kubelet would not start the pod: %v", err)
			}
			data, items = s.Data, v.source.Secret.Items
		}
		files := data
		if len(items) > 0 {
			files = map[string][]byte{}
			for _, item := range items {
				d, ok := data[item.Key]
				if !ok {
					t.Fatalf("the kubelet would not start the pod: no key %q for volume item %s", item.Key, item.Path)
				}
				files[item.Path] = d
			}
		}
		cabundletest.WriteLikeKubelet(t, v.dir, files)
	}
}

// resolveEnv gives the container's env as the kubelet would: values from
// the pod's namespace and the container's resource limits.
func resolveEnv(t *testing.T, container map[string]any, namespace string) []string {
	t.Helper()
	var c corev1.Container
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(container, &c); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			out = append(out, e.Name+"="+e.Value)
		case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.namespace":
			out = append(out, e.Name+"="+namespace)
		case e.ValueFrom.ResourceFieldRef != nil && e.ValueFrom.ResourceFieldRef.Resource == "limits.memory":
			limit, ok := c.Resources.Limits[corev1.ResourceMemory]
			if !ok {
				t.Fatalf("env %s reads limits.memory, and the container has no memory limit", e.Name)
			}
			divisor := e.ValueFrom.ResourceFieldRef.Divisor
			if divisor.IsZero() {
				divisor = resource.MustParse("1")
			}
			out = append(out, fmt.Sprintf("%s=%d", e.Name, limit.Value()/divisor.Value()))
		default:
			t.Fatalf("env %s: a source this test does not resolve: %+v", e.Name, e.ValueFrom)
		}
	}
	return out
}

func (m *chartManager) logTail() string {
	data, _ := os.ReadFile(m.logs.Name())
	if len(data) > 8000 {
		data = data[len(data)-8000:]
	}
	return string(data)
}

// scrape reads the manager's /metrics as a Prometheus would through the
// chart's ServiceMonitor: HTTPS, a ServiceAccount token, and the chart's
// metrics-reader ClusterRole bound to that ServiceAccount.
func (m *chartManager) scrape(t *testing.T) []byte {
	t.Helper()
	ctx := context.Background()
	const scraper = "prometheus"
	createNamespace(t, "monitoring")
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: scraper, Namespace: "monitoring"}}
	if err := k8sClient.Create(ctx, sa); err != nil && !strings.Contains(err.Error(), "already exists") {
		t.Fatal(err)
	}
	reader := fullname(m.release) + "-metrics-reader"
	binding := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
		"metadata": map[string]any{"name": reader + "-prometheus"},
		"roleRef":  map[string]any{"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": reader},
		"subjects": []any{map[string]any{"kind": "ServiceAccount", "name": scraper, "namespace": "monitoring"}},
	}}
	if err := k8sClient.Patch(ctx, binding, client.Apply, client.FieldOwner("test"), client.ForceOwnership); err != nil {
		t.Fatal(err)
	}
	tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](600)}}
	if err := k8sClient.SubResource("token").Create(ctx, sa, tr); err != nil {
		t.Fatalf("a token for ServiceAccount monitoring/%s: %v", scraper, err)
	}
	httpClient := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		// As the ServiceMonitor: the manager's certificate is self-signed.
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // a self-signed certificate on loopback
	}}
	var body []byte
	eventually(t, readyTimeout, func() error {
		req, _ := http.NewRequest(http.MethodGet, "https://"+m.metricsAddr+"/metrics", nil)
		req.Header.Set("Authorization", "Bearer "+tr.Status.Token)
		resp, err := httpClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, err = io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET /metrics: %s: %s", resp.Status, bytes.TrimSpace(body))
		}
		return nil
	})
	return body
}

// fullname is the chart's name for a release's objects.
func fullname(release string) string {
	if strings.Contains(release, "tokensync") {
		return release
	}
	return release + "-tokensync"
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// eventually polls cond until it returns nil or timeout passes.
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
		time.Sleep(200 * time.Millisecond)
	}
}

// tenant is a namespace with credentials and TokenRequests logging in to
// fake providers.
type tenant struct {
	t    *testing.T
	ns   string
	fake *providertest.Server
	// endpoint, when set, is the TokenRequests' instead of fake.URL(): the
	// fake's Handler served elsewhere (over TLS).
	endpoint string
}

func newTenant(t *testing.T, ns string, fake *providertest.Server) *tenant {
	createNamespace(t, ns)
	return &tenant{t: t, ns: ns, fake: fake}
}

// createTokenRequest creates a partner TokenRequest whose credentials
// Secret (labelled as --require-credentials-label wants) holds creds.
func (e *tenant) createTokenRequest(name string, creds map[string]string, restart ...tokensyncv1alpha1.RolloutRestartTarget) {
	e.t.Helper()
	ctx := context.Background()
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name + "-creds", Namespace: e.ns, Labels: map[string]string{"tokensync.io/credentials": "true"}},
		StringData: creds,
	}
	if err := k8sClient.Create(ctx, secret); err != nil {
		e.t.Fatal(err)
	}
	tr := &tokensyncv1alpha1.TokenRequest{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: e.ns},
		Spec: tokensyncv1alpha1.TokenRequestSpec{
			LoginSpec: tokensyncv1alpha1.LoginSpec{
				Provider: providertest.Partner,
				Endpoint: cmp.Or(e.endpoint, e.fake.URL()),
			},
			CredentialsSecretRef:  tokensyncv1alpha1.SecretReference{Name: secret.Name},
			RolloutRestartTargets: restart,
		},
	}
	if err := k8sClient.Create(ctx, tr); err != nil {
		e.t.Fatal(err)
	}
}

// waitCondition waits until the TokenRequest's Ready condition has status and reason.
func (e *tenant) waitCondition(name string, status metav1.ConditionStatus, reason string) *tokensyncv1alpha1.TokenRequest {
	e.t.Helper()
	tr := &tokensyncv1alpha1.TokenRequest{}
	eventually(e.t, readyTimeout, func() error {
		if err := k8sClient.Get(context.Background(), types.NamespacedName{Namespace: e.ns, Name: name}, tr); err != nil {
			return err
		}
		for _, c := range tr.Status.Conditions {
			if c.Type == tokensyncv1alpha1.ConditionReady && c.Status == status && c.Reason == reason {
				return nil
			}
		}
		return fmt.Errorf("TokenRequest %s/%s conditions %+v, want Ready %s %s", e.ns, name, tr.Status.Conditions, status, reason)
	})
	return tr
}

var partnerCreds = map[string]string{"accessKey": "ak-1", "secret": "s3cr3t-value"}
