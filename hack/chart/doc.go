// Package chart tests the Helm chart charts/tokensync, the alerts of
// config/prometheus and the dashboard of config/grafana. It is a Go module of
// its own, so that Helm and Prometheus stay out of the operator's go.mod.
//
//   - chart_test.go: the chart rendered through Helm's Go SDK (as helm
//     template) for each set of values, every object applied by server-side
//     dry run to a real API server; values.schema.json refuses wrong values;
//     the chart's copies of config/ (CRDs, RBAC rules, alerts, dashboard)
//     are identical to their sources.
//   - crds_test.go: the chart renders config/crd/bases's CRDs from
//     templates (helm.sh/resource-policy: keep); on a control plane of its
//     own, Helm installs the chart of fa45ebb (testdata/chart-fa45ebb),
//     helm upgrade --take-ownership applies this tree's CRDs, helm
//     uninstall leaves the CRDs and TokenRequests; make undeploy keeps the
//     CRDs, make uninstall lists what goes and deletes them.
//   - rbac_test.go: the manager, built from the tree, runs as the chart's
//     ServiceAccount with only the chart's RBAC, on an API server with
//     OwnerReferencesPermissionEnforcement, cluster-wide and with
//     watchNamespaces, and a TokenRequest becomes Ready.
//   - monitoring_test.go: every alert expression and dashboard query parses
//     with Prometheus's PromQL parser and names only metrics (and label
//     values) a running manager exports, read from its /metrics.
//   - prometheusrule_test.go: each alert evaluated by Prometheus's rule
//     evaluation (rules.AlertingRule, for included) over synthetic series
//     loaded with promqltest: when it fires and when it must not.
//   - kubeversion_test.go: the chart's kubeVersion is the oldest Kubernetes
//     make test-oldest tries (OLDEST_KUBE_VERSION), admits providers'
//     versions (v1.30.2-eks-…) and refuses older ones; the README and
//     docs/compatibility.md state the same minimum.
//   - modules_test.go: the modules this one shares with the operator are at
//     the operator's versions (so that a cold make test compiles little here).
//
// helm_test.go renders the chart and runs Helm's install, upgrade and
// uninstall; manager_test.go runs the manager;
// main_test.go starts the control plane (envtest, as the operator's own tests).
package chart
