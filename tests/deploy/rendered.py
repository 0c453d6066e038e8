"""Rendering deploy/ as `kubectl apply -k` would apply it, and reading the result."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKLOADS = ("Deployment", "StatefulSet")

needs_kubectl = pytest.mark.skipif(shutil.which("kubectl") is None, reason="needs kubectl")

Resource = dict[str, Any]


SITE_ENV = "prod/site.env"  # the operator creates it from site.env.example; git ignores it


def kustomize(directory: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["kubectl", "kustomize", str(directory)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def site_copy(site_env: str | None = None) -> Path:
    """deploy/ copied to a temporary directory (kustomize takes only relative paths), with
    prod's site.env written from ``site_env`` (default: site.env.example, as CI does)."""
    copy = Path(tempfile.mkdtemp(prefix="relay-deploy-")) / "deploy"
    shutil.copytree(ROOT / "deploy", copy, ignore=shutil.ignore_patterns("site.env"))
    if site_env is None:
        site_env = (ROOT / "deploy" / f"{SITE_ENV}.example").read_text()
    (copy / SITE_ENV).write_text(site_env)
    return copy


def render(variant: str, site_env: str | None = None) -> list[Resource]:
    """The resources of deploy/VARIANT, rendered by the kustomize that kubectl embeds; prod
    with the site values of ``site_env`` (default: the committed example's)."""
    deploy = site_copy(site_env)
    try:
        done = kustomize(deploy / variant)
    finally:
        shutil.rmtree(deploy.parent, ignore_errors=True)
    if done.returncode:
        raise AssertionError(f"kubectl kustomize deploy/{variant} failed: {done.stderr}")
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def of_kind(resources: list[Resource], *kinds: str) -> list[Resource]:
    return [r for r in resources if r["kind"] in kinds]


def named(resources: list[Resource], kind: str, name: str) -> Resource:
    return next(r for r in resources if r["kind"] == kind and r["metadata"]["name"] == name)


def pod_labels(workload: Resource) -> dict[str, str]:
    labels: dict[str, str] = workload["spec"]["template"]["metadata"]["labels"]
    return labels


def matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A Kubernetes label selector (matchLabels and matchExpressions) against labels."""
    if not selector:
        return True  # {} selects everything
    plain = selector.get("matchLabels", selector if "matchExpressions" not in selector else {})
    if any(labels.get(key) != value for key, value in plain.items()):
        return False
    for expression in selector.get("matchExpressions", []):
        present, value = expression["key"] in labels, labels.get(expression["key"])
        operator = expression["operator"]
        if operator == "In" and value not in expression["values"]:
            return False
        if operator == "NotIn" and value in expression["values"]:
            return False
        if (operator == "Exists") != present and operator in ("Exists", "DoesNotExist"):
            return False
    return True


def containers(workload: Resource) -> list[Resource]:
    spec = workload["spec"]["template"]["spec"]
    result: list[Resource] = spec["containers"]
    return result
