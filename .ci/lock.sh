#!/usr/bin/env bash
# Regenerate requirements.lock: every runtime dependency of pyproject.toml pinned, with the
# sha256 of every file PyPI publishes for that version (any platform the image may build on).
# The Dockerfile installs from it with --require-hashes. Run after changing dependencies:
#     bash .ci/lock.sh
set -euo pipefail
cd "$(dirname "$0")/.."
venv=$(mktemp -d)
trap 'rm -rf "$venv"' EXIT
python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check "pip-tools>=7.4"
# PyPI only, whatever this machine's pip configuration adds (local mirrors, wheel folders):
# the hashes must be those of the files every builder downloads.
PIP_CONFIG_FILE=/dev/null CUSTOM_COMPILE_COMMAND="bash .ci/lock.sh" "$venv/bin/pip-compile" --quiet --generate-hashes --strip-extras \
    --no-emit-index-url --no-emit-find-links --index-url https://pypi.org/simple \
    --output-file requirements.lock pyproject.toml
