#!/usr/bin/env bash
# make demo: a local control plane (the envtest kube-apiserver and etcd from
# bin/k8s/), fake providers and the operator built from main.go, with one
# TokenRequest per provider whose tokens live about a minute, so that
# refreshes can be watched. It keeps running until Ctrl-C, which stops every
# process it started.
#
# DEMO_ONESHOT=1 (make demo-oneshot, part of make test) runs the same with
# 20-second tokens, checks that every TokenRequest becomes Ready, that every
# token is refreshed, and that the force-refresh, broken-credential and
# metrics instructions printed in interactive mode work, then stops
# everything and exits 0, or 1 with the reason.
#
# The one-shot also checks, before the operator starts, that the API server
# enforces the CRDs' validation rules: every rule of config/crd is in the
# CRDs it stored (an API server without CEL validation drops them, and
# accepts the CRDs), it admits config/samples (server-side dry run), and it
# refuses a TokenRequest breaking a rule of each CEL library the rules call.
# make test-oldest runs the one-shot against the oldest Kubernetes the chart
# supports.
#
# Files go to bin/demo/: kubeconfig, logs and the binaries. The one-shot uses
# bin/demo-oneshot/ instead, so that make test never replaces the kubeconfig
# of a demo running in another terminal; DEMO_DIR names another (make
# test-oldest's, so that it can run beside make test).
#
# Environment: KUBE_VERSION, ETCD_VERSION (as make test), DEMO_ONESHOT,
# DEMO_TOKEN_LIFETIME (seconds; default 60, one-shot 20), DEMO_DIR.
set -Eeuo pipefail

KUBE_VERSION="${KUBE_VERSION:-1.37.2}"
ETCD_VERSION="${ETCD_VERSION:-3.6.16}"
# Not for the children: etcd reads ETCD_* variables as flags.
export -n KUBE_VERSION ETCD_VERSION

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${root}"

case "${DEMO_ONESHOT:-}" in
  1 | true | yes | on) oneshot=1 ;;
  "" | 0 | false | no | off) oneshot=0 ;;
  *) echo "demo: DEMO_ONESHOT must be 1 or 0, not ${DEMO_ONESHOT}" >&2; exit 2 ;;
esac

if ((oneshot)); then
  dir="${DEMO_DIR:-bin/demo-oneshot}"
  lifetime="${DEMO_TOKEN_LIFETIME:-20}"
  steps=10
else
  dir="${DEMO_DIR:-bin/demo}"
  lifetime="${DEMO_TOKEN_LIFETIME:-60}"
  steps=7
