#!/usr/bin/env bash
# Builds the manager as the Dockerfile does, without Docker: from exactly the
# files its COPY lines take from the build context, in a temporary
# directory, with the RUN line's own go build command. A folder the build
# needs that the Dockerfile does not copy (or .dockerignore leaves out) fails
# the check, as it would fail docker build.
#
#   hack/check-dockerfile.sh                            # what make test runs
#   DOCKERFILE=/tmp/Dockerfile hack/check-dockerfile.sh # another Dockerfile, same context
#
# As with BuildKit, a <Dockerfile>.dockerignore next to the Dockerfile takes
# the place of the context's .dockerignore.
#
# It follows the builder stage (the first FROM up to the next): WORKDIR, ARG,
# ENV, COPY, and the RUN lines that run `go build`. The other RUN lines (go
# mod download) only fill the module cache, which the check takes from this
# machine (or the Go module proxy). Then it checks that every file a later
# stage copies --from the builder exists. Anything else it does not
# understand (ADD, COPY from a URL, wildcards or variables) fails the check
# rather than being guessed at.
#
# The build context is the repository's files as git lists them (tracked,
# and new ones not ignored), less what .dockerignore excludes: what a fresh
# clone with your changes would send, not build outputs lying in the tree.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dockerfile="${DOCKERFILE:-${root}/Dockerfile}"
fail() {
  printf 'check-dockerfile: %s\n' "$*" >&2
  exit 1
}
[[ -f ${dockerfile} ]] || fail "no Dockerfile at ${dockerfile}"

tmp="$(mktemp -d "${TMPDIR:-/tmp}/tokensync-dockerfile.XXXXXX")"
trap 'rm -rf "${tmp}"' EXIT
fs="${tmp}/builder" # the builder stage's filesystem
mkdir -p "${fs}"

# --- the build context ---

# glob_regex PATTERN: the regular expression for a .dockerignore pattern,
# matching a path or any path below it (as Docker's patternmatcher: * and ?
# stop at a slash, ** crosses them).
glob_regex() {
  local re
  re="$(printf '%s' "$1" | sed -e 's/[.+(){}|^$]/\\&/g' -e 's#\*\*/#\x01#g' -e 's#\*\*#\x02#g' \
    -e 's#\*#[^/]*#g' -e 's#?#[^/]#g' -e 's#\x01#(.*/)?#g' -e 's#\x02#.*#g')"
  printf '^%s(/.*)?$' "${re}"
}

ignorefile="${dockerfile}.dockerignore"
[[ -f ${ignorefile} ]] || ignorefile="${root}/.dockerignore"
ignore_re=() ignore_neg=()
if [[ -f ${ignorefile} ]]; then
  while IFS= read -r pattern || [[ -n ${pattern} ]]; do
    pattern="${pattern%%#*}"
    pattern="$(printf '%s' "${pattern}" | sed -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//')"
    [[ -n ${pattern} ]] || continue
    negated=0
    if [[ ${pattern} == '!'* ]]; then
      negated=1 pattern="${pattern#!}"
    fi
    # Docker cleans each pattern: no leading or trailing slash, no ./
    pattern="${pattern#/}" pattern="${pattern#./}" pattern="${pattern%/}"
    ignore_re+=("$(glob_regex "${pattern}")") ignore_neg+=("${negated}")
  done <"${ignorefile}"
fi

# ignored PATH: .dockerignore excludes PATH; the last matching pattern decides.
ignored() {
  local i excluded=0
  for i in "${!ignore_re[@]}"; do
    if [[ $1 =~ ${ignore_re[i]} ]]; then
      excluded=$((1 - ignore_neg[i]))
    fi
  done
  ((excluded))
}

git -C "${root}" rev-parse --git-dir >/dev/null 2>&1 || fail "${root} is not a git checkout: the build context is git's list of its files"
context=()
while IFS= read -r -d '' f; do
  [[ -e ${root}/${f} ]] || continue # deleted in the work tree
  ignored "${f}" || context+=("${f}")
done < <(git -C "${root}" ls-files -z --cached --others --exclude-standard | sort -zu)

# --- the Dockerfile ---

# Instructions one per line: comments dropped, continuation lines joined
# (as Docker does, by deleting the backslash and the newline).
mapfile -t instructions < <(sed -e '/^[[:space:]]*#/d' "${dockerfile}" |
  awk '{ if (sub(/\\[[:space:]]*$/, "")) { line = line $0; next } print line $0; line = "" }' |
  sed -e 's/^[[:space:]]*//' -e '/^$/d')

stage="" workdir="/" copies=0 copied=0 builds=0
declare -A args=()
# The platform arguments docker build sets for the machine it runs on.
platform=(TARGETOS="$(go env GOOS)" TARGETARCH="$(go env GOARCH)")

