package chart

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	chartutil "helm.sh/helm/v4/pkg/chart/v2/util"
)

// TestKubeVersionIsTheOldestTried checks the chart's kubeVersion against
// the oldest Kubernetes make test-oldest runs the operator on
// (OLDEST_KUBE_VERSION in the Makefile) and the minimum the README and
// docs/compatibility.md state: Helm must install on that release and every
// later one, providers' builds included (v1.30.2-eks-…, whose pre-release
// suffix a constraint without -0 refuses), and on none before it.
func TestKubeVersionIsTheOldestTried(t *testing.T) {
	constraint := loadChart(t).Metadata.KubeVersion
	makefile, err := os.ReadFile(filepath.Join("..", "..", "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^OLDEST_KUBE_VERSION \?= (1\.([0-9]+)\.([0-9]+))$`).FindSubmatch(makefile)
	if m == nil {
		t.Fatal("the Makefile sets no OLDEST_KUBE_VERSION ?= 1.<minor>.<patch>")
	}
	oldest := string(m[1])
	minor, _ := strconv.Atoi(string(m[2]))
	patch, _ := strconv.Atoi(string(m[3]))
	if want := ">= " + oldest + "-0"; constraint != want {
		t.Errorf("Chart.yaml's kubeVersion is %q; with make test-oldest trying %s it should be %q", constraint, oldest, want)
	}

	admitted := []string{
		"v" + oldest,
		"v" + oldest + "-eks-ab12cd3",
		fmt.Sprintf("v1.%d.%d", minor, patch+1),
		fmt.Sprintf("v1.%d.1-gke.1286000", minor+2),
		fmt.Sprintf("v1.%d.2+k3s1", minor+5),
		"v1.37.2",
		"v1.40.0-rc.1",
	}
	refused := []string{
		fmt.Sprintf("v1.%d.17", minor-1),
		fmt.Sprintf("v1.%d.17-eks-ab12cd3", minor-1),
		"v1.20.0",
	}
	if patch > 0 {
		refused = append(refused, fmt.Sprintf("v1.%d.%d", minor, patch-1))
	}
	for _, v := range admitted {
		if !chartutil.IsCompatibleRange(constraint, v) {
			t.Errorf("kubeVersion %q refuses Kubernetes %s", constraint, v)
		}
	}
	for _, v := range refused {
		if chartutil.IsCompatibleRange(constraint, v) {
			t.Errorf("kubeVersion %q admits Kubernetes %s", constraint, v)
		}
	}

	stated := "Kubernetes " + oldest + " or newer"
	for _, doc := range []string{"README.md", filepath.Join("docs", "compatibility.md")} {
		content, err := os.ReadFile(filepath.Join("..", "..", doc))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(strings.Join(strings.Fields(string(content)), " "), stated) {
			t.Errorf("%s does not say %q", doc, stated)
		}
	}
}
