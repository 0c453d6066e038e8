#!/usr/bin/env bash
# Render every deploy/ variant with kubectl's kustomize (v5) and validate the output,
# strictly, against the Kubernetes schemas (kubernetes-validate). Fails on any error.
# tests/deploy checks what the rendered manifests mean (secrets, selectors, probes, policy).
set -euo pipefail
cd "$(dirname "$0")/.."
K8S_VERSION=1.33.0

command -v kubectl >/dev/null 2>&1 ||
    { echo "manifests: kubectl (with kustomize v5) is required" >&2; exit 1; }
kustomize_version=$(kubectl version --client 2>/dev/null | sed -n 's/^Kustomize Version: v//p')
[[ "${kustomize_version%%.*}" -ge 5 ]] 2>/dev/null ||
    { echo "manifests: kubectl embeds kustomize '${kustomize_version:-?}'; deploy/ needs v5" >&2; exit 1; }
python3 -m pip install -q --disable-pip-version-check kubernetes-validate

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# Everything is rendered from a copy of deploy/ (kustomize takes only relative paths). prod
# needs the site values the operator writes into deploy/prod/site.env (git ignores it):
# a checkout has none, so prod must not render as it is; the copy gets the committed
# example's. The opt-in ServiceMonitor component, on top of prod, is validated too.
if kubectl kustomize deploy/prod >/dev/null 2>&1 && [ ! -f deploy/prod/site.env ]; then
    echo "manifests: deploy/prod renders without site.env: a placeholder could be applied" >&2
    exit 1
fi
cp -r deploy "$out/deploy"
rm -f "$out/deploy/prod/site.env"
cp deploy/prod/site.env.example "$out/deploy/prod/site.env"
mkdir "$out/deploy/prod-monitored"
cat >"$out/deploy/prod-monitored/kustomization.yaml" <<'YAML'
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources: [../prod]
components: [../components/servicemonitor]
YAML
for variant in "$out/deploy/dev" "$out/deploy/prod" "$out/deploy/prod-monitored"; do
    name=$(basename "$variant")
    kubectl kustomize "$variant" >"$out/$name.yaml" 2>"$out/$name.err" ||
        { cat "$out/$name.err"; exit 1; }
    # No deprecation warnings: the kustomizations use only current kustomize fields.
    if [ -s "$out/$name.err" ]; then cat "$out/$name.err"; exit 1; fi
    # --quiet: only warnings and failures. The expected warnings are the Prometheus
    # Operator's CRDs (ServiceMonitor, PodMonitor), which have no schema in the set.
    kubernetes-validate --strict --quiet -k "$K8S_VERSION" "$out/$name.yaml"
    echo "$name: $(grep -c '^kind:' "$out/$name.yaml") resources valid for Kubernetes $K8S_VERSION"
done
