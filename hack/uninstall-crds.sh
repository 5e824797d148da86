#!/usr/bin/env bash
# make uninstall: deletes the CRDs of config/crd from the cluster of the
# current kubeconfig. Deleting a CRD deletes every object of its kind, so
# this says first what goes with them: every TokenRequest and
# ClusterTokenRequest, and (by garbage collection) every target Secret they
# own, that is all but those of deletionPolicy Retain. On a terminal it asks
# before deleting; elsewhere (scripts, CI) it deletes after printing.
set -euo pipefail

kubectl="${KUBECTL:-kubectl}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

crds="$(${kubectl} get crd tokenrequests.tokensync.io clustertokenrequests.tokensync.io --ignore-not-found -o name)"
if [ -z "${crds}" ]; then
  echo "No tokensync CRD in the cluster: nothing to delete."
  exit 0
fi

# <namespace>/<name>|<spec.secretName>|<spec.deletionPolicy>, one line each.
list() {
  ${kubectl} get "$1" ${2:+"$2"} --ignore-not-found \
    -o jsonpath='{range .items[*]}{.metadata.namespace}{"/"}{.metadata.name}{"|"}{.spec.secretName}{"|"}{.spec.deletionPolicy}{"\n"}{end}' 2>/dev/null || true
}

echo "make uninstall deletes the CRDs:"
sed 's#^customresourcedefinition.apiextensions.k8s.io/#  #' <<<"${crds}"
echo "and with them every TokenRequest and ClusterTokenRequest; garbage collection"
echo "then deletes the target Secrets they own (all but deletionPolicy Retain's)."

trs="$(list tokenrequests.tokensync.io --all-namespaces)"
if [ -n "${trs}" ]; then
  echo
  echo "TokenRequests ($(wc -l <<<"${trs}")), and their Secrets:"
  while IFS='|' read -r key secret policy; do
    ns="${key%%/*}" name="${key#*/}"
    secret="${secret:-${name}}" # spec.secretName defaults to the name
    if [ "${policy}" = "Retain" ]; then
      echo "  ${ns}/${name}: Secret ${ns}/${secret} stays (deletionPolicy Retain)"
    else
      echo "  ${ns}/${name}: Secret ${ns}/${secret} is deleted"
    fi
  done <<<"${trs}"
fi

ctrs="$(list clustertokenrequests.tokensync.io)"
if [ -n "${ctrs}" ]; then
  echo
  echo "ClusterTokenRequests ($(wc -l <<<"${ctrs}")), and their Secret in each namespace selected:"
  while IFS='|' read -r key secret policy; do
    name="${key#/}"
    if [ "${policy}" = "Retain" ]; then
      echo "  ${name}: Secret ${secret} stays in every namespace (deletionPolicy Retain)"
    else
      echo "  ${name}: Secret ${secret} is deleted from every namespace"
    fi
  done <<<"${ctrs}"
fi
[ -n "${trs}${ctrs}" ] || { echo; echo "No TokenRequest or ClusterTokenRequest exists."; }

if [ -t 0 ]; then
  echo
  read -r -p "Delete them? Type yes: " answer
  [ "${answer}" = "yes" ] || { echo "Nothing deleted."; exit 1; }
fi
echo
${kubectl} delete --ignore-not-found -k "${root}/config/crd"
