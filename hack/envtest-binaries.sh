#!/usr/bin/env bash
# Builds the envtest control plane (kube-apiserver and etcd) from the Go module
# proxy into bin/k8s/<version>/, because setup-envtest's prebuilt downloads are
# not reachable from our build machines. Idempotent: when both binaries exist
# and report the pinned versions, it does nothing.
#
# Prints the assets directory (for KUBEBUILDER_ASSETS) on stdout as its last line.
set -euo pipefail

KUBE_VERSION="${KUBE_VERSION:-1.37.2}"
ETCD_VERSION="${ETCD_VERSION:-3.6.16}"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="${root}/bin/k8s/${KUBE_VERSION}-linux-$(go env GOARCH)"
mkdir -p "${dest}"

log() { printf '%s\n' "$*" >&2; }

# Capture the version first: piping into grep -q under pipefail fails when
# grep exits before the binary has finished writing (SIGPIPE).
have_etcd() {
  local v
  [ -x "${dest}/etcd" ] && v="$("${dest}/etcd" --version 2>/dev/null)" && [[ ${v} == *"etcd Version: ${ETCD_VERSION}"* ]]
}
have_apiserver() {
  local v
  [ -x "${dest}/kube-apiserver" ] && v="$("${dest}/kube-apiserver" --version 2>/dev/null)" && [[ ${v} == "Kubernetes v${KUBE_VERSION}" ]]
}

# Each build happens in a throwaway wrapper module: `go install pkg@version`
# refuses both modules because their go.mod files carry replace directives.
wrapper() {
  local dir
  dir="$(mktemp -d "${TMPDIR:-/tmp}/tokensync-envtest.XXXXXX")"
  (cd "${dir}" && GOWORK=off go mod init tokensync.local/envtest-build >/dev/null 2>&1)
  echo "${dir}"
}

build_etcd() {
  local dir start
  start=$(date +%s)
  log "envtest: building etcd v${ETCD_VERSION} from the Go module proxy (about a minute the first time)..."
  dir="$(wrapper)"
  (
    cd "${dir}"
    export GOWORK=off GOFLAGS=-mod=mod CGO_ENABLED=0
    go get "go.etcd.io/etcd/server/v3@v${ETCD_VERSION}" >/dev/null 2>&1
    go build -trimpath -o "${dest}/etcd.tmp" go.etcd.io/etcd/server/v3
  )
  mv "${dest}/etcd.tmp" "${dest}/etcd"
  rm -rf "${dir}"
  log "envtest: etcd built in $(( $(date +%s) - start ))s"
}

build_apiserver() {
  local dir start gomod minor
  start=$(date +%s)
  log "envtest: building kube-apiserver v${KUBE_VERSION} from the Go module proxy (4-6 minutes the first time on 2 cores, seconds when cached)..."
  dir="$(wrapper)"
  minor="${KUBE_VERSION#*.}"; minor="${minor%%.*}"
  (
    cd "${dir}"
    export GOWORK=off GOFLAGS=-mod=mod CGO_ENABLED=0
    # k8s.io/kubernetes requires its staging modules at v0.0.0 (it replaces them
    # with ./staging paths in its own repo); pin each to the published release.
    gomod="$(go mod download -json "k8s.io/kubernetes@v${KUBE_VERSION}" | sed -n 's/.*"GoMod": "\(.*\)",*/\1/p')"
    awk '/^replace \(/{r=1; next} r && /^\)/{r=0} r && $1 ~ /^k8s.io\// && $3 ~ /staging/ {print $1}' "${gomod}" |
      sort -u | while read -r mod; do
        go mod edit -replace "${mod}=${mod}@v0.${KUBE_VERSION#*.}"
      done
    go get "k8s.io/kubernetes@v${KUBE_VERSION}" >/dev/null 2>&1
    # Both version packages, as Kubernetes' own build stamps them
    # (hack/lib/version.sh): kube-apiserver --version reads component-base's,
    # but up to 1.27 the /version that clients such as Helm read comes from
    # client-go/pkg/version (kube-aggregator's config).
    local pkg ldflags="-s -w"
    for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
      ldflags+=" -X ${pkg}.gitVersion=v${KUBE_VERSION} -X ${pkg}.gitMajor=1 -X ${pkg}.gitMinor=${minor} -X ${pkg}.buildDate=1970-01-01T00:00:00Z -X ${pkg}.gitTreeState=clean"
    done
    go build -trimpath -o "${dest}/kube-apiserver.tmp" -ldflags "${ldflags}" k8s.io/kubernetes/cmd/kube-apiserver
  )
  mv "${dest}/kube-apiserver.tmp" "${dest}/kube-apiserver"
  rm -rf "${dir}"
  log "envtest: kube-apiserver built in $(( $(date +%s) - start ))s"
}

# One build at a time: make test's two halves may ask at once on a fresh
# machine; the second waits for the first and finds the binaries built.
if command -v flock >/dev/null; then
  exec 9>"${dest}/.lock"
  flock 9
fi
have_etcd || build_etcd
have_apiserver || build_apiserver
echo "${dest}"
