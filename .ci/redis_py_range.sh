#!/usr/bin/env bash
# The micro-batch path (relay/redis/batch.py) drives redis-py's connection internals, so
# its tests and the fan-out writer's run at the lowest and at the highest redis-py that
# pyproject.toml allows, each in a venv of its own (layered on this interpreter's packages).
set -euo pipefail
cd "$(dirname "$0")/.."

spec=$(python3 -c '
import tomllib
deps = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]
print(next(dep for dep in deps if dep.replace(" ", "").startswith("redis>")))')
lowest=$(python3 -c 'import re, sys; print(re.search(r">=\s*([0-9.]+)", sys.argv[1])[1])' "$spec")
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT

for bound in lowest highest; do
    venv="$root/$bound"
    python3 -m venv --system-site-packages "$venv"
    if [ "$bound" = lowest ]; then want="redis==$lowest"; else want="$spec"; fi
    "$venv/bin/pip" install -q --disable-pip-version-check --ignore-installed "$want"
    version=$("$venv/bin/python" -c 'import redis; print(redis.__version__)')
    echo "--- redis-py $version (the $bound that $spec allows)"
    PYTHONPATH="$PWD" "$venv/bin/python" -m pytest -q -p no:cacheprovider \
        tests/redis/test_batch.py tests/streams/test_writer.py
done
