"""Smoke-test the built images against a real redis-server (called by .ci/container.sh).

The relay image: a signed delivery in, the entry out; non-root, HEALTHCHECK, clean SIGTERM,
no compiler, the version label. The example worker image, run with the arguments of
deploy/base/worker-deployment.yaml: its handler resolves, it consumes the delivery, it
stops cleanly.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.redis_server import RedisServer, free_port
from tests.support.signing import SECRET, event_body, sign

PODMAN = ["podman", "--runtime", "runc", "--cgroup-manager=cgroupfs"]
results: list[tuple[str, bool, str]] = []


def podman(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PODMAN, *args], capture_output=True, text=True, timeout=120,
                          check=check)  # fmt: skip


def check(name: str, ok: bool, detail: str = "") -> None:
    results.append((name, ok, detail))
    print(f"{'ok  ' if ok else 'FAIL'} {name}{': ' + detail if detail and not ok else ''}")


def http_status(port: int, path: str) -> int | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def wait_for(condition: Any, seconds: float = 30) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


def logs(name: str) -> str:
    done = podman("logs", name, check=False)
    return done.stdout + done.stderr


def worker_container() -> dict[str, Any]:
    manifest = yaml.safe_load((ROOT / "deploy/base/worker-deployment.yaml").read_text())
    container: dict[str, Any] = manifest["spec"]["template"]["spec"]["containers"][0]
    return container


def worker_probe_paths() -> list[str]:
    """The paths of the example Deployment's liveness and readiness probes."""
    container = worker_container()
    return [container[p]["httpGet"]["path"] for p in ("livenessProbe", "readinessProbe")]


def worker_args(metrics_port: int) -> list[str]:
    """The example Deployment's arguments, on a free metrics port."""
    args: list[str] = worker_container()["args"]
    return [f"--metrics-port={metrics_port}" if a.startswith("--metrics-port") else a
            for a in args]  # fmt: skip


def option(args: list[str], name: str) -> str:
    return next(a.split("=", 1)[1] for a in args if a.startswith(f"--{name}="))


# Prints a digest of the relay package's source files (.py, .lua) where it is installed.
SOURCE_DIGEST = """
import hashlib, pathlib, relay
root = pathlib.Path(relay.__file__).parent
files = sorted(p for p in root.rglob("*") if p.suffix in (".py", ".lua"))
digest = hashlib.sha256()
for path in files:
    digest.update(str(path.relative_to(root)).encode() + b"\\0" + path.read_bytes())
print(digest.hexdigest())
"""