fi
[[ ${dir} == bin/* && ${dir} != *..* ]] || { echo "demo: DEMO_DIR must be a folder under bin/, not ${dir}" >&2; exit 2; }
[[ ${lifetime} =~ ^[1-9][0-9]*$ ]] || { echo "demo: DEMO_TOKEN_LIFETIME must be whole seconds, not ${lifetime}" >&2; exit 2; }

namespace=tokensync-demo
# One credentials Secret and TokenRequest <provider>-token per provider, in
# hack/demo/<provider>.yaml.
providers=()
for f in hack/demo/*.yaml; do
  p="$(basename "${f}" .yaml)"
  [[ ${p} == namespace ]] || providers+=("${p}")
done
kubeconfig="${dir}/kubeconfig"
# The fake logs in only these credentials, the ones in hack/demo/*.yaml, so
# that a credential broken by hand really fails; a provider not listed here
# accepts any well-formed credentials.
fake_valid=(
  --valid 'aml:email=demo@tokensync.example,password=demo-aml-password'
  --valid 'amplifi:channel=internet,userName=demo-user,password=demo-amplifi-password'
  --valid 'partner:accessKey=demo-access-key,secret=demo-secret'
  --valid 'oauth2:clientId=demo-client,clientSecret=demo-client-secret'
)
# Each demo TokenRequest sets refreshBefore: 20s; shorter-lived tokens are
# refreshed a third of their lifetime before expiry.
refresh_window=$((lifetime / 3 < 20 ? lifetime / 3 : 20))

export KUBECONFIG="${root}/${kubeconfig}"
# kubectl tokensync runs the plugin built into ${dir}/plugin/.
export PATH="${root}/${dir}/plugin:${PATH}"
# kubectl's discovery cache stays with the demo instead of ~/.kube/cache.
export KUBECACHEDIR="${root}/${dir}/kubectl-cache"

# --- output ---

now_us() { local t="${EPOCHREALTIME//[!0-9]/}"; echo $((10#${t})); }

since() {
  local us=$(($(now_us) - $1))
  printf '%d.%ds' $((us / 1000000)) $((us % 1000000 / 100000))
}

step_no=0
step_start=0
in_step=0
step() {
  step_no=$((step_no + 1))
  step_start=$(now_us)
  printf '==> [%d/%d] %s... ' "${step_no}" "${steps}" "$1"
  in_step=1
}

step_done() {
  printf 'done (%s)\n' "$(since "${step_start}")"
  in_step=0
}

end_step_line() {
  if ((in_step)); then
    printf '%s\n' "$1"
    in_step=0
  fi
}

cluster_up=0
started_names=()
started_pids=()
# kube-apiserver and etcd: envtest starts them in process groups of their
# own, so they are tracked by pid.
control_plane_pids=()

fail() {
  end_step_line FAILED
  printf 'demo: %s\n' "$*" >&2
  if ((cluster_up)); then
    {
      echo "--- kubectl get tokenrequests -o wide"
      kc get tokenrequests -o wide 2>&1 || true
      echo "--- Ready conditions"
      kc get tokenrequests -o jsonpath='{range .items[*]}{.metadata.name}: {.status.conditions[?(@.type=="Ready")].reason} {.status.conditions[?(@.type=="Ready")].message}{"\n"}{end}' 2>&1 |
        sed 's/: *$/: no Ready condition yet/' || true
      echo "--- last lines of ${dir}/manager.log"
      tail -n 10 "${dir}/manager.log" 2>/dev/null | cut -c1-400 || true
    } >&2
  fi
  if ((${#started_pids[@]} > 0)); then
    printf 'demo: logs are in %s/*.log\n' "${dir}" >&2
  fi
  exit 1
}

# In a subshell (command substitution, pipeline) an error only ends the
# subshell; the main shell reports it where the subshell's status fails it.
on_err() {
  [[ ${BASHPID} == "$$" ]] || exit "$1"
  fail "unexpected failure (status $1) at line $2: $3"
}
trap 'on_err $? ${LINENO} "${BASH_COMMAND}"' ERR

kc() { kubectl -n "${namespace}" "$@"; }

# --- processes ---

# Each long-running process is started in a session (and so a process group)
# of its own: Ctrl-C in the terminal then reaches only this script, which
# stops them in order (operator first, control plane last) rather than all
# at once. started_names and started_pids are declared with the output
# helpers, which read them.

start() {
  local name=$1 log=$2 pid stat fields
  shift 2
  setsid "$@" >"${log}" 2>&1 </dev/null &
  pid=$!
  started_names+=("${name}")
  started_pids+=("${pid}")
  printf '%s %s\n' "${name}" "${pid}" >>"${dir}/pids"
  # The child calls setsid a moment after the fork: until then its process
  # group is still the script's, and signalling the new group would miss it.
  for _ in {1..100}; do
    { read -r stat <"/proc/${pid}/stat"; } 2>/dev/null || break
    read -r -a fields <<<"${stat##*) }"
    [[ ${fields[2]} != "${pid}" && ${fields[0]} != Z ]] || break
    sleep 0.02
  done
}

pid_of() {
  local i
  for i in "${!started_names[@]}"; do
    if [[ ${started_names[i]} == "$1" ]]; then
      echo "${started_pids[i]}"
      return
    fi
  done
}

# procs_with ppid|pgrp N: the live (not zombie) processes whose parent or
# process group is N, read from /proc: CI machines may lack procps.
procs_with() {
  local f stat fields
  for f in /proc/[0-9]*/stat; do
    { read -r stat <"${f}"; } 2>/dev/null || continue
    # After the command name, which may hold spaces: state ppid pgrp ...
    read -r -a fields <<<"${stat##*) }"
    [[ ${fields[0]} != Z ]] || continue
    if [[ $1 == ppid && ${fields[1]} == "$2" || $1 == pgrp && ${fields[2]} == "$2" ]]; then
      f=${f#/proc/}
      echo "${f%/stat}"
    fi
  done
}

# group_alive PGID: whether any process of the group is alive.
group_alive() { [[ -n $(procs_with pgrp "$1") ]]; }

# alive PID: whether the process runs (and is not a zombie).
alive() {
  local stat
  { read -r stat <"/proc/$1/stat"; } 2>/dev/null && [[ ${stat##*) } != Z* ]]
}

# control_plane_alive PID: whether PID is still our kube-apiserver or etcd.
control_plane_alive() {
  [[ -r /proc/$1/cmdline ]] && tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -q "${root}/bin/k8s/\|^bin/k8s/"
}

# check_started: fail if a started process has exited.
check_started() {
  local i
  for i in "${!started_pids[@]}"; do
    if ! alive "${started_pids[i]}"; then
      end_step_line FAILED
      printf 'demo: %s exited unexpectedly; last lines of %s/%s.log:\n' "${started_names[i]}" "${dir}" "${started_names[i]}" >&2
      tail -n 15 "${dir}/${started_names[i]}.log" >&2 || true
      cluster_up=0 # its log says why; the cluster's state would only add noise
      fail "${started_names[i]} exited unexpectedly"
    fi
  done
}

# wait_for SECONDS WHAT COMMAND...: polls COMMAND until it succeeds.
wait_for() {
  local timeout=$1 what=$2 deadline
  shift 2
  deadline=$(($(now_us) + timeout * 1000000))
  until "$@"; do
    check_started
    (($(now_us) < deadline)) || fail "timed out after ${timeout}s waiting for ${what}"
    sleep 0.2
  done
}

# stop_group NAME PGID SECONDS: SIGTERM, then SIGKILL after SECONDS.
stop_group() {
  local name=$1 pgid=$2 timeout=$3 deadline
  kill -TERM -- "-${pgid}" 2>/dev/null || true
  deadline=$(($(now_us) + timeout * 1000000))
  while group_alive "${pgid}" && (($(now_us) < deadline)); do
    sleep 0.1
  done
  if group_alive "${pgid}"; then
    printf '\ndemo: %s did not stop within %ss; killing it\n' "${name}" "${timeout}" >&2
    kill -KILL -- "-${pgid}" 2>/dev/null || true
    sleep 0.2
  fi
  wait "${pgid}" 2>/dev/null || true
}

cleanup() {
  local status=$? i pid left=()
  trap '' INT TERM HUP
  trap - ERR
  set +e
  if ((status > 128)); then end_step_line interrupted; else end_step_line FAILED; fi
  if ((${#started_pids[@]} > 0)); then
    local names="" stop_start timeout
    for ((i = ${#started_names[@]} - 1; i >= 0; i--)); do names+="${names:+, }${started_names[i]}"; done
    printf '==> Stopping %s... ' "${names}"
    stop_start=$(now_us)
    for ((i = ${#started_pids[@]} - 1; i >= 0; i--)); do
      timeout=15
      # The control plane stops kube-apiserver and etcd itself (up to 20s each).
      [[ ${started_names[i]} != controlplane ]] || timeout=50
      stop_group "${started_names[i]}" "${started_pids[i]}" "${timeout}"
    done
    for pid in "${control_plane_pids[@]}"; do
      if control_plane_alive "${pid}"; then
        kill -KILL "${pid}" 2>/dev/null
      fi
    done
    # The control plane deletes it when it stops, unless it was killed.
    rm -f "${kubeconfig}"
    sleep 0.1
    for i in "${!started_pids[@]}"; do
      group_alive "${started_pids[i]}" && left+=("${started_names[i]} (process group ${started_pids[i]})")
    done
    for pid in "${control_plane_pids[@]}"; do
      control_plane_alive "${pid}" && left+=("pid ${pid}")
    done
    if ((${#left[@]} == 0)); then
      printf 'done (%s); no process left\n' "$(since "${stop_start}")"
      rm -f "${dir}/pids"
    else
      printf 'FAILED\ndemo: still running: %s\n' "${left[*]}" >&2
      ((status != 0)) || status=1
    fi
  fi
  exit "${status}"
}

trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# --- HTTP on loopback, without curl ---

# http_get PORT PATH: prints the body of a 200 answer; fails otherwise.
http_get() {
  local fd response
  { exec {fd}<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || return 1
  printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1:%s\r\n\r\n' "$2" "$1" >&"${fd}"
  response=$(cat <&"${fd}")
  exec {fd}>&-
  [[ ${response} == "HTTP/1."?" 200 "* ]] || return 1
  printf '%s\n' "${response#*$'\r\n\r\n'}"
}

# free_port: a loopback port nobody listens on, below the ephemeral range.
free_port() {
  local port
  for _ in {1..100}; do
    port=$((20000 + RANDOM % 12000))
    if ! { : <>"/dev/tcp/127.0.0.1/${port}"; } 2>/dev/null && [[ " $* " != *" ${port} "* ]]; then
      echo "${port}"
      return
    fi
  done
  return 1
}

# --- the demo ---

command -v go >/dev/null || fail "go is not on PATH"
command -v kubectl >/dev/null || fail "kubectl is not on PATH (https://kubernetes.io/docs/tasks/tools/)"
for tool in setsid flock; do
  command -v "${tool}" >/dev/null || fail "${tool} (util-linux) is not on PATH"
done

mkdir -p "${dir}"
exec {lock_fd}>"${dir}/.lock"
if ! flock -n "${lock_fd}"; then
  if ((oneshot)); then
    echo "==> Another one-shot demo is running in this tree; waiting for it to finish (up to 10 minutes)..."
    flock -w 600 "${lock_fd}" || fail "another one-shot demo still holds ${dir}/.lock after 10 minutes"
  else
    fail "another make demo is running in this tree (it holds ${dir}/.lock; its processes are listed in ${dir}/pids): stop it with Ctrl-C first"
  fi
fi
rm -f "${dir}/pids" "${dir}"/*.log

total_start=$(now_us)
assets_guess="bin/k8s/${KUBE_VERSION}-linux-$(go env GOARCH)"
if [[ -x ${assets_guess}/kube-apiserver && -x ${assets_guess}/etcd ]]; then
  step "Checking envtest binaries (kube-apiserver v${KUBE_VERSION}, etcd v${ETCD_VERSION}) in ${assets_guess}"
else
  step "Building envtest binaries kube-apiserver v${KUBE_VERSION} and etcd v${ETCD_VERSION} into ${assets_guess}: the first time takes a few minutes, then they are cached"
fi
# The script's progress (stderr) goes to the terminal on lines of its own,
# its last stdout line is the assets directory.
assets="$({ KUBE_VERSION="${KUBE_VERSION}" ETCD_VERSION="${ETCD_VERSION}" hack/envtest-binaries.sh 2>&1 >&3 3>&- |
  awk 'NR == 1 { printf "\n" } { print "    " $0; fflush() }' >&2; } 3>&1 | tail -n 1)" ||
  fail "hack/envtest-binaries.sh failed (see above)"
[[ -x ${assets}/kube-apiserver && -x ${assets}/etcd ]] || fail "hack/envtest-binaries.sh did not produce kube-apiserver and etcd"
step_done

step "Building the manager (main.go), fake providers, control plane launcher and kubectl plugin into ${dir}/"
# Static and -trimpath, as the image and make build build it: the build
# cache then serves these builds and make test's others alike.
CGO_ENABLED=0 go build -trimpath -o "${dir}/manager" .
CGO_ENABLED=0 go build -trimpath -o "${dir}/" ./hack/fakeproviders ./hack/demo/controlplane
# As make plugin builds it; a module of its own.
CGO_ENABLED=0 go -C cmd/kubectl-tokensync build -trimpath -o "${root}/${dir}/plugin/kubectl-tokensync" .
step_done

step "Starting local control plane (kube-apiserver v${KUBE_VERSION}, etcd v${ETCD_VERSION}) on 127.0.0.1, kubeconfig ${kubeconfig}"
rm -f "${kubeconfig}"
start controlplane "${dir}/controlplane.log" \
  "${dir}/controlplane" --kubeconfig-out "${kubeconfig}" --assets "${assets}" --namespace "${namespace}" \
  --apiserver-log "${dir}/kube-apiserver.log" --etcd-log "${dir}/etcd.log"
wait_for 120 "the control plane to write ${kubeconfig} (see ${dir}/controlplane.log)" test -s "${kubeconfig}"
mapfile -t control_plane_pids < <(procs_with ppid "$(pid_of controlplane)")
api_ready() { kubectl get --raw /readyz >/dev/null 2>&1; }
wait_for 30 "kube-apiserver to be ready" api_ready
cluster_up=1
step_done

step "Installing the CRDs (config/crd) and namespace ${namespace}"
kubectl apply -k config/crd >/dev/null
kubectl apply -f hack/demo/namespace.yaml >/dev/null
kubectl wait --for condition=Established crd/tokenrequests.tokensync.io crd/clustertokenrequests.tokensync.io --timeout=60s >/dev/null
step_done

# cel_rules: the CEL rules of the CRDs in JSON on stdin, one JSON string a
# line, sorted; none is no error.
cel_rules() { { grep -o '"rule": "\([^"\\]\|\\.\)*"' || true; } | LC_ALL=C sort; }

# refused WHY MESSAGE YAML: the TokenRequest YAML, which breaks one rule,
# must be refused by a server-side dry run with the rule's MESSAGE.
refused() {
  local why=$1 message=$2 out
  if out="$(kc apply --dry-run=server -f - <<<"$3" 2>&1)"; then
    fail "the API server admitted a TokenRequest with ${why}; the CRD's rule should refuse it (${message})"
  fi
  [[ ${out} == *"${message}"* ]] ||
    fail "a TokenRequest with ${why} was refused, but not by the rule that says \"${message}\": $(head -c 600 <<<"${out}")"
}

# bad_tokenrequest PROVIDER SPEC: a TokenRequest of PROVIDER with the
# fields in SPEC (YAML indented by 2) added to its spec.
bad_tokenrequest() {
  printf 'apiVersion: tokensync.io/v1alpha1\nkind: TokenRequest\nmetadata:\n  name: refused\nspec:\n  provider: %s\n  credentialsSecretRef:\n    name: partner-credentials\n%s\n' "$1" "$2"
}

if ((oneshot)); then
  step "Checking that the API server enforces the CRDs' validation rules (CEL): stored, samples admitted, broken rules refused"
  crd_files=(config/crd/bases/*.yaml)
  # Both sides written by kubectl from what it read, so that they compare.
  want="$(for f in "${crd_files[@]}"; do kubectl create --dry-run=client -o json -f "${f}"; done | cel_rules)"
  have="$(for f in "${crd_files[@]}"; do kubectl get -o json -f "${f}"; done | cel_rules)"
  [[ -n ${want} ]] || fail "found no x-kubernetes-validations rule in ${crd_files[*]}"
  if [[ ${have} != "${want}" ]]; then
    fail "the API server stored $(grep -c . <<<"${have}" || true) of the $(grep -c . <<<"${want}") CEL rules of ${crd_files[*]}: it does not enforce the others (Kubernetes before 1.25 drops them unless the CustomResourceValidationExpressions feature gate is on)"
  fi
  # Every TokenRequest and ClusterTokenRequest of config/samples (their
  # Secrets, some in namespaces the demo lacks, play no part in this).
  samples="$(awk 'BEGIN { RS = "\n---\n" } /(^|\n)kind: (Cluster)?TokenRequest(\n|$)/ { print; print "---" }' config/samples/*.yaml)"
  [[ $(grep -c '^kind: ClusterTokenRequest$' <<<"${samples}") -ge 1 && $(grep -c '^kind: TokenRequest$' <<<"${samples}") -ge 1 ]] ||
    fail "found no TokenRequest or no ClusterTokenRequest in config/samples"
  out="$(kc apply --dry-run=server -f - <<<"${samples}" 2>&1)" ||
    fail "the API server refused config/samples (server-side dry run): $(head -c 600 <<<"${out}")"
  # One rule for each CEL library the rules call, beyond the standard ones.
  refused "an endpoint without a host name (Kubernetes' URL library: isURL, url().getHostname())" \
    'spec.endpoint must be a valid URL with a host name' \
    "$(bad_tokenrequest partner '  endpoint: https://:8443')"
  refused "a Host header spelt HOST (the strings extension: lowerAscii)" \
    'spec.http.headers must not set Host' \
    "$(bad_tokenrequest http '  endpoint: https://login.example.com
  http:
    path: /login
    headers:
      HOST: login.example.com
    token:
      jsonPointer: /token
    expiry:
      lifetime: 1h')"
  refused "an unclosed template action (the strings extension: lastIndexOf)" \
    'spec.secretTemplate.data has a template whose last {{ action is not closed' \
    "$(bad_tokenrequest partner '  endpoint: https://partner.example.com
  secretTemplate:
    data:
      Authorization: "Bearer {{ .token"')"
  refused "refreshBefore 5s (duration())" 'spec.refreshBefore must be at least 10s' \
    "$(bad_tokenrequest partner '  endpoint: https://partner.example.com
  refreshBefore: 5s')"
  refused "user-info in the endpoint (regular expressions: matches())" 'spec.endpoint must not contain user-info' \
    "$(bad_tokenrequest partner '  endpoint: https://user:pass@partner.example.com')"
  step_done
fi

step "Starting fake providers (${providers[*]}; tokens live ${lifetime}s; log ${dir}/fakeproviders.log)"
rm -f "${dir}/providers-url"
start fakeproviders "${dir}/fakeproviders.log" \
  "${dir}/fakeproviders" --addr 127.0.0.1:0 --url-file "${dir}/providers-url" --lifetime "${lifetime}s" "${fake_valid[@]}"
wait_for 20 "the fake providers to listen" test -s "${dir}/providers-url"
providers_url="$(<"${dir}/providers-url")"
step_done

metrics_port=$(free_port) || fail "no free loopback port for the metrics"
probe_port=$(free_port "${metrics_port}") || fail "no free loopback port for the health probes"
step "Starting the operator (metrics on http://127.0.0.1:${metrics_port}/metrics; log ${dir}/manager.log)"
start manager "${dir}/manager.log" \
  "${dir}/manager" --metrics-bind-address="127.0.0.1:${metrics_port}" --metrics-secure=false \
  --allow-loopback-endpoints \
  --health-probe-bind-address="127.0.0.1:${probe_port}" --operator-namespace="${namespace}" --zap-encoder=console --zap-time-encoding=iso8601 --zap-stacktrace-level=panic
manager_ready() { http_get "${probe_port}" /readyz >/dev/null; }
wait_for 60 "the operator to be ready (http://127.0.0.1:${probe_port}/readyz)" manager_ready
step_done

step "Applying one credentials Secret and TokenRequest per provider (hack/demo/) and waiting until they are Ready"
for p in "${providers[@]}"; do
  sed "s#endpoint: PROVIDERS_URL#endpoint: ${providers_url}#" "hack/demo/${p}.yaml"
  echo "---"
done | kubectl apply -f - >/dev/null
if ! kc wait --for=condition=Ready tokenrequests --all --timeout=90s >/dev/null 2>&1; then
  fail "not every TokenRequest became Ready within 90s"
fi
step_done

echo
kc get tokenrequests -o wide
echo
kubectl tokensync status -A
echo
for p in "${providers[@]}"; do
  secret="$(kc get tokenrequest "${p}-token" -o jsonpath='{.status.secretName}')"
  printf 'Secret %s (TokenRequest %s-token):\n' "${secret}" "${p}"
  # shellcheck disable=SC2016 # a Go template, not shell
  kc get secret "${secret}" -o go-template='{{range $k, $v := .data}}{{$k}} {{$v}}{{"\n"}}{{end}}' |
    while read -r key value; do
      value="$(printf '%s' "${value}" | base64 -d)"
      if [[ ${key} == token && ${#value} -gt 24 ]]; then
        value="${value:0:16}...${value: -6} (${#value} characters)"
      fi
      printf '  %-10s %s\n' "${key}" "${value}"
    done
done
echo

# --- one-shot checks ---

# status_lines: one line per TokenRequest: name, target Secret,
# lastRefreshTime, Ready status.
status_lines() {
  kc get tokenrequests -o jsonpath='{range .items[*]}{.metadata.name} {.status.secretName} {.status.lastRefreshTime} {.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}'
}

# token_of SECRET: the token, base64 as stored (only compared).
token_of() { kc get secret "$1" -o jsonpath='{.data.token}'; }

# ready_is STATUS/REASON: partner-token's Ready condition.
ready_is() {
  [[ $(kc get tokenrequest partner-token -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}/{.status.conditions[?(@.type=="Ready")].reason}') == "$1" ]]
}

if ((oneshot)); then
  step "Waiting for every token to be refreshed (tokens live ${lifetime}s, refreshed about ${refresh_window}s before expiry)"
  declare -A first_refresh=() first_token=() refreshed_after=()
  missing=()
  while read -r name secret refreshed _; do
    first_refresh[${name}]=${refreshed}
    first_token[${name}]=$(token_of "${secret}")
  done < <(status_lines)
  wait_start=$(now_us)
  deadline=$((wait_start + (2 * lifetime + 20) * 1000000))
  while ((${#refreshed_after[@]} < ${#providers[@]})); do
    check_started
    while read -r name secret refreshed ready; do
      [[ -n ${refreshed_after[${name}]:-} ]] && continue
      if [[ ${refreshed} != "${first_refresh[${name}]}" && ${ready} == True && $(token_of "${secret}") != "${first_token[${name}]}" ]]; then
        refreshed_after[${name}]=$(since "${wait_start}")
      fi
    done < <(status_lines)
    if (($(now_us) > deadline)); then
      for p in "${providers[@]}"; do
        [[ -n ${refreshed_after[${p}-token]:-} ]] || missing+=("${p}-token")
      done
      fail "not refreshed within $((2 * lifetime + 20))s: ${missing[*]} (a ${lifetime}s token is due after about $((lifetime - refresh_window))s)"
    fi
    sleep 0.5
  done
  step_done
  for name in "${!refreshed_after[@]}"; do
    printf '  %s refreshed after %s\n' "${name}" "${refreshed_after[${name}]}"
  done | sort

  step "Checking the printed instructions: force a refresh, break and mend a credential, read the metrics"
  # Each of these logs in once the minimum login interval (10 s, failed
  # attempts included) since partner-token's last login has passed.
  before="$(token_of partner-token)"
  kubectl tokensync renew partner-token --wait --timeout 30s >/dev/null ||
    fail "kubectl tokensync renew partner-token --wait got no new token (it says why above)"
  [[ $(token_of partner-token) != "${before}" ]] || fail "kubectl tokensync renew partner-token --wait succeeded, but the Secret holds the same token"
  kc patch secret partner-credentials -p '{"stringData":{"secret":"wrong"}}' >/dev/null
  wait_for 30 "partner-token to turn Ready=False with reason AuthenticationFailed after its credential was broken" ready_is False/AuthenticationFailed
  kc patch secret partner-credentials -p '{"stringData":{"secret":"demo-secret"}}' >/dev/null
  wait_for 30 "partner-token to be Ready again after its credential was mended" ready_is True/TokenIssued
  metrics="$(http_get "${metrics_port}" /metrics)" || fail "http://127.0.0.1:${metrics_port}/metrics did not answer 200"
  for p in "${providers[@]}"; do
    grep -q "^tokensync_tokenrequest_ready{.*name=\"${p}-token\".*} 1" <<<"${metrics}" ||
      fail "the metrics do not show ${p}-token as ready (tokensync_tokenrequest_ready)"
  done
  grep -q '^tokensync_logins_total{.*result="AuthenticationFailed"' <<<"${metrics}" ||
    fail "the metrics do not count the failed login (tokensync_logins_total{result=\"AuthenticationFailed\"})"
  step_done

  echo
  kubectl tokensync status -A
  echo
  printf '==> One-shot demo passed: %d TokenRequests Ready, every token refreshed, instructions checked (%s in all)\n' \
    "${#providers[@]}" "$(since "${total_start}")"
  exit 0
fi

cat <<EOF
The demo is running: tokens live ${lifetime}s and are refreshed about ${refresh_window}s before they expire.
From another terminal:
  export KUBECONFIG=${root}/${kubeconfig}    # its default namespace is ${namespace}
  export PATH=${root}/${dir}/plugin:\$PATH      # kubectl tokensync (make plugin builds it into bin/)
  kubectl get tokreq -w                      # watch the refreshes; -o wide adds Reason and Next Refresh
  kubectl tokensync status                   # expiry and next refresh from now; status partner-token for the detail
  kubectl tokensync renew partner-token --wait   # force a refresh (the tokensync.io/force-refresh annotation; one login per 10 s at most)
  kubectl tokensync inspect secret partner-token # what the Secret holds, the JWT's claims, never the token
  kubectl patch secret partner-credentials -p '{"stringData":{"secret":"wrong"}}'   # break a credential:
                                             #   Ready=False, reason AuthenticationFailed (kubectl describe tokreq)
  kubectl patch secret partner-credentials -p '{"stringData":{"secret":"demo-secret"}}'   # mend it: Ready within 10 s
  curl -s http://127.0.0.1:${metrics_port}/metrics | grep ^tokensync_    # metrics
Logs: ${dir}/{manager,fakeproviders,controlplane,kube-apiserver,etcd}.log
Press Ctrl-C to stop everything.
EOF

# Ctrl-C is now the way to stop the demo, not an interruption: exit 0.
trap 'exit 0' INT
while true; do
  wait -n "${started_pids[@]}" || true
  check_started
done
