"""Every probe in the manifests is answered by the process it probes.

The relay and the example worker run as real processes, configured from the rendered
manifests (the relay's ports from its ConfigMap or the settings' defaults, the worker with
the Deployment's own arguments and handler), and each probe's path is requested on the
port the probe names.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from relay.settings import Settings
from tests.deploy.rendered import ROOT, containers, named, needs_kubectl
from tests.support.process import RelayProcess
from tests.support.redis_server import free_port
from tests.support.signing import SECRET

pytestmark = [needs_kubectl, pytest.mark.process]

PROBES = ("startupProbe", "livenessProbe", "readinessProbe")


def status(port: int, path: str) -> int | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=3) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def probes(container: dict[str, Any]) -> list[tuple[str, str, int]]:
    """(probe, path, containerPort) of each HTTP probe; port names resolved."""
    ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
    found = []
    for kind in PROBES:
        if kind in container:
            http = container[kind]["httpGet"]
            port = http["port"]
            found.append((kind, http["path"], ports[port] if isinstance(port, str) else port))
    return found


@pytest.fixture
def relay_process(redis_url: str) -> Iterator[RelayProcess]:
    process = RelayProcess(
        {"RELAY_REDIS_URL": redis_url, "RELAY_REGISTER": "false", "RELAY_WEBHOOK_SECRET": SECRET}
    )
    yield process
    process.kill()


def test_the_relay_serves_its_probes(
    prod: list[dict[str, Any]], relay_process: RelayProcess
) -> None:
    deployment = named(prod, "Deployment", "relay")
    (container,) = containers(deployment)
    config = named(prod, "ConfigMap", "relay-config")["data"]
    admin = int(config.get("RELAY_ADMIN_PORT", Settings.model_fields["admin_port"].default))
    public = int(config.get("RELAY_PORT", Settings.model_fields["port"].default))
    # The manifest's ports are the ones the relay listens on with this configuration ...
    declared = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert declared == {"http": public, "admin": admin}
    # ... and the process, on those ports (here moved to free ones), answers every probe.
    relay_process.start()
    on = {admin: relay_process.admin_port, public: relay_process.port}
    found = probes(container)
    assert {kind for kind, _, _ in found} == set(PROBES)
    for kind, path, port in found:
        assert status(on[port], path) == 200, (kind, path, port)


def test_the_example_worker_serves_its_probes(prod: list[dict[str, Any]], redis_url: str) -> None:
    deployment = named(prod, "Deployment", "relay-worker-example")
    (container,) = containers(deployment)
    args: list[str] = container["args"]
    metrics_arg = next(a for a in args if a.startswith("--metrics-port="))
    metrics_port = int(metrics_arg.split("=", 1)[1])
    found = probes(container)
    assert {kind for kind, _, _ in found} == {"livenessProbe", "readinessProbe"}
    assert {port for _, _, port in found} == {metrics_port}

    free = free_port()
    run_args = [f"--metrics-port={free}" if a == metrics_arg else a for a in args]
    # From the repository root, where --handler's module lives as it does in the image.
    worker = RelayProcess({"RELAY_REDIS_URL": redis_url}, *run_args, cwd=str(ROOT))
    worker.start(wait_ready=False)
    try:
        # Alive at once, ready once its group exists: every probe is answered 200 then.
        worker.wait_for(
            lambda: all(status(free, path) == 200 for _, path, _ in found),
            what=f"{[path for _, path, _ in found]} answered 200",
            within=30,
        )
    finally:
        worker.kill()
