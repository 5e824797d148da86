package chart

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"text/template"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	sigsyaml "sigs.k8s.io/yaml"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
	"github.com/tokensync/tokensync/providers/providertest"
)

// The alerts the README's Monitoring section documents, by name.
var wantAlerts = []string{"TokenSyncLoginFailuresHigh", "TokenSyncNamespaceWriteFailing", "TokenSyncNotLeading", "TokenSyncProviderHostDown",
	"TokenSyncTokenExpiringSoon", "TokenSyncTokenRequestNotReady", "TokenSyncTokenRequestStalled"}

type alertRule struct {
	Alert       string            `json:"alert"`
	Expr        string            `json:"expr"`
	For         string            `json:"for"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

// alertRules reads config/prometheus/prometheusrule.yaml (the chart ships
// the same, see TestChartRendersAndAppliesByDryRun).
func alertRules(t *testing.T) []alertRule {
	t.Helper()
	data, err := os.ReadFile(repoFile("config", "prometheus", "prometheusrule.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var pr struct {
		APIVersion string         `json:"apiVersion"`
		Kind       string         `json:"kind"`
		Metadata   map[string]any `json:"metadata"`
		Spec       struct {
			Groups []struct {
				Name     string      `json:"name"`
				Interval string      `json:"interval"`
				Rules    []alertRule `json:"rules"`
			} `json:"groups"`
		} `json:"spec"`
	}
	if err := sigsyaml.UnmarshalStrict(data, &pr); err != nil {
		t.Fatal(err)
	}
	var rules []alertRule
	for _, g := range pr.Spec.Groups {
		rules = append(rules, g.Rules...)
	}
	return rules
}

// query is a PromQL query and where it comes from.
type query struct{ where, expr string }

// dashboardQueries reads every query of config/grafana/tokensync.json: the
// panels' targets and the template variables' label_values selectors, with
// Grafana's variables replaced as Grafana would before sending them.
func dashboardQueries(t *testing.T) []query {
	t.Helper()
	data, err := os.ReadFile(repoFile("config", "grafana", "tokensync.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels     []grafanaPanel `json:"panels"`
		Templating struct {
			List []struct {
				Name, Type string
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatal(err)
	}
	variables := strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "6h", "$job", ".+")
	var out []query
	var walk func([]grafanaPanel)
	walk = func(panels []grafanaPanel) {
		for _, p := range panels {
			for _, target := range p.Targets {
				out = append(out, query{fmt.Sprintf("dashboard panel %q target %s", p.Title, target.RefID), variables.Replace(target.Expr)})
			}
			walk(p.Panels)
		}
	}
	walk(dash.Panels)
	labelValues := regexp.MustCompile(`^label_values\((.+), *[a-zA-Z_]+\)$`)
	for _, v := range dash.Templating.List {
		if v.Type != "query" {
			continue
		}
		m := labelValues.FindStringSubmatch(v.Definition)
		if m == nil {
			t.Errorf("dashboard variable %s: query %q is not label_values(<selector>, <label>)", v.Name, v.Definition)
			continue
		}
		out = append(out, query{"dashboard variable " + v.Name, m[1]})
	}
	return out
}

type grafanaPanel struct {
	Title   string `json:"title"`
	Targets []struct {
		Expr  string `json:"expr"`
		RefID string `json:"refId"`
	} `json:"targets"`
	Panels []grafanaPanel `json:"panels"`
}

// TestAlertsAreDocumented: the alerts, each with a severity, a
// summary, a description and a runbook_url pointing at a section of the
// README that exists; annotations are Prometheus alert templates that parse.
func TestAlertsAreDocumented(t *testing.T) {
	readme, err := os.ReadFile(repoFile("README.md"))
	if err != nil {
		t.Fatal(err)
	}
	anchors := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^#+ +(.+)$`).FindAllStringSubmatch(string(readme), -1) {
		anchors[githubAnchor(m[1])] = true
	}
	var names []string
	for _, r := range alertRules(t) {
		names = append(names, r.Alert)
		if r.Labels["severity"] == "" {
			t.Errorf("%s has no severity label", r.Alert)
		}
		for _, a := range []string{"summary", "description", "runbook_url"} {
			if strings.TrimSpace(r.Annotations[a]) == "" {
				t.Errorf("%s has no %s", r.Alert, a)
			}
		}
		const prefix = "https://github.com/tokensync/tokensync/blob/main/README.md#"
		url := r.Annotations["runbook_url"]
		if !strings.HasPrefix(url, prefix) || !anchors[strings.TrimPrefix(url, prefix)] {
			t.Errorf("%s: runbook_url %s is not a section of README.md", r.Alert, url)
		}
		for name, text := range r.Annotations {
			// As Prometheus expands them, with the functions used here.
			tmpl := template.New(name).Funcs(template.FuncMap{"humanize": fmt.Sprint, "humanizeDuration": fmt.Sprint})
			if _, err := tmpl.Parse("{{$labels := .Labels}}{{$value := .Value}}" + text); err != nil {
				t.Errorf("%s annotation %s: %v", r.Alert, name, err)
			}
		}
	}
	sort.Strings(names)
	if !slices.Equal(names, wantAlerts) {
		t.Errorf("alerts %v, want %v", names, wantAlerts)
	}
}

// githubAnchor is the anchor GitHub gives a heading.
func githubAnchor(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(heading)) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
			b.WriteRune(r)
		}
	}
	return b.String()
}

