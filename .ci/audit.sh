#!/usr/bin/env bash
# pip-audit against requirements.lock, where its vulnerability data can be reached.
# pip-audit reads PyPI's per-release JSON (or OSV). Where neither answers, pip-audit would
# report every package "not found" and still exit 0: that would be a pass that audited
# nothing, so this says SKIPPED instead, loudly.
set -euo pipefail
cd "$(dirname "$0")/.."

probe=$(grep -m1 -o '^aiohttp==[^ ]*' requirements.lock | sed 's|==|/|')
if ! python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=10)' \
    "https://pypi.org/pypi/$probe/json" 2>/dev/null; then
    echo "pip-audit: SKIPPED - its vulnerability data (PyPI per-release JSON) is not reachable here"
    exit 0
fi
venv=$(mktemp -d)
trap 'rm -rf "$venv"' EXIT
python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check "pip-audit>=2.7"
# --strict: a package it could not look up fails the audit instead of passing it.
"$venv/bin/pip-audit" --strict --require-hashes --disable-pip -s pypi -r requirements.lock