# copy_into SRC DEST MULTI: one source of a COPY, as Docker copies it.
copy_into() {
  local src="$1" dest="$2" multi="$3" f found=0 target
  src="${src#./}" src="${src%/}"
  [[ -n ${src} ]] || src="."
  [[ ${dest} == /* ]] || dest="${workdir%/}/${dest}"
  for f in "${context[@]}"; do
    if [[ ${src} == . ]]; then
      target="${dest%/}/${f}"
    elif [[ ${f} == "${src}" ]]; then
      if [[ ${dest} == */ || ${multi} == 1 ]]; then target="${dest%/}/${f##*/}"; else target="${dest}"; fi
    elif [[ ${f} == "${src}/"* ]]; then
      target="${dest%/}/${f#"${src}"/}"
    else
      continue
    fi
    mkdir -p "$(dirname "${fs}${target}")"
    cp -p "${root}/${f}" "${fs}${target}"
    found=1 copied=$((copied + 1))
  done
  ((found)) || fail "COPY $1: not in the build context (missing, or excluded by .dockerignore)"
}

for line in "${instructions[@]}"; do
  read -r keyword rest <<<"${line}"
  keyword="${keyword^^}"
  if [[ ${keyword} == FROM ]]; then
    [[ -z ${stage} ]] || break # the builder stage ends at the next FROM
    read -r -a words <<<"${rest}"
    while [[ ${words[0]} == --* ]]; do words=("${words[@]:1}"); done
    stage=0 # unnamed: later stages say --from=0
    [[ ${words[1],,} == as ]] && stage="${words[2]}"
    continue
  fi
  case "${keyword}" in
    WORKDIR)
      [[ ${rest} == /* ]] && workdir="${rest}" || workdir="${workdir%/}/${rest}"
      ;;
    ARG)
      name="${rest%%=*}"
      [[ ${rest} == *=* ]] && args[${name}]="${rest#*=}" || args[${name}]=""
      ;;
    ENV)
      [[ ${rest} == *=* && ${rest} != *' '* ]] || fail "unsupported ENV form: ${line}"
      args[${rest%%=*}]="${rest#*=}"
      ;;
    COPY)
      read -r -a words <<<"${rest}"
      srcs=()
      for w in "${words[@]}"; do
        case "${w}" in
          --chown=* | --chmod=* | --link) ;;
          --from=*) fail "COPY --from in the builder stage is not supported: ${line}" ;;
          -*) fail "unsupported COPY flag ${w}: ${line}" ;;
          *'$'* | *'*'* | *'?'* | *'['* | *://*) fail "unsupported COPY source or destination ${w}: ${line}" ;;
          *) srcs+=("${w}") ;;
        esac
      done
      ((${#srcs[@]} >= 2)) || fail "COPY needs a source and a destination: ${line}"
      dest="${srcs[-1]}"
      unset 'srcs[-1]'
      multi=$((${#srcs[@]} > 1))
      for src in "${srcs[@]}"; do
        copy_into "${src}" "${dest}" "${multi}"
      done
      copies=$((copies + 1))
      ;;
    RUN)
      while [[ ${rest} == --* ]]; do rest="${rest#* }"; done # --mount, --network: Docker's own
      if [[ ${rest} != *'go build'* ]]; then
        echo "check-dockerfile: skipping RUN ${rest} (only go build runs; the module cache is this machine's)"
        continue
      fi
      env_args=("${platform[@]}")
      for name in "${!args[@]}"; do
        [[ ${name} == TARGETOS || ${name} == TARGETARCH ]] || env_args+=("${name}=${args[${name}]}")
      done
      echo "check-dockerfile: in ${workdir}: RUN ${rest}"
      # As in the golang image: no GOFLAGS (so no -mod=mod), no workspace,
      # this Go toolchain.
      (cd "${fs}${workdir}" && env "${env_args[@]}" GOFLAGS= GOWORK=off GOTOOLCHAIN=local sh -c "${rest}") ||
        fail "the Dockerfile's build failed: a folder it needs is not copied (see above), or the code does not build"
      builds=$((builds + 1))
      ;;
    *)
      fail "unsupported instruction in the builder stage: ${line}"
      ;;
  esac
done
((builds > 0)) || fail "no RUN ... go build in the first stage of ${dockerfile}"

# Every file a later stage takes from the builder must exist.
while read -r src; do
  [[ -e ${fs}${src} ]] || fail "a later stage copies ${src} from ${stage}, which the build did not produce"
  echo "check-dockerfile: ok: ${src} built from the ${copied} files ${copies} COPY lines take from the context"
done < <(awk -v stage="${stage}" 'toupper($1) == "COPY" {
  for (i = 2; i < NF; i++) if (tolower($i) == "--from=" tolower(stage)) { for (j = i + 1; j < NF; j++) if ($j !~ /^--/) print $j }
}' "${dockerfile}")