// TestAlertsAndDashboardQueriesNameExportedMetrics parses every alert
// expression and dashboard query with Prometheus's PromQL parser, and checks
// each series selector against the /metrics of a manager running as the
// chart deploys it, after a login, a failed one, a Stalled TokenRequest,
// a ClusterTokenRequest and a rollout restart: the metric exists, and so does a series with the
// label values it selects (labels a scrape adds, like job, aside).
func TestAlertsAndDashboardQueriesNameExportedMetrics(t *testing.T) {
	var queries []query
	for _, r := range alertRules(t) {
		queries = append(queries, query{"alert " + r.Alert, r.Expr})
	}
	queries = append(queries, dashboardQueries(t)...)
	type use struct {
		where    string
		selector *parser.VectorSelector
	}
	var uses []use
	p := parser.NewParser(parser.Options{})
	for _, q := range queries {
		if strings.Contains(q.expr, "$") {
			t.Errorf("%s: a Grafana variable this test does not know: %s", q.where, q.expr)
			continue
		}
		expr, err := p.ParseExpr(q.expr)
		if err != nil {
			t.Errorf("%s: %v\n%s", q.where, err, q.expr)
			continue
		}
		parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
			if vs, ok := n.(*parser.VectorSelector); ok {
				uses = append(uses, use{q.where, vs})
			}
			return nil
		})
	}
	if len(uses) < len(queries) {
		t.Fatalf("%d selectors in %d queries", len(uses), len(queries))
	}

	fake := providertest.Start(t)
	fake.SetValid(providertest.Partner, partnerCreds)
	m := startChartManager(t, "tokensync", releaseNamespace, loopbackValues(t, map[string]any{}))
	e := newTenant(t, "tenant-metrics", fake)
	app := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: e.ns},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "app"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "app"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app"}}},
			},
		},
	}
	if err := k8sClient.Create(context.Background(), app); err != nil {
		t.Fatal(err)
	}
	e.createTokenRequest("good", partnerCreds, tokensyncv1alpha1.RolloutRestartTarget{Kind: "Deployment", Name: "app"})
	e.createTokenRequest("wrong", map[string]string{"accessKey": "ak-1", "secret": "not-it"})
	// A ClusterTokenRequest, for its gauges (its credentials: good's).
	ctr := &tokensyncv1alpha1.ClusterTokenRequest{
		ObjectMeta: metav1.ObjectMeta{Name: "metrics-shared"},
		Spec: tokensyncv1alpha1.ClusterTokenRequestSpec{
			LoginSpec:            tokensyncv1alpha1.LoginSpec{Provider: providertest.Partner, Endpoint: fake.URL()},
			CredentialsSecretRef: tokensyncv1alpha1.NamespacedSecretReference{Name: "good-creds", Namespace: e.ns},
			SecretName:           "shared-token",
			Namespaces:           []string{e.ns},
		},
	}
	if err := k8sClient.Create(context.Background(), ctr); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), ctr) })
	e.waitCondition("good", metav1.ConditionTrue, tokensyncv1alpha1.ReasonTokenIssued)
	e.waitCondition("wrong", metav1.ConditionFalse, tokensyncv1alpha1.ReasonAuthenticationFailed)

	var series map[string][]map[string]string
	eventually(t, readyTimeout, func() error {
		var err error
		if series, err = parseExposition(m.scrape(t)); err != nil {
			return err
		}
		// Every selector's metric, once the restart is counted too.
		for _, u := range uses {
			if len(series[u.selector.Name]) == 0 {
				return fmt.Errorf("%s: the manager does not export %s", u.where, u.selector.Name)
			}
		}
		return nil
	})
	for _, u := range uses {
		if !selects(u.selector.LabelMatchers, series[u.selector.Name]) {
			t.Errorf("%s: no series of the manager's matches %s\n%s has: %v", u.where, u.selector, u.selector.Name, series[u.selector.Name])
		}
	}
}

// scrapeLabels are the labels a Prometheus scrape adds to the manager's
// series (target labels of a ServiceMonitor); namespace only on series
// that have none of their own (honorLabels).
var scrapeLabels = []string{"job", "instance", "namespace", "pod", "service", "endpoint", "container"}

// selects tells whether one of series matches matchers, ignoring matchers on
// scrape labels the series do not carry themselves.
func selects(matchers []*labels.Matcher, series []map[string]string) bool {
	for _, s := range series {
		ok := true
		for _, m := range matchers {
			if m.Name == model.MetricNameLabel {
				continue
			}
			v, has := s[m.Name]
			if !has && slices.Contains(scrapeLabels, m.Name) {
				continue
			}
			if !m.Matches(v) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// parseExposition parses Prometheus's text format into series label sets by
// metric name, with a histogram's _bucket, _sum and _count series.
func parseExposition(body []byte) (map[string][]map[string]string, error) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	out := map[string][]map[string]string{}
	for name, f := range families {
		for _, m := range f.GetMetric() {
			ls := map[string]string{}
			for _, l := range m.GetLabel() {
				ls[l.GetName()] = l.GetValue()
			}
			if h := m.GetHistogram(); h != nil {
				for _, b := range h.GetBucket() {
					bucket := map[string]string{"le": fmt.Sprint(b.GetUpperBound())}
					for k, v := range ls {
						bucket[k] = v
					}
					out[name+"_bucket"] = append(out[name+"_bucket"], bucket)
				}
				out[name+"_sum"] = append(out[name+"_sum"], ls)
				out[name+"_count"] = append(out[name+"_count"], ls)
				continue
			}
			out[name] = append(out[name], ls)
		}
	}
	return out, nil
}
