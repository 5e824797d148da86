package chart

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"helm.sh/helm/v4/pkg/chart/v2/lint"
	"helm.sh/helm/v4/pkg/chart/v2/lint/support"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	sigsyaml "sigs.k8s.io/yaml"
)

const releaseNamespace = "tokensync-system"

// dryRunApply applies every object by server-side apply in dry-run mode,
// with strict field validation: the API server checks each against its
// schema (built-in types, the chart's CRDs, the Prometheus Operator's CRDs)
// and its admission, and stores nothing.
func dryRunApply(t *testing.T, objs []*unstructured.Unstructured) {
	t.Helper()
	for _, o := range objs {
		err := k8sClient.Patch(context.Background(), o.DeepCopy(), client.Apply,
			client.DryRunAll, client.FieldOwner("helm"), client.ForceOwnership, client.FieldValidation("Strict"))
		if err != nil {
			t.Errorf("server-side dry run of %s %s/%s: %v", o.GetKind(), o.GetNamespace(), o.GetName(), err)
		}
	}
}

// readYAML decodes the one object of a YAML file of the repository.
func readYAML(t *testing.T, parts ...string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(repoFile(parts...))
	if err != nil {
		t.Fatal(err)
	}
	objs, err := decodeAll(data)
	if err != nil || len(objs) != 1 {
		t.Fatalf("%s: %d objects, %v", filepath.Join(parts...), len(objs), err)
	}
	return objs[0].Object
}

// managerContainer is the manager container of a rendered Deployment, or of
// config/manager's.
func managerContainer(t *testing.T, deployment map[string]any) map[string]any {
	t.Helper()
	containers, _, _ := unstructured.NestedSlice(deployment, "spec", "template", "spec", "containers")
	for _, c := range containers {
		if c := c.(map[string]any); c["name"] == "manager" {
			return c
		}
	}
	t.Fatal("no manager container")
	return nil
}

func managerArgs(t *testing.T, r *rendered) []string {
	t.Helper()
	d := r.one(t, "Deployment", "tokensync")
	args, _, _ := unstructured.NestedStringSlice(managerContainer(t, d.Object), "args")
	return args
}

// kustomizeDeployment is config/manager's Deployment, the source of the
// chart's security contexts, env and default resources.
func kustomizeDeployment(t *testing.T) map[string]any {
	t.Helper()
	data, err := os.ReadFile(repoFile("config", "manager", "manager.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	objs, err := decodeAll(data)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if o.GetKind() == "Deployment" {
			return o.Object
		}
	}
	t.Fatal("config/manager/manager.yaml has no Deployment")
	return nil
}

// rbacSources names, for each role the chart renders, the file of
// config/rbac whose rules it must grant.
var rbacSources = map[string]string{
	"tokensync-manager":                    "config/rbac/role.yaml",
	"tokensync-rollout-restart":            "config/rbac/rollout-restart/role.yaml",
	"tokensync-leader-election":            "config/rbac/leader_election_role.yaml",
	"tokensync-metrics-auth":               "config/rbac/metrics_auth_role.yaml",
	"tokensync-metrics-reader":             "config/rbac/metrics_reader_role.yaml",
	"tokensync-tokenrequest-editor":        "config/rbac/tokenrequest_editor_role.yaml",
	"tokensync-tokenrequest-viewer":        "config/rbac/tokenrequest_viewer_role.yaml",
	"tokensync-clustertokenrequest-editor": "config/rbac/clustertokenrequest_editor_role.yaml",
	"tokensync-clustertokenrequest-viewer": "config/rbac/clustertokenrequest_viewer_role.yaml",
	"tokensync-fingerprint-key":            "", // the chart's own: config/default needs none
}

// checkRules fails when a rendered role's rules differ from its source's.
func checkRules(t *testing.T, role *unstructured.Unstructured) {
	t.Helper()
	source, ok := rbacSources[role.GetName()]
	if !ok {
		t.Errorf("%s %s has no source in config/rbac listed in rbacSources", role.GetKind(), role.GetName())
		return
	}
	if source == "" {
		return
	}
	want := readYAML(t, strings.Split(source, "/")...)["rules"]
	if got := role.Object["rules"]; !reflect.DeepEqual(got, want) {
		t.Errorf("%s %s/%s: rules differ from %s (make manifests copies them)\n got: %v\nwant: %v",
			role.GetKind(), role.GetNamespace(), role.GetName(), source, got, want)
	}
}

