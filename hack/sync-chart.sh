#!/usr/bin/env bash
# Copies into the Helm chart what it shares with config/, so that each fact
# has one source (make manifests runs it; make test fails when a copy is
# stale, and hack/chart's tests compare them too):
#   config/crd/bases/*.yaml         -> charts/tokensync/files/crds/    (every CRD)
#   config/rbac/role.yaml           -> charts/tokensync/files/rbac/manager-role.yaml (controller-gen's rules)
#   config/rbac/rollout-restart/role.yaml -> .../files/rbac/rollout-restart-role.yaml
#   config/rbac/*_role.yaml         -> .../files/rbac/                 (leader election, metrics, editor, viewer)
#   config/prometheus/prometheusrule.yaml -> .../files/prometheusrule.yaml (the alerts)
#   config/grafana/tokensync.json   -> .../files/grafana/tokensync.json (the dashboard)
# The chart's templates read the CRDs, rules, alerts and dashboard from
# files/. The CRDs are rendered by templates/crds.yaml, not installed from a
# crds/ directory: Helm installs crds/ on the first install only and never
# upgrades them; a crds/ left behind would also clash with the templates.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
chart="${root}/charts/tokensync"
cd "${root}"

rm -rf "${chart}/crds" "${chart}/files"
mkdir -p "${chart}/files/crds" "${chart}/files/rbac" "${chart}/files/grafana"
cp config/crd/bases/*.yaml "${chart}/files/crds/"
cp config/rbac/role.yaml "${chart}/files/rbac/manager-role.yaml"
cp config/rbac/rollout-restart/role.yaml "${chart}/files/rbac/rollout-restart-role.yaml"
cp config/rbac/*_role.yaml "${chart}/files/rbac/"
cp config/prometheus/prometheusrule.yaml "${chart}/files/prometheusrule.yaml"
cp config/grafana/tokensync.json "${chart}/files/grafana/tokensync.json"
