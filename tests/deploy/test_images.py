"""The Dockerfiles' static truths: `docker build .` with no arguments labels the image with
pyproject.toml's version; the worker image checks its own port, not the relay's."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def version() -> str:
    with (ROOT / "pyproject.toml").open("rb") as f:
        found: str = tomllib.load(f)["project"]["version"]
    return found


def test_the_default_version_is_pyprojects() -> None:
    text = (ROOT / "Dockerfile").read_text()
    [default] = re.findall(r"^ARG VERSION=(\S+)$", text, re.MULTILINE)
    assert default == version()
    assert 'org.opencontainers.image.version="${VERSION}"' in text
    assert "--build-arg VERSION" not in (ROOT / ".ci/container.sh").read_text()  # CI uses it


def test_the_worker_image_checks_its_metrics_port() -> None:
    text = (ROOT / "examples/Dockerfile").read_text()
    [port] = re.findall(r"^ENV RELAY_HEALTHCHECK_PORT=(\d+)$", text, re.MULTILINE)
    assert f"EXPOSE {port}" in text and f"--metrics-port={port}" in text
    assert 'CMD ["relay", "healthcheck"]' in text
