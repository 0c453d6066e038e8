#!/usr/bin/env bash
# The alert rules of deploy/monitoring/: syntax (promtool check rules) and behaviour
# (promtool test rules, deploy/monitoring/tests/*.yaml). promtool comes with Debian's
# `prometheus` package; it is installed when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "--- alert rules (promtool check rules, promtool test rules)"

if ! command -v promtool >/dev/null 2>&1; then
    echo ".ci/monitoring.sh: installing promtool (Debian's prometheus package)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
promtool --version | head -1

# promtool reads plain rule files: take the groups out of the PrometheusRule resource.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 - deploy/monitoring/prometheus-rules.yaml "$work/rules.yaml" <<'PY'
import sys

import yaml

with open(sys.argv[1]) as source:
    resource = yaml.safe_load(source)
assert resource["kind"] == "PrometheusRule", resource["kind"]
with open(sys.argv[2], "w") as target:
    yaml.safe_dump({"groups": resource["spec"]["groups"]}, target, sort_keys=False)
PY
cp deploy/monitoring/tests/*.yaml "$work/"
promtool check rules "$work/rules.yaml"
(cd "$work" && promtool test rules ./*.test.yaml)
