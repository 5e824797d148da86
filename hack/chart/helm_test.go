package chart

import (
	"bytes"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/common/util"
	chartv2 "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/engine"
	releaseutil "helm.sh/helm/v4/pkg/release/v1/util"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/yaml"
)

// chartDir is the chart under test.
var chartDir = filepath.Join("..", "..", "charts", "tokensync")

// repoFile is a path in the repository.
func repoFile(parts ...string) string {
	return filepath.Join(append([]string{"..", ".."}, parts...)...)
}

func loadChart(t *testing.T) *chartv2.Chart {
	t.Helper()
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatalf("load the chart: %v", err)
	}
	return ch
}

// rendered is the output of `helm template`: the templates' objects in
// Helm's install order, and the CRDs of crds/.
type rendered struct {
	objects []*unstructured.Unstructured
	crds    []*unstructured.Unstructured
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
	for _, crd := range ch.CRDObjects() {
		objs, err := decodeAll(crd.File.Data)
		if err != nil {
			return nil, errors.Join(errors.New(crd.Filename), err)
		}
		out.crds = append(out.crds, objs...)
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
