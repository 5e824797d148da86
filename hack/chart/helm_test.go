package chart

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/common/util"
	chartv2 "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/engine"
	"helm.sh/helm/v4/pkg/kube"
	releaseutil "helm.sh/helm/v4/pkg/release/v1/util"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/cli-runtime/pkg/genericclioptions"
)

// chartDir is the chart under test.
var chartDir = filepath.Join("..", "..", "charts", "tokensync")

// repoFile is a path in the repository.
func repoFile(parts ...string) string {
	return filepath.Join(append([]string{"..", ".."}, parts...)...)
}

func loadChart(t *testing.T) *chartv2.Chart {
	t.Helper()
	return loadChartFrom(t, chartDir)
}

func loadChartFrom(t *testing.T, dir string) *chartv2.Chart {
	t.Helper()
	ch, err := loader.Load(dir)
	if err != nil {
		t.Fatalf("load the chart %s: %v", dir, err)
	}
	return ch
}

// rendered is the output of `helm template`: the templates' objects in
// Helm's install order (the CRDs first).
type rendered struct {
	objects []*unstructured.Unstructured
	notes   string
}

// renderChart does what `helm template <release> charts/tokensync -n
// <namespace> --set ...` does, through Helm's Go SDK: the values merged with
// the chart's and checked against values.schema.json, the templates rendered
// by Helm's engine, NOTES.txt set aside, the manifests split and sorted in
// install order. (helm template itself is action.Install in client-only
// dry-run mode, which brings in Helm's registry, repository and kube clients
// for nothing this needs.)
func renderChart(t *testing.T, release, namespace string, values map[string]any) (*rendered, error) {
	t.Helper()
	ch := loadChart(t)
	vals, err := util.ToRenderValuesWithSchemaValidation(ch, values,
		common.ReleaseOptions{Name: release, Namespace: namespace, Revision: 1, IsInstall: true}, nil, false)
	if err != nil {
		return nil, err
	}
	files, err := engine.Render(ch, vals)
	if err != nil {
		return nil, err
	}
	out := &rendered{}
	for name, content := range files {
		if strings.HasSuffix(name, "NOTES.txt") {
			out.notes = content
			delete(files, name)
		}
	}
	hooks, manifests, err := releaseutil.SortManifests(files, nil, releaseutil.InstallOrder)
	if err != nil {
		return nil, err
	}
	if len(hooks) != 0 {
		t.Errorf("the chart has %d hooks; these tests expect none", len(hooks))
	}
	for _, m := range manifests {
		objs, err := decodeAll([]byte(m.Content))
		if err != nil {
			return nil, errors.Join(errors.New(m.Name), err)
		}
		out.objects = append(out.objects, objs...)
	}
	if crds := ch.CRDObjects(); len(crds) != 0 {
		// Helm would install them once and never upgrade them, and they
		// would clash with templates/crds.yaml.
		t.Errorf("the chart has %d CRDs in crds/; they belong in files/crds (make manifests)", len(crds))
	}
	return out, nil
}

// mustRender renders the chart with the values, which must be accepted.
func mustRender(t *testing.T, release, namespace string, values map[string]any) *rendered {
	t.Helper()
	r, err := renderChart(t, release, namespace, values)
	if err != nil {
		t.Fatalf("render the chart with %v: %v", values, err)
	}
	return r
}

// decodeAll decodes a stream of YAML documents, skipping empty ones.
func decodeAll(data []byte) ([]*unstructured.Unstructured, error) {
	var out []*unstructured.Unstructured
	dec := yaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, err
		}
		if len(u.Object) > 0 {
			out = append(out, u)
		}
	}
}

// find returns the rendered objects of a kind, optionally of a name.
func (r *rendered) find(kind string, name ...string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range r.objects {
		if o.GetKind() == kind && (len(name) == 0 || o.GetName() == name[0]) {
			out = append(out, o)
		}
	}
	return out
}

// one returns the one rendered object of kind and name.
func (r *rendered) one(t *testing.T, kind, name string) *unstructured.Unstructured {
	t.Helper()
	found := r.find(kind, name)
	if len(found) != 1 {
		t.Fatalf("%d %s named %q rendered, want 1", len(found), kind, name)
	}
	return found[0]
}

// withImage adds the one required value, image.repository, to values.
func withImage(values map[string]any) map[string]any {
	out := map[string]any{"image": map[string]any{"repository": "registry.example.com/tokensync"}}
	for k, v := range values {
		out[k] = v
	}
	return out
}

// helmClient runs Helm's actions (helm install, upgrade, uninstall) with
// the CLI's defaults, against the cluster of a kubeconfig, releases in
// namespace, stored as Secrets as the CLI stores them. Nothing waits for
// the Deployment (a control plane without nodes runs no pod).
type helmClient struct {
	t         *testing.T
	cfg       *action.Configuration
	namespace string
}

func newHelmClient(t *testing.T, kubeconfig, namespace string) *helmClient {
	t.Helper()
	getter := genericclioptions.NewConfigFlags(false)
	getter.KubeConfig, getter.Namespace = &kubeconfig, &namespace
	cfg := action.NewConfiguration(action.ConfigurationSetLogger(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err := cfg.Init(getter, namespace, "secret"); err != nil {
		t.Fatalf("helm: %v", err)
	}
	return &helmClient{t: t, cfg: cfg, namespace: namespace}
}

// install is helm install <release> <chart> -n <namespace> --create-namespace.
func (h *helmClient) install(release string, ch *chartv2.Chart, values map[string]any) error {
	i := action.NewInstall(h.cfg)
	i.ReleaseName, i.Namespace, i.CreateNamespace = release, h.namespace, true
	i.WaitStrategy, i.Timeout = kube.HookOnlyStrategy, time.Minute
	_, err := i.Run(ch, values)
	return err
}

// upgrade is helm upgrade <release> <chart> -n <namespace>, with
// --take-ownership when takeOwnership.
func (h *helmClient) upgrade(release string, ch *chartv2.Chart, values map[string]any, takeOwnership bool) error {
	u := action.NewUpgrade(h.cfg)
	u.Namespace, u.TakeOwnership = h.namespace, takeOwnership
	u.WaitStrategy, u.Timeout = kube.HookOnlyStrategy, time.Minute
	_, err := u.Run(release, ch, values)
	return err
}

// uninstall is helm uninstall <release> -n <namespace>.
func (h *helmClient) uninstall(release string) error {
	u := action.NewUninstall(h.cfg)
	u.WaitStrategy, u.Timeout, u.DeletionPropagation = kube.HookOnlyStrategy, time.Minute, "background"
	_, err := u.Run(release)
	return err
}
