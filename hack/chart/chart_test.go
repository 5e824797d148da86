package chart

import (
	"bytes"
	"context"
	"encoding/json"
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

// envNames lists a container's env variable names, in order.
func envNames(container map[string]any) []string {
	var names []string
	env, _, _ := unstructured.NestedSlice(container, "env")
	for _, e := range env {
		names = append(names, fmt.Sprint(e.(map[string]any)["name"]))
	}
	return names
}

// envValues maps a container's env variables with a value to it.
func envValues(container map[string]any) map[string]string {
	out := map[string]string{}
	env, _, _ := unstructured.NestedSlice(container, "env")
	for _, e := range env {
		if v, ok := e.(map[string]any)["value"].(string); ok {
			out[fmt.Sprint(e.(map[string]any)["name"])] = v
		}
	}
	return out
}

// egressPorts lists a NetworkPolicy's egress ports as port/protocol, sorted.
func egressPorts(np *unstructured.Unstructured) []string {
	var ports []string
	egress, _, _ := unstructured.NestedSlice(np.Object, "spec", "egress")
	for _, rule := range egress {
		for _, p := range rule.(map[string]any)["ports"].([]any) {
			p := p.(map[string]any)
			ports = append(ports, fmt.Sprintf("%v/%v", p["port"], p["protocol"]))
		}
	}
	sort.Strings(ports)
	return ports
}

// checkNames: every namespaced object and every role is named fullname or
// fullname-<part>, labelled app.kubernetes.io/name: name, and what refers to
// another (bindings, selectors, the pods' ServiceAccount) finds it.
func checkNames(t *testing.T, r *rendered, fullname, name string) {
	t.Helper()
	for _, o := range r.objects {
		if o.GetKind() == "CustomResourceDefinition" {
			continue
		}
		if n := o.GetName(); n != fullname && !strings.HasPrefix(n, fullname+"-") {
			t.Errorf("%s %s: not named after %s", o.GetKind(), n, fullname)
		}
		if l := o.GetLabels()["app.kubernetes.io/name"]; l != name {
			t.Errorf("%s %s: app.kubernetes.io/name %q, want %q", o.GetKind(), o.GetName(), l, name)
		}
	}
	d := r.one(t, "Deployment", fullname)
	pods, _, _ := unstructured.NestedStringMap(d.Object, "spec", "template", "metadata", "labels")
	sa, _, _ := unstructured.NestedString(d.Object, "spec", "template", "spec", "serviceAccountName")
	r.one(t, "ServiceAccount", sa)
	for _, kind := range []string{"RoleBinding", "ClusterRoleBinding"} {
		for _, b := range r.find(kind) {
			ref, _, _ := unstructured.NestedString(b.Object, "roleRef", "name")
			if len(r.find(strings.TrimSuffix(kind, "Binding"), ref)) != 1 {
				t.Errorf("%s %s binds %s, which is not rendered", kind, b.GetName(), ref)
			}
			if s := fmt.Sprint(b.Object["subjects"]); !strings.Contains(s, "name:"+sa+" ") {
				t.Errorf("%s %s binds %s, not the ServiceAccount %s", kind, b.GetName(), s, sa)
			}
		}
	}
	for _, kind := range []string{"Service", "PodDisruptionBudget", "NetworkPolicy", "ServiceMonitor"} {
		for _, o := range r.find(kind) {
			sel, _, _ := unstructured.NestedMap(o.Object, "spec", "selector")
			if kind != "Service" {
				sel, _, _ = unstructured.NestedMap(o.Object, "spec", "selector", "matchLabels")
			}
			if kind == "NetworkPolicy" {
				sel, _, _ = unstructured.NestedMap(o.Object, "spec", "podSelector", "matchLabels")
			}
			target := pods
			if kind == "ServiceMonitor" {
				target = r.one(t, "Service", fullname+"-metrics").GetLabels()
			}
			if !labelsMatch(sel, target) {
				t.Errorf("%s %s selects %v, not %v", kind, o.GetName(), sel, target)
			}
		}
	}
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
			for _, want := range []string{"--leader-elect", "--leader-election-namespace=" + releaseNamespace, "--leader-election-id=tokensync.tokensync.io", "--metrics-bind-address=:8443", "--health-probe-bind-address=:8081"} {
				if !slices.Contains(args, want) {
					t.Errorf("args %v lack %s", args, want)
				}
			}
			for _, a := range args {
				for _, unwanted := range []string{"--namespaces", "--allow-loopback-endpoints", "--allowed-private-endpoints", "--allow-private-endpoints", "--require-credentials-label", "--max-logins-in-flight=", "--ca-bundle-file"} {
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
			// The replicas spread over nodes, by the manager pods' labels,
			// without blocking scheduling.
			spread, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "topologySpreadConstraints")
			if len(spread) != 1 {
				t.Fatalf("topologySpreadConstraints %v, want one", spread)
			}
			c0 := spread[0].(map[string]any)
			sel, _, _ := unstructured.NestedMap(c0, "labelSelector", "matchLabels")
			if c0["topologyKey"] != "kubernetes.io/hostname" || c0["whenUnsatisfiable"] != "ScheduleAnyway" || fmt.Sprint(c0["maxSkew"]) != "1" || !labelsMatch(sel, podLabels(t, r)) || sel["app.kubernetes.io/component"] != "manager" {
				t.Errorf("topologySpreadConstraints %v, want maxSkew 1 over kubernetes.io/hostname, ScheduleAnyway, selecting the manager pods", spread)
			}
			if _, ok := d.Object["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)["volumes"]; ok || c["volumeMounts"] != nil {
				t.Error("volumes or volumeMounts rendered by default")
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
			sel, _, _ = unstructured.NestedMap(svc.Object, "spec", "selector")
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
			if ports, want := egressPorts(np), []string{"443/TCP", "53/TCP", "53/UDP", "6443/TCP"}; !reflect.DeepEqual(ports, want) {
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
		name: "extraEnv and extraVolumes",
		values: map[string]any{
			"extraEnv": []any{
				map[string]any{"name": "SSL_CERT_DIR", "value": "/etc/ssl/private-ca"},
				map[string]any{"name": "FROM_SECRET", "valueFrom": map[string]any{"secretKeyRef": map[string]any{"name": "s", "key": "k"}}},
			},
			"extraVolumes":      []any{map[string]any{"name": "endpoints", "configMap": map[string]any{"name": "tokensync-endpoints"}}},
			"extraVolumeMounts": []any{map[string]any{"name": "endpoints", "mountPath": "/etc/tokensync", "readOnly": true}},
		},
		check: func(t *testing.T, r *rendered) {
			d := r.one(t, "Deployment", "tokensync")
			c := managerContainer(t, d.Object)
			env := envNames(c)
			if want := []string{"POD_NAMESPACE", "GOMEMLIMIT", "SSL_CERT_DIR", "FROM_SECRET"}; !slices.Equal(env, want) {
				t.Errorf("env %v, want %v: the chart's, then extraEnv", env, want)
			}
			if s := fmt.Sprint(c["env"]); !strings.Contains(s, "/etc/ssl/private-ca") || !strings.Contains(s, "secretKeyRef") {
				t.Errorf("env %s lacks extraEnv's values", s)
			}
			if s := fmt.Sprint(c["volumeMounts"]); s != "[map[mountPath:/etc/tokensync name:endpoints readOnly:true]]" {
				t.Errorf("volumeMounts %s, want extraVolumeMounts", s)
			}
			volumes, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "volumes")
			if s := fmt.Sprint(volumes); s != "[map[configMap:map[name:tokensync-endpoints] name:endpoints]]" {
				t.Errorf("volumes %s, want extraVolumes", s)
			}
		},
	}, {
		name: "caBundle from a ConfigMap, with extraVolumes",
		values: map[string]any{
			"caBundle":          map[string]any{"configMap": map[string]any{"name": "corp-ca", "key": "root.pem"}},
			"extraVolumes":      []any{map[string]any{"name": "endpoints", "configMap": map[string]any{"name": "tokensync-endpoints"}}},
			"extraVolumeMounts": []any{map[string]any{"name": "endpoints", "mountPath": "/etc/tokensync", "readOnly": true}},
		},
		check: func(t *testing.T, r *rendered) {
			volumes, mounts := checkCABundle(t, r, "map[configMap:map[items:[map[key:root.pem path:ca.crt]] name:corp-ca] name:tokensync-ca-bundle]")
			if s := fmt.Sprint(volumes[1:]); s != "[map[configMap:map[name:tokensync-endpoints] name:endpoints]]" {
				t.Errorf("volumes after the bundle's %s, want extraVolumes", s)
			}
			if s := fmt.Sprint(mounts[1:]); s != "[map[mountPath:/etc/tokensync name:endpoints readOnly:true]]" {
				t.Errorf("volumeMounts after the bundle's %s, want extraVolumeMounts", s)
			}
		},
	}, {
		name:   "caBundle from a Secret",
		values: map[string]any{"caBundle": map[string]any{"secret": map[string]any{"name": "corp-ca", "key": "ca.crt"}}},
		check: func(t *testing.T, r *rendered) {
			if volumes, mounts := checkCABundle(t, r, "map[name:tokensync-ca-bundle secret:map[items:[map[key:ca.crt path:ca.crt]] secretName:corp-ca]]"); len(volumes) != 1 || len(mounts) != 1 {
				t.Errorf("volumes %v, volumeMounts %v: want the bundle's alone", volumes, mounts)
			}
		},
	}, {
		name: "proxy",
		values: map[string]any{
			"proxy":         map[string]any{"httpsProxy": "http://proxy.corp.example:3128", "noProxy": []any{".corp.example", "10.20.0.0/16"}},
			"networkPolicy": map[string]any{"enabled": true},
		},
		check: func(t *testing.T, r *rendered) {
			env := envValues(managerContainer(t, r.one(t, "Deployment", "tokensync").Object))
			if env["HTTPS_PROXY"] != "http://proxy.corp.example:3128" {
				t.Errorf("HTTPS_PROXY %q, want proxy.httpsProxy", env["HTTPS_PROXY"])
			}
			// client-go dials the API server by the IP the kubelet expands
			// $(KUBERNETES_SERVICE_HOST) to; the cluster's Services are
			// never behind the proxy.
			if want := "$(KUBERNETES_SERVICE_HOST),.svc,.cluster.local,.corp.example,10.20.0.0/16"; env["NO_PROXY"] != want {
				t.Errorf("NO_PROXY %q, want %q", env["NO_PROXY"], want)
			}
			np := r.one(t, "NetworkPolicy", "tokensync")
			if ports, want := egressPorts(np), []string{"3128/TCP", "443/TCP", "53/TCP", "53/UDP", "6443/TCP"}; !reflect.DeepEqual(ports, want) {
				t.Errorf("egress to %v, want %v (the proxy's port too)", ports, want)
			}
		},
	}, {
		name: "leaderElection.id",
		values: map[string]any{
			"leaderElection":   map[string]any{"id": "shard-a.tokensync.io"},
			"prometheusRule":   map[string]any{"enabled": true},
			"grafanaDashboard": map[string]any{"enabled": true},
		},
		check: func(t *testing.T, r *rendered) {
			if args := managerArgs(t, r); !slices.Contains(args, "--leader-election-id=shard-a.tokensync.io") {
				t.Errorf("args %v lack --leader-election-id=shard-a.tokensync.io", args)
			}
			rules := fmt.Sprint(r.one(t, "PrometheusRule", "tokensync").Object["spec"])
			dashboard, _, _ := unstructured.NestedString(r.one(t, "ConfigMap", "tokensync-dashboard").Object, "data", "tokensync.json")
			for what, text := range map[string]string{"the alerts": rules, "the dashboard": dashboard} {
				if strings.Contains(text, "tokensync.tokensync.io") || !strings.Contains(text, "shard-a.tokensync.io") {
					t.Errorf("%s do not name the Lease shard-a.tokensync.io (and only it)", what)
				}
			}
			var parsed map[string]any
			if err := json.Unmarshal([]byte(dashboard), &parsed); err != nil {
				t.Errorf("the dashboard is no longer JSON: %v", err)
			}
		},
	}, {
		name:   "topologySpreadConstraints",
		values: map[string]any{"topologySpreadConstraints": []any{map[string]any{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "DoNotSchedule", "labelSelector": map[string]any{"matchLabels": map[string]any{"team": "platform"}}}}},
		check: func(t *testing.T, r *rendered) {
			spread, _, _ := unstructured.NestedSlice(r.one(t, "Deployment", "tokensync").Object, "spec", "template", "spec", "topologySpreadConstraints")
			if s := fmt.Sprint(spread); s != "[map[labelSelector:map[matchLabels:map[team:platform]] maxSkew:1 topologyKey:topology.kubernetes.io/zone whenUnsatisfiable:DoNotSchedule]]" {
				t.Errorf("topologySpreadConstraints %s, want the value's, its labelSelector kept", s)
			}
		},
	}, {
		name:   "no topologySpreadConstraints",
		values: map[string]any{"topologySpreadConstraints": []any{}},
		check: func(t *testing.T, r *rendered) {
			if _, ok, _ := unstructured.NestedFieldNoCopy(r.one(t, "Deployment", "tokensync").Object, "spec", "template", "spec", "topologySpreadConstraints"); ok {
				t.Error("topologySpreadConstraints rendered with []")
			}
		},
	}, {
		name:   "image.digest",
		values: map[string]any{"image": map[string]any{"repository": "registry.example.com/tokensync", "tag": "v9", "digest": "sha256:" + strings.Repeat("ab", 32)}},
		check: func(t *testing.T, r *rendered) {
			if img := managerContainer(t, r.one(t, "Deployment", "tokensync").Object)["image"]; img != "registry.example.com/tokensync@sha256:"+strings.Repeat("ab", 32) {
				t.Errorf("image %v, want repository@digest", img)
			}
			if !strings.Contains(r.notes, "@sha256:") {
				t.Errorf("NOTES.txt does not name the image by its digest: %s", r.notes)
			}
		},
	}, {
		name:   "fullnameOverride",
		values: map[string]any{"fullnameOverride": "ts", "prometheusRule": map[string]any{"enabled": true}, "networkPolicy": map[string]any{"enabled": true}},
		check: func(t *testing.T, r *rendered) {
			checkNames(t, r, "ts", "tokensync")
		},
	}, {
		name:      "nameOverride",
		namespace: "ops",
		values:    map[string]any{"nameOverride": "tsync", "serviceMonitor": map[string]any{"enabled": true}},
		check: func(t *testing.T, r *rendered) {
			checkNames(t, r, "tokensync-tsync", "tsync")
		},
	}, {
		name: "everything",
		values: map[string]any{
			"replicaCount":              3,
			"rbac":                      map[string]any{"create": true, "rolloutRestart": false},
			"watchNamespaces":           []any{"team-a"},
			"allowedEndpoints":          []any{"aml=https://api.amlwatcher.com", "oauth2=sso.example.com"},
			"allowLoopbackEndpoints":    true,
			"allowedPrivateEndpoints":   []any{"idp.internal"},
			"allowPrivateEndpoints":     true,
			"requireCredentialsLabel":   false,
			"maxLoginsInFlight":         64,
			"extraArgs":                 []any{"--zap-log-level=debug"},
			"imagePullSecrets":          []any{map[string]any{"name": "registry"}},
			"nodeSelector":              map[string]any{"kubernetes.io/os": "linux"},
			"tolerations":               []any{map[string]any{"key": "dedicated", "operator": "Equal", "value": "ops", "effect": "NoSchedule"}},
			"affinity":                  map[string]any{"podAntiAffinity": map[string]any{"preferredDuringSchedulingIgnoredDuringExecution": []any{map[string]any{"weight": 100, "podAffinityTerm": map[string]any{"topologyKey": "kubernetes.io/hostname", "labelSelector": map[string]any{"matchLabels": map[string]any{"app.kubernetes.io/name": "tokensync"}}}}}}},
			"priorityClassName":         "system-cluster-critical",
			"topologySpreadConstraints": []any{map[string]any{"maxSkew": 2, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "ScheduleAnyway"}},
			"extraEnv":                  []any{map[string]any{"name": "SSL_CERT_DIR", "value": "/etc/ssl/private-ca"}},
			"extraVolumes":              []any{map[string]any{"name": "ca", "configMap": map[string]any{"name": "private-ca"}}},
			"extraVolumeMounts":         []any{map[string]any{"name": "ca", "mountPath": "/etc/ssl/private-ca", "readOnly": true}},
			"proxy":                     map[string]any{"httpsProxy": "https://proxy.corp.example", "noProxy": []any{"idp.internal"}, "clusterDomain": "k8s.corp.example"},
			"leaderElection":            map[string]any{"id": "everything.tokensync.io"},
			"crds":                      map[string]any{"enabled": true, "keep": false},
			"image":                     map[string]any{"repository": "registry.example.com/tokensync", "tag": "", "pullPolicy": "Always", "digest": "sha256:" + strings.Repeat("0f", 32)},
			"podAnnotations":            map[string]any{"example.com/team": "platform"},
			"podLabels":                 map[string]any{"team": "platform"},
			"serviceAccount":            map[string]any{"create": true, "name": "tokensync-sa", "annotations": map[string]any{"example.com/role": "x"}},
			"podDisruptionBudget":       map[string]any{"enabled": true, "maxUnavailable": "50%"},
			"serviceMonitor":            map[string]any{"enabled": true, "interval": "15s"},
			"prometheusRule":            map[string]any{"enabled": true, "labels": map[string]any{"role": "alert-rules"}},
			"grafanaDashboard":          map[string]any{"enabled": true, "namespace": "ops", "annotations": map[string]any{"grafana_folder": "Operators"}},
			"networkPolicy": map[string]any{"enabled": true, "apiServerPorts": []any{6443, 8443}, "apiServerCIDRs": []any{"10.0.0.1/32"},
				"metricsFrom": []any{map[string]any{"namespaceSelector": map[string]any{"matchLabels": map[string]any{"kubernetes.io/metadata.name": "monitoring"}}}},
				"extraEgress": []any{map[string]any{"ports": []any{map[string]any{"port": 8443, "protocol": "TCP"}}}}},
		},
		check: func(t *testing.T, r *rendered) {
			args := managerArgs(t, r)
			for _, want := range []string{"--leader-elect", "--namespaces=team-a", "--allowed-endpoints=aml=https://api.amlwatcher.com,oauth2=sso.example.com",
				"--allow-loopback-endpoints", "--allowed-private-endpoints=idp.internal", "--allow-private-endpoints",
				"--require-credentials-label=false", "--max-logins-in-flight=64", "--zap-log-level=debug", "--leader-election-id=everything.tokensync.io"} {
				if !slices.Contains(args, want) {
					t.Errorf("args %v lack %s", args, want)
				}
			}
			if n := len(r.find("Role", "tokensync-rollout-restart")) + len(r.find("ClusterRole", "tokensync-rollout-restart")); n != 0 {
				t.Error("the rollout-restart role is rendered with rbac.rolloutRestart false")
			}
			env := envValues(managerContainer(t, r.one(t, "Deployment", "tokensync").Object))
			if env["NO_PROXY"] != "$(KUBERNETES_SERVICE_HOST),.svc,.k8s.corp.example,idp.internal" || env["SSL_CERT_DIR"] != "/etc/ssl/private-ca" {
				t.Errorf("env %v: want NO_PROXY with proxy.clusterDomain and SSL_CERT_DIR", env)
			}
			if ports := egressPorts(r.one(t, "NetworkPolicy", "tokensync")); slices.Contains(ports, "80/TCP") || !slices.Contains(ports, "443/TCP") {
				t.Errorf("egress to %v: an https:// proxy without a port listens on 443", ports)
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

// checkCABundle: caBundle renders --ca-bundle-file naming the file its
// volume holds, and the volume (wantVolume: its key only, as ca.crt)
// mounted read-only as a directory (not a subPath, which the kubelet never
// updates), before any other. It returns the pod's volumes and the
// container's mounts.
func checkCABundle(t *testing.T, r *rendered, wantVolume string) (volumes, mounts []any) {
	t.Helper()
	d := r.one(t, "Deployment", "tokensync")
	const file = "--ca-bundle-file=/etc/tokensync-ca-bundle/ca.crt"
	if args := managerArgs(t, r); !slices.Contains(args, file) {
		t.Errorf("args %v lack %s", args, file)
	}
	if !managerHasFlag(t, "ca-bundle-file") {
		t.Error("the manager has no --ca-bundle-file")
	}
	mounts, _, _ = unstructured.NestedSlice(managerContainer(t, d.Object), "volumeMounts")
	volumes, _, _ = unstructured.NestedSlice(d.Object, "spec", "template", "spec", "volumes")
	if len(mounts) == 0 || fmt.Sprint(mounts[0]) != "map[mountPath:/etc/tokensync-ca-bundle name:tokensync-ca-bundle readOnly:true]" {
		t.Fatalf("volumeMounts %v: want the bundle's directory first, read-only", mounts)
	}
	if len(volumes) == 0 || fmt.Sprint(volumes[0]) != wantVolume {
		t.Fatalf("volumes %v: want %s first", volumes, wantVolume)
	}
	return volumes, mounts
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
		{"a misspelt crds key", map[string]any{"crds": map[string]any{"enabled": true, "keep": true, "keepCRDs": true}}, "keepCRDs"},
		{"crds.keep a string", map[string]any{"crds": map[string]any{"enabled": true, "keep": "yes"}}, "keep"},
		{"a misspelt extraEnv", map[string]any{"extraEnvs": []any{}}, "extraEnvs"},
		{"extraEnv with a misspelt field", map[string]any{"extraEnv": []any{map[string]any{"name": "A", "valueForm": map[string]any{}}}}, "valueForm"},
		{"extraEnv without a name", map[string]any{"extraEnv": []any{map[string]any{"value": "a"}}}, "name"},
		{"a misspelt extraVolumes", map[string]any{"extraVolume": []any{}}, "extraVolume"},
		{"extraVolumes without a name", map[string]any{"extraVolumes": []any{map[string]any{"emptyDir": map[string]any{}}}}, "name"},
		{"a misspelt extraVolumeMounts", map[string]any{"extraVolumesMounts": []any{}}, "extraVolumesMounts"},
		{"extraVolumeMounts with a misspelt field", map[string]any{"extraVolumeMounts": []any{map[string]any{"name": "a", "mountpath": "/a"}}}, "mountpath"},
		{"a misspelt proxy key", map[string]any{"proxy": map[string]any{"httpProxy": "http://proxy:3128"}}, "httpProxy"},
		{"proxy.httpsProxy not a URL", map[string]any{"proxy": map[string]any{"httpsProxy": "proxy.corp.example:3128"}}, "httpsProxy"},
		{"proxy.httpsProxy with credentials", map[string]any{"proxy": map[string]any{"httpsProxy": "http://user:pass@proxy:3128"}}, "httpsProxy"},
		{"proxy.noProxy a string", map[string]any{"proxy": map[string]any{"noProxy": ".corp.example,10.0.0.0/8"}}, "noProxy"},
		{"proxy.noProxy with a comma", map[string]any{"proxy": map[string]any{"noProxy": []any{".corp.example,10.0.0.0/8"}}}, "noProxy"},
		{"a misspelt topologySpreadConstraints", map[string]any{"topologySpreadConstraint": []any{}}, "topologySpreadConstraint"},
		{"topologySpreadConstraints without a topologyKey", map[string]any{"topologySpreadConstraints": []any{map[string]any{"maxSkew": 1, "whenUnsatisfiable": "ScheduleAnyway"}}}, "topologyKey"},
		{"a misspelt leaderElection key", map[string]any{"leaderElection": map[string]any{"id": "a", "name": "b"}}, "name"},
		{"leaderElection.id not a name", map[string]any{"leaderElection": map[string]any{"id": "Shard_A"}}, "id"},
		{"nameOverride not a name", map[string]any{"nameOverride": "Token_Sync"}, "nameOverride"},
		{"a misspelt fullnameOverride", map[string]any{"fullNameOverride": "ts"}, "fullNameOverride"},
		{"a misspelt caBundle", map[string]any{"caBundles": map[string]any{}}, "caBundles"},
		{"a misspelt caBundle source", map[string]any{"caBundle": map[string]any{"configmap": map[string]any{"name": "corp-ca", "key": "ca.crt"}}}, "configmap"},
		{"a misspelt caBundle field", map[string]any{"caBundle": map[string]any{"secret": map[string]any{"secretName": "corp-ca", "key": "ca.crt"}}}, "secretName"},
		{"caBundle from a ConfigMap and a Secret", map[string]any{"caBundle": map[string]any{
			"configMap": map[string]any{"name": "a", "key": "ca.crt"}, "secret": map[string]any{"name": "b", "key": "ca.crt"}}}, "caBundle"},
		{"caBundle without its key", map[string]any{"caBundle": map[string]any{"configMap": map[string]any{"name": "corp-ca"}}}, "key"},
		{"caBundle without a name", map[string]any{"caBundle": map[string]any{"secret": map[string]any{"key": "ca.crt"}}}, "name"},
		{"caBundle a file name", map[string]any{"caBundle": "/etc/ssl/corp-ca.pem"}, "caBundle"},
		{"caBundle's key a path", map[string]any{"caBundle": map[string]any{"configMap": map[string]any{"name": "corp-ca", "key": "certs/ca.crt"}}}, "key"},
		{"image.digest not a digest", map[string]any{"image": map[string]any{"repository": "r", "digest": "v0.1.0"}}, "digest"},
		{"a misspelt image.digest", map[string]any{"image": map[string]any{"repository": "r", "sha256": "sha256:" + strings.Repeat("ab", 32)}}, "sha256"},
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
	t.Run("proxy.noProxy without proxy.httpsProxy", func(t *testing.T) {
		_, err := renderChart(t, "tokensync", releaseNamespace, withImage(map[string]any{"proxy": map[string]any{"noProxy": []any{"idp.internal"}}}))
		if err == nil || !strings.Contains(err.Error(), "proxy.noProxy is set without proxy.httpsProxy") {
			t.Errorf("error %v, want proxy.noProxy is set without proxy.httpsProxy", err)
		}
	})
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
			"caBundle":         map[string]any{"secret": map[string]any{"name": "corp-ca", "key": "ca.crt"}},
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

// TestValuesAreDocumented: every value of values.schema.json (each key, and
// each key of an object value the schema closes) has a row in the README's
// values table: `key` or `key.sub`, or `.sub` in a row of `key.`.
func TestValuesAreDocumented(t *testing.T) {
	readme, err := os.ReadFile(repoFile("README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var cells []string
	inTable := false
	for _, line := range strings.Split(string(readme), "\n") {
		switch {
		case strings.HasPrefix(line, "| Value | Default | Meaning |"):
			inTable = true
		case inTable && !strings.HasPrefix(line, "|"):
			inTable = false
		case inTable:
			cells = append(cells, strings.Split(line, "|")[1])
		}
	}
	if len(cells) < 10 {
		t.Fatalf("the README's values table has %d rows", len(cells))
	}
	type property struct {
		Properties map[string]property `json:"properties"`
		// false, or a schema of the values of a map
		AdditionalProperties any `json:"additionalProperties"`
	}
	var schema property
	data, err := os.ReadFile(filepath.Join(chartDir, "values.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &schema); err != nil {
		t.Fatal(err)
	}
	documented := func(match func(cell string) bool) bool {
		return slices.ContainsFunc(cells, match)
	}
	for key, p := range schema.Properties {
		switch key {
		case "global": // Helm's, unused
			continue
		case "resources": // documented as a whole, as Kubernetes defines it
			p.Properties = nil
		}
		if !documented(func(c string) bool { return strings.Contains(c, "`"+key+"`") || strings.Contains(c, "`"+key+".") }) {
			t.Errorf("value %s is not in the README's values table", key)
		}
		if p.AdditionalProperties != false {
			continue
		}
		for sub := range p.Properties {
			if !documented(func(c string) bool {
				return strings.Contains(c, "`"+key+"."+sub+"`") || strings.Contains(c, "`"+key+".") && strings.Contains(c, "`."+sub+"`")
			}) {
				t.Errorf("value %s.%s is not in the README's values table", key, sub)
			}
		}
	}
}