def main(image: str, worker_image: str, version: str) -> int:
    redis = RedisServer()
    redis.start()
    name, worker = f"relay-smoke-{uuid.uuid4().hex[:8]}", f"worker-smoke-{uuid.uuid4().hex[:8]}"
    port, admin, metrics = free_port(), free_port(), free_port()
    try:
        label_format = '{{ index .Config.Labels "org.opencontainers.image.version" }}'
        label = podman("image", "inspect", image, "--format", label_format).stdout
        shown = podman("run", "--rm", image, "--version", check=False).stdout
        check("the version label and relay --version are pyproject's version",
              label.strip() == version and shown.strip() == f"relay, version {version}",
              f"label {label.strip()!r}, relay --version {shown.strip()!r}")  # fmt: skip

        local = subprocess.run([sys.executable, "-c", SOURCE_DIGEST], cwd=ROOT, env={},
                               capture_output=True, text=True, check=True).stdout  # fmt: skip
        inside = podman("run", "--rm", "--entrypoint", "python3", image, "-c", SOURCE_DIGEST,
                        check=False)  # fmt: skip
        check("the image runs this checkout's relay/ (no stale cached layer)",
              inside.stdout == local, f"{inside.stdout.strip()} != {local.strip()}")  # fmt: skip

        podman(
            "run", "-d", "--name", name, "--network", "host",
            "-e", f"RELAY_REDIS_URL={redis.url}", "-e", "RELAY_REGISTER=false",
            "-e", f"RELAY_WEBHOOK_SECRET={SECRET}", "-e", "RELAY_HOST=127.0.0.1",
            "-e", f"RELAY_PORT={port}", "-e", f"RELAY_ADMIN_PORT={admin}", image,
        )  # fmt: skip
        check("the relay becomes ready", wait_for(lambda: http_status(admin, "/readyz") == 200),
              logs(name)[-2000:])  # fmt: skip

        args = worker_args(metrics)
        stream, group = option(args, "stream"), option(args, "group")
        podman(
            "run", "-d", "--name", worker, "--network", "host",
            "-e", f"RELAY_REDIS_URL={redis.url}", "-e", "RELAY_HOST=127.0.0.1",
            "-e", f"RELAY_HEALTHCHECK_PORT={metrics}",
            worker_image, *args,
        )  # fmt: skip
        client = redis.client()

        def group_exists() -> bool:
            return client.exists(stream) == 1 and any(
                g["name"].decode() == group for g in client.xinfo_groups(stream)
            )

        probes = worker_probe_paths()
        check("the example worker's handler resolves and its group is created",
              wait_for(group_exists), logs(worker)[-2000:])  # fmt: skip
        check(f"the example worker answers its probes ({', '.join(probes)})",
              wait_for(lambda: all(http_status(metrics, p) == 200 for p in probes)),
              logs(worker)[-2000:])  # fmt: skip

        body = event_body(extraction_id="smoke-1")
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/webhooks/anyformat", data=body,
            headers=sign(body, msg_id="msg_smoke"), method="POST",
        )  # fmt: skip
        with urllib.request.urlopen(request, timeout=10) as response:
            answer = json.loads(response.read())
        check("a signed delivery is accepted", answer == {"status": "accepted", "id": "msg_smoke"},
              str(answer))  # fmt: skip
        entries = client.xrange("anyformat:events")
        check("the entry is in the stream, payload byte-exact",
              len(entries) == 1 and entries[0][1][b"payload"] == body, str(entries))  # fmt: skip

        routed = client.xrange(stream)

        def handled() -> bool:
            if not routed:
                return False
            info = next(g for g in client.xinfo_groups(stream) if g["name"].decode() == group)
            done = info["pending"] == 0 and info["last-delivered-id"] == routed[-1][0]
            return done

        ok = wait_for(handled) and client.xlen(f"{stream}:dlq") == 0
        check("the example worker handled and acknowledged it, no dead letter", ok,
              logs(worker)[-2000:])  # fmt: skip

        status = podman("exec", name, "cat", "/proc/1/status").stdout
        uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
        check("the relay runs as uid 10001", uid_line.split()[1:] == ["10001"] * 4, uid_line)

        health = podman("healthcheck", "run", name, check=False)
        check("the HEALTHCHECK passes (no curl in the image)", health.returncode == 0,
              health.stdout + health.stderr)  # fmt: skip

        worker_health = podman("healthcheck", "run", worker, check=False)
        check("the worker image's own HEALTHCHECK passes (its metrics port)",
              worker_health.returncode == 0,
              worker_health.stdout + worker_health.stderr)  # fmt: skip

        for container, what in ((name, "relay"), (worker, "worker")):
            podman("stop", "--time", "30", container)
            code = podman("inspect", container, "--format", "{{.State.ExitCode}}").stdout.strip()
            check(f"SIGTERM (podman stop) ends the {what} with exit 0", code == "0",
                  f"exit {code}: {logs(container)[-2000:]}")  # fmt: skip
        check("the relay logs its stop", "relay_stopped" in logs(name))

        compilers = podman(
            "run", "--rm", "--entrypoint", "/bin/sh", image, "-c",
            "for c in gcc cc c++ g++ clang make ld; do command -v $c && exit 1; done; exit 0",
            check=False,
        )  # fmt: skip
        check("no compiler or build tool in the image", compilers.returncode == 0,
              compilers.stdout)  # fmt: skip
    finally:
        for container in (name, worker):
            podman("rm", "--force", container, check=False)
        redis.close()
    failed = sum(not ok for _, ok, _ in results)
    print(f"container smoke: {len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
