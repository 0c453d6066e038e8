#!/usr/bin/env bash
# Regenerate requirements.lock: every runtime dependency of pyproject.toml pinned, with the
# sha256 of every file PyPI publishes for that version, for every Python >= 3.11 and every
# platform at once (uv's universal resolution: a dependency only some interpreters need,
# such as async-timeout below Python 3.11.3, is locked under its marker). The Dockerfile
# installs from it with --require-hashes. Run after changing dependencies:
#     bash .ci/lock.sh
set -euo pipefail
cd "$(dirname "$0")/.."
venv=$(mktemp -d)
trap 'rm -rf "$venv"' EXIT
python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check "uv>=0.5"
# PyPI only, whatever this machine's configuration adds (mirrors, wheel folders): the hashes
# must be those of the files every builder downloads.
UV_CUSTOM_COMPILE_COMMAND="bash .ci/lock.sh" "$venv/bin/uv" pip compile --quiet --no-config \
    --universal --python-version 3.11 --generate-hashes --index-url https://pypi.org/simple \
    --output-file requirements.lock pyproject.toml
