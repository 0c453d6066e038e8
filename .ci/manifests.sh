#!/usr/bin/env bash
# Render every deploy/ variant with kustomize and validate the output, strictly, against
# the Kubernetes schemas (kubernetes-validate). Fails on any error.
set -euo pipefail
cd "$(dirname "$0")/.."
K8S_VERSION=1.33.0

if ! command -v kubectl >/dev/null 2>&1; then
    echo "manifests: installing Debian's kubernetes-client (its kustomize is v2.0; deploy/ is written for it)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kubernetes-client >/dev/null
fi
python3 -m pip install -q --disable-pip-version-check kubernetes-validate

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for variant in dev prod; do
    kubectl kustomize "deploy/$variant" >"$out/$variant.yaml" 2>"$out/$variant.err" ||
        { cat "$out/$variant.err"; exit 1; }
    # --quiet: only warnings and failures. The one expected warning is the ServiceMonitor,
    # a Prometheus Operator CRD with no schema in the Kubernetes set.
    kubernetes-validate --strict --quiet -k "$K8S_VERSION" "$out/$variant.yaml"
    echo "deploy/$variant: $(grep -c '^kind:' "$out/$variant.yaml") resources valid for Kubernetes $K8S_VERSION"
done
