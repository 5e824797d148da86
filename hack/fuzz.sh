#!/usr/bin/env bash
# Runs every fuzz target in the module, one after another, for FUZZTIME each
# (the first argument, default 75s), and stops at the first crash.
#
#   hack/fuzz.sh 75s        # what `make fuzz` runs
#   hack/fuzz.sh 10s        # a quick pass
#
# Targets are found with `go test -list`, in the packages whose test files
# declare a `func Fuzz...`; packages without one are not listed, since listing
# runs a package's TestMain (the controllers' starts a control plane).
# A crash leaves its input in the package's testdata/fuzz/<Target>/, where
# `go test -run '<Target>/<file>' ./pkg` replays it; commit it with the fix so
# it stays a regression seed.
set -euo pipefail

fuzztime="${1:-75s}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${root}"

log() { printf '%s\n' "$*" >&2; }

# Packages with a fuzz target: import path and directory, from go list.
candidates=()
while read -r pkg dir files; do
  for f in ${files}; do
    if grep -q '^func Fuzz[A-Z0-9_]' "${dir}/${f}" 2>/dev/null; then
      candidates+=("${pkg}")
      break
    fi
  done
done < <(go list -f '{{.ImportPath}} {{.Dir}} {{join .TestGoFiles " "}} {{join .XTestGoFiles " "}}' ./...)

targets=() # "pkg name"
for pkg in "${candidates[@]}"; do
  # -list prints the matching names, then an "ok" line; a package that does
  # not build fails the script here rather than losing its targets.
  listed="$(go test -list '^Fuzz' "${pkg}")"
  while read -r name; do
    [ -n "${name}" ] && targets+=("${pkg} ${name}")
  done <<<"$(grep -E '^Fuzz[A-Za-z0-9_]*$' <<<"${listed}" || true)"
done

if [ "${#targets[@]}" -eq 0 ]; then
  log "fuzz: no fuzz targets found"
  exit 1
fi
log "fuzz: ${#targets[@]} targets, ${fuzztime} each"

# run_target fuzzes one target, its output in $1; it fails as go test does.
run_target() {
  go test -run '^$' -fuzz "^${name}\$" -fuzztime "${fuzztime}" "${pkg}" >"$1" 2>&1
}

# coordinator_race tells, from a failed run's output, Go's own fuzzing
# coordinator race at the end of -fuzztime (golang/go#75804, fixed in Go
# 1.27): a bare "context deadline exceeded" with no failing input written.
# It happens on loaded machines and says nothing about the code.
coordinator_race() {
  grep -q 'context deadline exceeded' "$1" && ! grep -q 'Failing input written to' "$1"
}

summary=()
status=0
start_all=${SECONDS}
for t in "${targets[@]}"; do
  read -r pkg name <<<"${t}"
  log ""
  log "=== ${name} (${pkg})"
  out="$(mktemp "${TMPDIR:-/tmp}/tokensync-fuzz.XXXXXX")"
  start=${SECONDS}
  result="ok"
  if ! run_target "${out}"; then
    result="FAIL"
    if coordinator_race "${out}"; then
      log "fuzz: ${name} stopped with Go's fuzzing coordinator race (no failing input); running it once more"
      if run_target "${out}"; then
        result="ok*"
      fi
    fi
  fi
  if [ "${result}" = "FAIL" ]; then status=1; fi
  elapsed=$((SECONDS - start))
  # The last progress line: "fuzz: elapsed: 1m15s, execs: 123 (1/sec), new interesting: 2 (total: 9)";
  # its rate is the last interval's, often 0, so it is left out.
  progress="$(grep -E '^fuzz: elapsed' "${out}" | tail -n 1 | sed -E 's/^fuzz: elapsed: [^,]*, //; s/ \([0-9]+\/sec\)//' || true)"
  summary+=("$(printf '%-4s  %-28s %-56s %4ss  %s' "${result}" "${name}" "${pkg}" "${elapsed}" "${progress}")")
  if [ "${result}" = "FAIL" ]; then
    cat "${out}" >&2
    rm -f "${out}"
    log ""
    log "fuzz: ${name} in ${pkg} failed; a crashing input, if one was found, is saved under that package's testdata/fuzz/${name}/"
    break
  fi
  tail -n 3 "${out}" >&2
  rm -f "${out}"
done

echo ""
echo "fuzz summary (fuzztime ${fuzztime} per target, $((SECONDS - start_all))s in all):"
for line in "${summary[@]}"; do
  echo "  ${line}"
done
if [ "${status}" -ne 0 ]; then
  echo "fuzz: FAILED ($(( ${#targets[@]} - ${#summary[@]} )) targets not run)"
else
  echo "fuzz: all ${#targets[@]} targets passed"
fi
if printf '%s\n' "${summary[@]}" | grep -q '^ok\*'; then
  echo "(ok*: passed when run again after Go's fuzzing coordinator race, golang/go#75804)"
fi
exit "${status}"