func labelsMatch(selector map[string]any, labels map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return len(selector) > 0
}

func podLabels(t *testing.T, r *rendered) map[string]string {
	t.Helper()
	l, _, _ := unstructured.NestedStringMap(r.one(t, "Deployment", "tokensync").Object, "spec", "template", "metadata", "labels")
	return l
}

// TestChartRendersAndAppliesByDryRun renders the chart for the default
// values and with each optional part on, applies every object by
// server-side dry run, and checks what each part promises.
func TestChartRendersAndAppliesByDryRun(t *testing.T) {
	for _, ns := range []string{releaseNamespace, "ops", "team-a", "team-b"} {
		createNamespace(t, ns)
	}
	appVersion := loadChart(t).Metadata.AppVersion
	cases := []struct {
		name, namespace string
		values          map[string]any
		check           func(t *testing.T, r *rendered)
	}{{
		name: "defaults",
		check: func(t *testing.T, r *rendered) {
			d := r.one(t, "Deployment", "tokensync")
			c := managerContainer(t, d.Object)
			if img := c["image"]; img != "registry.example.com/tokensync:"+appVersion {
				t.Errorf("image %v, want the chart's appVersion %s as tag", img, appVersion)
			}
			args := managerArgs(t, r)
			for _, want := range []string{"--leader-elect", "--leader-election-namespace=" + releaseNamespace, "--metrics-bind-address=:8443", "--health-probe-bind-address=:8081"} {
				if !slices.Contains(args, want) {
					t.Errorf("args %v lack %s", args, want)
				}
			}
			for _, a := range args {
				for _, unwanted := range []string{"--namespaces", "--allow-loopback-endpoints", "--allowed-private-endpoints", "--allow-private-endpoints", "--require-credentials-label", "--max-logins-in-flight="} {
					if strings.HasPrefix(a, unwanted) {
						t.Errorf("arg %s rendered with the default values", a)
					}
				}
			}
			// As config/manager deploys it: security contexts, env
			// (POD_NAMESPACE, GOMEMLIMIT from the memory limit), resources.
			k := kustomizeDeployment(t)
			kc := managerContainer(t, k)
			for _, path := range [][]string{{"spec", "template", "spec", "securityContext"}} {
				got, _, _ := unstructured.NestedFieldNoCopy(d.Object, path...)
				want, _, _ := unstructured.NestedFieldNoCopy(k, path...)
				if !reflect.DeepEqual(got, want) {
					t.Errorf("pod securityContext %v, want config/manager's %v", got, want)
				}
			}
			for _, field := range []string{"securityContext", "env", "resources", "ports", "livenessProbe", "readinessProbe"} {
				if !reflect.DeepEqual(c[field], kc[field]) {
					t.Errorf("container %s %v, want config/manager's %v", field, c[field], kc[field])
				}
			}
			env := fmt.Sprint(c["env"])
			if !strings.Contains(env, "GOMEMLIMIT") || !strings.Contains(env, "limits.memory") || !strings.Contains(env, "POD_NAMESPACE") {
				t.Errorf("env %s: want GOMEMLIMIT from limits.memory and POD_NAMESPACE", env)
			}
			if n := d.Object["spec"].(map[string]any)["replicas"]; fmt.Sprint(n) != "2" {
				t.Errorf("replicas %v, want 2", n)
			}
			for _, kind := range []string{"ClusterRole", "Role"} {
				for _, role := range r.find(kind) {
					checkRules(t, role)
				}
			}
			for _, name := range []string{"tokensync-manager", "tokensync-rollout-restart", "tokensync-metrics-auth"} {
				r.one(t, "ClusterRole", name)
				b := r.one(t, "ClusterRoleBinding", name)
				if s := fmt.Sprint(b.Object["subjects"]); !strings.Contains(s, "name:tokensync namespace:"+releaseNamespace) {
					t.Errorf("ClusterRoleBinding %s binds %s, want ServiceAccount %s/tokensync", name, s, releaseNamespace)
				}
			}
			r.one(t, "ServiceAccount", "tokensync")
			if len(r.find("Role", "tokensync-fingerprint-key")) != 0 {
				t.Error("a fingerprint key Role without watchNamespaces (the ClusterRole grants Secrets)")
			}
			svc := r.one(t, "Service", "tokensync-metrics")
			sel, _, _ := unstructured.NestedMap(svc.Object, "spec", "selector")
			if !labelsMatch(sel, podLabels(t, r)) {
				t.Errorf("the metrics Service selects %v, not the manager pods %v", sel, podLabels(t, r))
			}
			pdb := r.one(t, "PodDisruptionBudget", "tokensync")
			sel, _, _ = unstructured.NestedMap(pdb.Object, "spec", "selector", "matchLabels")
			if !labelsMatch(sel, podLabels(t, r)) {
				t.Errorf("the PodDisruptionBudget selects %v, not the manager pods", sel)
			}
			for _, kind := range []string{"ServiceMonitor", "PrometheusRule", "NetworkPolicy", "ConfigMap"} {
				if n := len(r.find(kind)); n != 0 {
					t.Errorf("%d %s rendered by default", n, kind)
				}
			}
			if !strings.Contains(r.notes, "registry.example.com/tokensync:"+appVersion) {
				t.Errorf("NOTES.txt does not name the image: %s", r.notes)
			}
		},
	}, {
		name:   "watchNamespaces",
		values: map[string]any{"watchNamespaces": []any{"team-a", "team-b"}},
		check: func(t *testing.T, r *rendered) {
			if args := managerArgs(t, r); !slices.Contains(args, "--namespaces=team-a,team-b") {
				t.Errorf("args %v lack --namespaces=team-a,team-b", args)
			}
			for _, name := range []string{"tokensync-manager", "tokensync-rollout-restart"} {
				if n := len(r.find("ClusterRole", name)) + len(r.find("ClusterRoleBinding", name)); n != 0 {
					t.Errorf("%s: ClusterRole or ClusterRoleBinding rendered with watchNamespaces", name)
				}
				roles, bindings := map[string]bool{}, map[string]bool{}
				for _, role := range r.find("Role", name) {
					roles[role.GetNamespace()] = true
					checkRules(t, role)
				}
				for _, b := range r.find("RoleBinding", name) {
					bindings[b.GetNamespace()] = true
				}
				want := map[string]bool{"team-a": true, "team-b": true}
				if !reflect.DeepEqual(roles, want) || !reflect.DeepEqual(bindings, want) {
					t.Errorf("%s: Roles in %v and RoleBindings in %v, want both in team-a and team-b", name, roles, bindings)
				}
			}
			if role := r.one(t, "Role", "tokensync-fingerprint-key"); role.GetNamespace() != releaseNamespace {
				t.Errorf("the fingerprint key Role is in %s, want the release's namespace", role.GetNamespace())
			}
			r.one(t, "ClusterRole", "tokensync-metrics-auth")
		},
	}, {
		name:   "networkPolicy",
		values: map[string]any{"networkPolicy": map[string]any{"enabled": true}},
		check: func(t *testing.T, r *rendered) {
			np := r.one(t, "NetworkPolicy", "tokensync")
			sel, _, _ := unstructured.NestedMap(np.Object, "spec", "podSelector", "matchLabels")
			if !labelsMatch(sel, podLabels(t, r)) {
				t.Errorf("the NetworkPolicy selects %v, not the manager pods", sel)
			}
			ingress, _, _ := unstructured.NestedSlice(np.Object, "spec", "ingress")
			var ports []string
			for _, rule := range ingress {
				for _, p := range rule.(map[string]any)["ports"].([]any) {
					ports = append(ports, fmt.Sprint(p.(map[string]any)["port"]))
				}
			}
			sort.Strings(ports)
			if !reflect.DeepEqual(ports, []string{"metrics", "probes"}) {
				t.Errorf("ingress to ports %v, want metrics and probes only", ports)
			}
			egress, _, _ := unstructured.NestedSlice(np.Object, "spec", "egress")
			ports = nil
			for _, rule := range egress {
				for _, p := range rule.(map[string]any)["ports"].([]any) {
					p := p.(map[string]any)
					ports = append(ports, fmt.Sprintf("%v/%v", p["port"], p["protocol"]))
				}
			}
			sort.Strings(ports)
			if want := []string{"443/TCP", "53/TCP", "53/UDP", "6443/TCP"}; !reflect.DeepEqual(ports, want) {
				t.Errorf("egress to %v, want %v", ports, want)
			}
		},
	}, {
		name:   "serviceMonitor",
		values: map[string]any{"serviceMonitor": map[string]any{"enabled": true, "labels": map[string]any{"release": "kube-prometheus-stack"}}},
		check: func(t *testing.T, r *rendered) {
			sm := r.one(t, "ServiceMonitor", "tokensync")
			if sm.GetLabels()["release"] != "kube-prometheus-stack" {
				t.Errorf("labels %v lack serviceMonitor.labels", sm.GetLabels())
			}
			svc := r.one(t, "Service", "tokensync-metrics")
			sel, _, _ := unstructured.NestedMap(sm.Object, "spec", "selector", "matchLabels")
			if !labelsMatch(sel, svc.GetLabels()) {
				t.Errorf("the ServiceMonitor selects %v, not the metrics Service %v", sel, svc.GetLabels())
			}
			endpoints, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
			svcPorts, _, _ := unstructured.NestedSlice(svc.Object, "spec", "ports")
			if len(endpoints) != 1 || endpoints[0].(map[string]any)["port"] != svcPorts[0].(map[string]any)["name"] {
				t.Errorf("endpoints %v do not scrape the Service's port %v", endpoints, svcPorts)
			}
			if endpoints[0].(map[string]any)["honorLabels"] != true {
				t.Error("honorLabels is off: the TokenRequests' namespace label would become exported_namespace")
			}
		},
	}, {
		name:      "prometheusRule",
		namespace: "ops",
		values:    map[string]any{"prometheusRule": map[string]any{"enabled": true}},
		check: func(t *testing.T, r *rendered) {
			pr := r.one(t, "PrometheusRule", "tokensync")
			if pr.GetNamespace() != "ops" {
				t.Errorf("namespace %s, want the release's", pr.GetNamespace())
			}
			data, err := os.ReadFile(repoFile("config", "prometheus", "prometheusrule.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			rescoped := bytes.ReplaceAll(data, []byte(`namespace="tokensync-system"`), []byte(`namespace="ops"`))
			if bytes.Equal(rescoped, data) {
				t.Fatal(`config/prometheus/prometheusrule.yaml names no namespace="tokensync-system"`)
			}
			var want map[string]any
			if err := sigsyaml.Unmarshal(rescoped, &want); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(pr.Object["spec"], want["spec"]) {
				t.Errorf("the chart's rules differ from config/prometheus's rescoped to namespace ops:\n got %v\nwant %v", pr.Object["spec"], want["spec"])
			}
			if s := fmt.Sprint(pr.Object["spec"]); strings.Contains(s, "tokensync-system") {
				t.Errorf("the chart's rules still name tokensync-system: %s", s)
			}
		},
	}, {
		name:   "grafanaDashboard",
		values: map[string]any{"grafanaDashboard": map[string]any{"enabled": true}},
		check: func(t *testing.T, r *rendered) {
			cm := r.one(t, "ConfigMap", "tokensync-dashboard")
			if cm.GetLabels()["grafana_dashboard"] != "1" {
				t.Errorf("labels %v lack the Grafana sidecar's grafana_dashboard", cm.GetLabels())
			}
			want, err := os.ReadFile(repoFile("config", "grafana", "tokensync.json"))
			if err != nil {
				t.Fatal(err)
			}
			got, _, _ := unstructured.NestedString(cm.Object, "data", "tokensync.json")
			if got != strings.TrimRight(string(want), "\n") {
				t.Error("the ConfigMap's dashboard differs from config/grafana/tokensync.json")
			}
		},
	}, {
		// The private-address values become the manager's flags, which
		// the manager built from this tree has.
		name: "privateEndpoints",
		values: map[string]any{
			"allowedPrivateEndpoints": []any{"idp.internal", "vpce-0a1b.sts.eu-west-1.vpce.amazonaws.com:443", "10.20.0.0/16", "[fd00::1]:8443"},
			"allowPrivateEndpoints":   true,
		},
		check: func(t *testing.T, r *rendered) {
			args := managerArgs(t, r)
			for _, want := range []string{"--allowed-private-endpoints=idp.internal,vpce-0a1b.sts.eu-west-1.vpce.amazonaws.com:443,10.20.0.0/16,[fd00::1]:8443",
				"--allow-private-endpoints"} {
				if !slices.Contains(args, want) {
					t.Errorf("args %v lack %s", args, want)
				}
			}
			for _, flag := range []string{"allowed-private-endpoints", "allow-private-endpoints"} {
				if !managerHasFlag(t, flag) {
					t.Errorf("the manager has no --%s", flag)
				}
			}
		},
	}, {
		name: "everything",
		values: map[string]any{
			"replicaCount":            3,
			"rbac":                    map[string]any{"create": true, "rolloutRestart": false},
			"watchNamespaces":         []any{"team-a"},
			"allowedEndpoints":        []any{"aml=https://api.amlwatcher.com", "oauth2=sso.example.com"},
			"allowLoopbackEndpoints":  true,
			"allowedPrivateEndpoints": []any{"idp.internal"},
			"allowPrivateEndpoints":   true,
			"requireCredentialsLabel": false,
			"maxLoginsInFlight":       64,
			"extraArgs":               []any{"--zap-log-level=debug"},
			"imagePullSecrets":        []any{map[string]any{"name": "registry"}},
			"nodeSelector":            map[string]any{"kubernetes.io/os": "linux"},
			"tolerations":             []any{map[string]any{"key": "dedicated", "operator": "Equal", "value": "ops", "effect": "NoSchedule"}},
			"affinity":                map[string]any{"podAntiAffinity": map[string]any{"preferredDuringSchedulingIgnoredDuringExecution": []any{map[string]any{"weight": 100, "podAffinityTerm": map[string]any{"topologyKey": "kubernetes.io/hostname", "labelSelector": map[string]any{"matchLabels": map[string]any{"app.kubernetes.io/name": "tokensync"}}}}}}},
			"priorityClassName":       "system-cluster-critical",
			"podAnnotations":          map[string]any{"example.com/team": "platform"},
			"podLabels":               map[string]any{"team": "platform"},
			"serviceAccount":          map[string]any{"create": true, "name": "tokensync-sa", "annotations": map[string]any{"example.com/role": "x"}},
			"podDisruptionBudget":     map[string]any{"enabled": true, "maxUnavailable": "50%"},
			"serviceMonitor":          map[string]any{"enabled": true, "interval": "15s"},
			"prometheusRule":          map[string]any{"enabled": true, "labels": map[string]any{"role": "alert-rules"}},
			"grafanaDashboard":        map[string]any{"enabled": true, "namespace": "ops", "annotations": map[string]any{"grafana_folder": "Operators"}},
			"networkPolicy": map[string]any{"enabled": true, "apiServerPorts": []any{6443, 8443}, "apiServerCIDRs": []any{"10.0.0.1/32"},
				"metricsFrom": []any{map[string]any{"namespaceSelector": map[string]any{"matchLabels": map[string]any{"kubernetes.io/metadata.name": "monitoring"}}}},
				"extraEgress": []any{map[string]any{"ports": []any{map[string]any{"port": 8443, "protocol": "TCP"}}}}},
		},
		check: func(t *testing.T, r *rendered) {
			args := managerArgs(t, r)
			for _, want := range []string{"--leader-elect", "--namespaces=team-a", "--allowed-endpoints=aml=https://api.amlwatcher.com,oauth2=sso.example.com",
				"--allow-loopback-endpoints", "--allowed-private-endpoints=idp.internal", "--allow-private-endpoints",
				"--require-credentials-label=false", "--max-logins-in-flight=64", "--zap-log-level=debug"} {
				if !slices.Contains(args, want) {
					t.Errorf("args %v lack %s", args, want)
				}
			}
			if n := len(r.find("Role", "tokensync-rollout-restart")) + len(r.find("ClusterRole", "tokensync-rollout-restart")); n != 0 {
				t.Error("the rollout-restart role is rendered with rbac.rolloutRestart false")
			}
			for _, b := range append(r.find("RoleBinding"), r.find("ClusterRoleBinding")...) {
				if s := fmt.Sprint(b.Object["subjects"]); !strings.Contains(s, "name:tokensync-sa") {
					t.Errorf("%s %s binds %s, want ServiceAccount tokensync-sa", b.GetKind(), b.GetName(), s)
				}
			}
		},
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ns := c.namespace
			if ns == "" {
				ns = releaseNamespace
			}
			r := mustRender(t, "tokensync", ns, withImage(c.values))
			dryRunApply(t, r.objects)
			c.check(t, r)
		})
	}
}

// TestLeaderElectionWhateverTheReplicas: leader election is on with any
// number of replicas (also 1: a rolling update runs two managers at once).
func TestLeaderElectionWhateverTheReplicas(t *testing.T) {
	for _, n := range []int{1, 2, 5} {
		args := managerArgs(t, mustRender(t, "tokensync", releaseNamespace, withImage(map[string]any{"replicaCount": n})))
		if !slices.Contains(args, "--leader-elect") {
			t.Errorf("replicaCount %d: args %v lack --leader-elect", n, args)
		}
	}
}

// TestValuesSchemaRefusesWrongValues: values.schema.json refuses a wrong
// type, a misspelt key and malformed entries, naming the value; and without
// image.repository the chart says how to build and push an image.
func TestValuesSchemaRefusesWrongValues(t *testing.T) {
	cases := []struct {
		name   string
		values map[string]any
		want   string
	}{
		{"replicaCount a string", map[string]any{"replicaCount": "two"}, "replicaCount"},
		{"replicaCount negative", map[string]any{"replicaCount": -1}, "replicaCount"},
		{"image.tag a number", map[string]any{"image": map[string]any{"repository": "r", "tag": 1.2}}, "tag"},
		{"image.pullPolicy unknown", map[string]any{"image": map[string]any{"repository": "r", "pullPolicy": "Sometimes"}}, "pullPolicy"},
		{"watchNamespaces a string", map[string]any{"watchNamespaces": "team-a"}, "watchNamespaces"},
		{"watchNamespaces not a namespace name", map[string]any{"watchNamespaces": []any{"Team_A"}}, "watchNamespaces"},
		{"a misspelt key", map[string]any{"replicas": 2}, "replicas"},
		{"a misspelt nested key", map[string]any{"serviceMonitor": map[string]any{"enable": true}}, "enable"},
		{"networkPolicy.enabled a string", map[string]any{"networkPolicy": map[string]any{"enabled": "yes"}}, "enabled"},
		{"rbac.rolloutRestart a string", map[string]any{"rbac": map[string]any{"create": true, "rolloutRestart": "no"}}, "rolloutRestart"},
		{"allowedEndpoints with a comma", map[string]any{"allowedEndpoints": []any{"aml=https://a.example,https://b.example"}}, "allowedEndpoints"},
		{"allowedEndpoints without a provider", map[string]any{"allowedEndpoints": []any{"https://a.example"}}, "allowedEndpoints"},
		{"allowPrivateEndpoints a string", map[string]any{"allowPrivateEndpoints": "yes"}, "allowPrivateEndpoints"},
		{"allowedPrivateEndpoints a string", map[string]any{"allowedPrivateEndpoints": "idp.internal"}, "allowedPrivateEndpoints"},
		{"allowedPrivateEndpoints with a comma", map[string]any{"allowedPrivateEndpoints": []any{"idp.internal,10.0.0.0/8"}}, "allowedPrivateEndpoints"},
		{"allowedPrivateEndpoints a URL", map[string]any{"allowedPrivateEndpoints": []any{"https://idp.internal/"}}, "allowedPrivateEndpoints"},
		{"a misspelt private-address key", map[string]any{"allowPrivateEndpoint": true}, "allowPrivateEndpoint"},
		{"maxLoginsInFlight zero", map[string]any{"maxLoginsInFlight": 0}, "maxLoginsInFlight"},
		{"extraArgs not a flag", map[string]any{"extraArgs": []any{"zap-log-level=debug"}}, "extraArgs"},
		{"podLabels overriding a selector label", map[string]any{"podLabels": map[string]any{"app.kubernetes.io/name": "x"}}, "app.kubernetes.io/name"},
		{"serviceMonitor.interval not a duration", map[string]any{"serviceMonitor": map[string]any{"enabled": true, "interval": "often"}}, "interval"},
		{"podDisruptionBudget.maxUnavailable zero", map[string]any{"podDisruptionBudget": map[string]any{"enabled": true, "maxUnavailable": 0}}, "maxUnavailable"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := renderChart(t, "tokensync", releaseNamespace, withImage(c.values))
			if err == nil {
				t.Fatalf("values %v accepted", c.values)
			}
			if !strings.Contains(err.Error(), "schema") || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not name the schema and %s", err, c.want)
			}
		})
	}
	t.Run("without image.repository", func(t *testing.T) {
		_, err := renderChart(t, "tokensync", releaseNamespace, nil)
		if err == nil || !strings.Contains(err.Error(), "image.repository is required") || !strings.Contains(err.Error(), "make image") {
			t.Errorf("error %v, want image.repository is required and how to build one", err)
		}
	})
}

