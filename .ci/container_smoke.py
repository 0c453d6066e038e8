"""Smoke-test the built image against a real redis-server (called by .ci/container.sh)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

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


def wait_ready(port: int, seconds: float = 30) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                if r.status == 200:
                    return True
        except OSError:
            time.sleep(0.2)
    return False


def main(image: str) -> int:
    redis = RedisServer()
    redis.start()
    name = f"relay-smoke-{uuid.uuid4().hex[:8]}"
    port, admin = free_port(), free_port()
    try:
        podman(
            "run", "-d", "--name", name, "--network", "host",
            "-e", f"RELAY_REDIS_URL={redis.url}", "-e", "RELAY_REGISTER=false",
            "-e", f"RELAY_WEBHOOK_SECRET={SECRET}", "-e", "RELAY_HOST=127.0.0.1",
            "-e", f"RELAY_PORT={port}", "-e", f"RELAY_ADMIN_PORT={admin}", image,
        )  # fmt: skip
        check("the relay becomes ready", wait_ready(admin), podman("logs", name).stderr[-2000:])

        body = event_body(extraction_id="smoke-1")
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/webhooks/anyformat", data=body,
            headers=sign(body, msg_id="msg_smoke"), method="POST",
        )  # fmt: skip
        with urllib.request.urlopen(request, timeout=10) as response:
            answer = json.loads(response.read())
        check("a signed delivery is accepted", answer == {"status": "accepted", "id": "msg_smoke"},
              str(answer))  # fmt: skip
        entries = redis.client().xrange("anyformat:events")
        check("the entry is in the stream, payload byte-exact",
              len(entries) == 1 and entries[0][1][b"payload"] == body, str(entries))  # fmt: skip

        status = podman("exec", name, "cat", "/proc/1/status").stdout
        uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
        check("the relay runs as uid 10001", uid_line.split()[1:] == ["10001"] * 4, uid_line)

        health = podman("healthcheck", "run", name, check=False)
        check("the HEALTHCHECK passes (no curl in the image)", health.returncode == 0,
              health.stdout + health.stderr)  # fmt: skip

        podman("stop", "--time", "30", name)
        code = podman("inspect", name, "--format", "{{.State.ExitCode}}").stdout.strip()
        logs = podman("logs", name).stdout + podman("logs", name).stderr
        check("SIGTERM (podman stop) exits 0", code == "0" and "relay_stopped" in logs,
              f"exit {code}")  # fmt: skip

        compilers = podman(
            "run", "--rm", "--entrypoint", "/bin/sh", image, "-c",
            "for c in gcc cc c++ g++ clang make ld; do command -v $c && exit 1; done; exit 0",
            check=False,
        )  # fmt: skip
        check("no compiler or build tool in the image", compilers.returncode == 0,
              compilers.stdout)  # fmt: skip

        worker = podman("run", "--rm", image, "worker", "--help", check=False)
        ran = worker.returncode == 0 and "--handler" in worker.stdout
        check("the same image runs workers", ran, worker.stderr)
    finally:
        podman("rm", "--force", name, check=False)
        redis.close()
    failed = sum(not ok for _, ok, _ in results)
    print(f"container smoke: {len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