// TestChartCopiesMatchTheirSources: what make manifests copies into the
// chart (hack/sync-chart.sh) is identical to its source in config/: every
// CRD, the RBAC rules, the alerts, the dashboard; and the chart has no crds/.
func TestChartCopiesMatchTheirSources(t *testing.T) {
	copies := map[string]string{
		"files/rbac/manager-role.yaml":         "config/rbac/role.yaml",
		"files/rbac/rollout-restart-role.yaml": "config/rbac/rollout-restart/role.yaml",
		"files/prometheusrule.yaml":            "config/prometheus/prometheusrule.yaml",
		"files/grafana/tokensync.json":         "config/grafana/tokensync.json",
	}
	for _, pattern := range []string{"config/crd/bases/*.yaml", "config/rbac/*_role.yaml"} {
		sources, err := filepath.Glob(repoFile(pattern))
		if err != nil || len(sources) == 0 {
			t.Fatalf("%s: %v %v", pattern, sources, err)
		}
		for _, s := range sources {
			dir := "files/crds"
			if strings.Contains(pattern, "rbac") {
				dir = "files/rbac"
			}
			copies[dir+"/"+filepath.Base(s)] = strings.TrimPrefix(filepath.ToSlash(s), "../../")
		}
	}
	want := map[string]bool{}
	for copied, source := range copies {
		want[copied] = true
		got, err := os.ReadFile(filepath.Join(chartDir, copied))
		if err != nil {
			t.Errorf("%s: %v (run make manifests)", copied, err)
			continue
		}
		src, err := os.ReadFile(repoFile(source))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, src) {
			t.Errorf("charts/tokensync/%s differs from %s: run make manifests", copied, source)
		}
	}
	// Nothing else: a CRD or rule file removed from config/ goes from the chart too.
	_ = filepath.WalkDir(filepath.Join(chartDir, "files"), func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(chartDir, path)
			if !want[filepath.ToSlash(rel)] {
				t.Errorf("charts/tokensync/%s is a copy of nothing in config/ (run make manifests)", filepath.ToSlash(rel))
			}
		}
		return nil
	})
	// Helm would install a crds/ once, never upgrade it, and clash with
	// templates/crds.yaml, which renders files/crds.
	if _, err := os.Stat(filepath.Join(chartDir, "crds")); !os.IsNotExist(err) {
		t.Errorf("charts/tokensync/crds exists (%v): the CRDs belong in files/crds (make manifests removes it)", err)
	}
}

// TestChartLints: `helm lint --strict` passes (no warning or error from its
// rules: Chart.yaml, values against the schema, the templates, valid YAML and
// object names, no deprecated APIs, CRDs) with the default values and with
// every optional part on.
func TestChartLints(t *testing.T) {
	for _, values := range []map[string]any{
		withImage(nil),
		withImage(map[string]any{
			"watchNamespaces": []any{"team-a"}, "networkPolicy": map[string]any{"enabled": true},
			"serviceMonitor": map[string]any{"enabled": true}, "prometheusRule": map[string]any{"enabled": true},
			"grafanaDashboard": map[string]any{"enabled": true},
		}),
	} {
		linter := lint.RunAll(chartDir, values, releaseNamespace)
		for _, m := range linter.Messages {
			if m.Severity >= support.WarningSev { // INFO is only "icon is recommended"
				t.Errorf("helm lint: %s", m)
			}
		}
	}
}
