"""The Kubernetes manifests as `kubectl apply -k deploy/<variant>` would apply them."""

from __future__ import annotations

import ipaddress
import re
import shlex
import tomllib
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tests.deploy.rendered import (
    ROOT,
    WORKLOADS,
    Resource,
    containers,
    matches,
    named,
    needs_kubectl,
    of_kind,
    pod_labels,
    render,
)

VARIANTS = ("dev", "prod")
pytestmark = needs_kubectl


@pytest.fixture(scope="module", params=VARIANTS)
def manifests(request: pytest.FixtureRequest) -> list[Resource]:
    return render(request.param)


# --- Secrets ------------------------------------------------------------------------------

PLACEHOLDER = re.compile(r"replace[-_ ]?me|changeme|change-me|<[^>]*>|xxx", re.IGNORECASE)


def documented_secrets() -> dict[str, set[str]]:
    """The Secrets, and their keys, that docs/operations.md tells the operator to create."""
    text = (ROOT / "docs/operations.md").read_text().replace("\\\n", " ")
    created: dict[str, set[str]] = {}
    for line in text.splitlines():
        if not line.startswith("kubectl create secret generic "):
            continue
        words = shlex.split(line, comments=True)
        name = words[4]
        keys = {w.split("=", 2)[1] for w in words if w.startswith("--from-literal=")}
        created.setdefault(name, set()).update(keys)
    return created


def referenced_secrets(resources: list[Resource]) -> dict[str, set[str]]:
    referenced: dict[str, set[str]] = {}
    for workload in of_kind(resources, *WORKLOADS):
        for container in containers(workload):
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    referenced.setdefault(ref["name"], set()).add(ref["key"])
            for source in container.get("envFrom", []):
                assert "secretRef" not in source, "whole-Secret envFrom: keys not checkable"
    return referenced


def test_no_apply_carries_a_secret(manifests: list[Resource]) -> None:
    """A Secret in the applied resources would overwrite the one the operator created."""
    assert of_kind(manifests, "Secret") == []


def test_no_placeholder_value_reaches_a_container_in_prod(prod: list[Resource]) -> None:
    for workload in of_kind(prod, *WORKLOADS):
        for container in containers(workload):
            for env in container.get("env", []):
                assert not PLACEHOLDER.search(str(env.get("value", ""))), env
    for config in of_kind(prod, "ConfigMap"):
        for key, value in config["data"].items():
            assert not PLACEHOLDER.search(value), key
            assert not re.search(r"(KEY|SECRET|PASSWORD|TOKEN)$", key), f"{key} in a ConfigMap"


def test_every_secret_the_pods_read_is_created_by_the_documented_commands(
    manifests: list[Resource],
) -> None:
    documented = documented_secrets()
    assert "relay-secrets" in documented  # the parser found the commands at all
    for name, keys in referenced_secrets(manifests).items():
        assert keys <= documented.get(name, set()), (name, keys)


# --- selectors and labels -------------------------------------------------------------------


def test_every_workload_selector_matches_its_pod_template(manifests: list[Resource]) -> None:
    for workload in of_kind(manifests, *WORKLOADS):
        assert matches(workload["spec"]["selector"], pod_labels(workload)), workload["metadata"]
        for spread in workload["spec"]["template"]["spec"].get("topologySpreadConstraints", []):
            assert matches(spread["labelSelector"], pod_labels(workload))


def test_selectors_select_exactly_the_intended_pods(manifests: list[Resource]) -> None:
    """Services, budgets and policies each select the pods of one workload (or the policy's
    named ones), and no other workload's pods."""
    workloads = of_kind(manifests, *WORKLOADS)

    def selected(selector: dict[str, Any]) -> set[str]:
        return {w["metadata"]["name"] for w in workloads if matches(selector, pod_labels(w))}

    for service in of_kind(manifests, "Service"):
        assert len(selected(service["spec"]["selector"])) == 1, service["metadata"]["name"]
    for budget in of_kind(manifests, "PodDisruptionBudget"):
        assert len(selected(budget["spec"]["selector"])) == 1, budget["metadata"]["name"]
    for policy in of_kind(manifests, "NetworkPolicy"):
        assert selected(policy["spec"]["podSelector"]), policy["metadata"]["name"]
    relay = named(manifests, "Deployment", "relay")
    assert selected(named(manifests, "Service", "relay")["spec"]["selector"]) == {"relay"}
    assert matches(named(manifests, "NetworkPolicy", "relay")["spec"]["podSelector"],
                   pod_labels(relay))  # fmt: skip


def test_selectors_are_the_ones_written_in_the_files(manifests: list[Resource]) -> None:
    """Kustomize adds labels to resources and pod templates but rewrites no selector, so the
    (immutable) selectors stay what the files say, and the DNS rule still finds kube-dns."""
    written: dict[tuple[str, str], Any] = {}
    for path in ROOT.glob("deploy/*/*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            kind = doc.get("kind") if doc else None
            if kind in (*WORKLOADS, "PodDisruptionBudget") and "selector" in doc.get("spec", {}):
                written[(kind, doc["metadata"]["name"])] = doc["spec"]["selector"]
    for resource in of_kind(manifests, *WORKLOADS, "PodDisruptionBudget"):
        key = (resource["kind"], resource["metadata"]["name"])
        assert resource["spec"]["selector"] == written[key], key
    for resource in manifests:
        assert resource["metadata"]["labels"]["app.kubernetes.io/part-of"] == "anyformat-relay"


def test_pods_spread_across_zones_and_nodes(manifests: list[Resource]) -> None:
    for workload in of_kind(manifests, "Deployment"):
        spread = workload["spec"]["template"]["spec"]["topologySpreadConstraints"]
        keys = [constraint["topologyKey"] for constraint in spread]
        assert keys == ["topology.kubernetes.io/zone", "kubernetes.io/hostname"]


def test_the_autoscaler_alone_owns_the_replica_count(manifests: list[Resource]) -> None:
    for hpa in of_kind(manifests, "HorizontalPodAutoscaler"):
        target = hpa["spec"]["scaleTargetRef"]
        workload = named(manifests, target["kind"], target["name"])
        assert "replicas" not in workload["spec"], target["name"]


def test_every_workload_has_readiness_and_a_disruption_budget(prod: list[Resource]) -> None:
    budgets = of_kind(prod, "PodDisruptionBudget")
    for workload in of_kind(prod, "Deployment"):
        for container in containers(workload):
            assert "readinessProbe" in container and "livenessProbe" in container
        assert any(matches(b["spec"]["selector"], pod_labels(workload)) for b in budgets)


# --- network policy -------------------------------------------------------------------------


def admits_egress(
    policies: list[Resource], pod: dict[str, str], port: int, *,
    ip: str | None = None, to_pod: dict[str, str] | None = None,
    to_namespace: dict[str, str] | None = None, protocol: str = "TCP",
) -> bool:  # fmt: skip
    """Whether the NetworkPolicies let a pod with labels `pod` open `port` to a destination:
    an IP address, or a pod (in its own namespace, or one with labels `to_namespace`)."""
    applying = [p for p in policies if matches(p["spec"]["podSelector"], pod)
                and "Egress" in p["spec"].get("policyTypes", [])]  # fmt: skip
    if not applying:
        return True  # no policy isolates the pod's egress
    for policy in applying:
        for rule in policy["spec"].get("egress", []):
            ports = rule.get("ports")
            if ports is not None and not any(
                p.get("port") == port and p.get("protocol", "TCP") == protocol for p in ports
            ):
                continue
            for peer in rule.get("to", [{}]):
                if not peer:
                    return True  # no `to`: every destination
                if ip is not None and "ipBlock" in peer:
                    address = ipaddress.ip_address(ip)
                    block = peer["ipBlock"]
                    if address in ipaddress.ip_network(block["cidr"]) and not any(
                        address in ipaddress.ip_network(e) for e in block.get("except", [])
                    ):
                        return True
                if to_pod is not None and "ipBlock" not in peer:
                    in_namespace = (
                        "namespaceSelector" not in peer if to_namespace is None
                        else matches(peer.get("namespaceSelector", {"x": "x"}), to_namespace)
                    )  # fmt: skip
                    if in_namespace and matches(peer.get("podSelector", {}), to_pod):
                        return True
    return False


def documented_redis_url() -> str:
    text = (ROOT / "docs/operations.md").read_text()
    found = re.search(r"relay-redis --from-literal=url='([^']+)'", text)
    assert found, "docs/operations.md no longer shows the relay-redis Secret"
    return found.group(1)


def test_prod_admits_the_external_redis_from_relay_and_workers(prod: list[Resource]) -> None:
    policies = of_kind(prod, "NetworkPolicy")
    redis_port = urlsplit(documented_redis_url()).port or 6379
    block = named(prod, "NetworkPolicy", "relay-redis")["spec"]["egress"][0]["to"][0]["ipBlock"]
    redis_ip = str(next(ipaddress.ip_network(block["cidr"]).hosts()))
    for workload in of_kind(prod, "Deployment"):
        pod = pod_labels(workload)
        for port in (redis_port, 26379):  # the URL's port, and Sentinel
            assert admits_egress(policies, pod, port, ip=redis_ip), (workload["metadata"], port)
        # and nothing else in the private range, on another port
        assert not admits_egress(policies, pod, 5432, ip=redis_ip)


def test_pods_reach_dns_and_only_the_relay_reaches_the_internet(
    manifests: list[Resource],
) -> None:
    policies = of_kind(manifests, "NetworkPolicy")
    dns, kube_system = {"k8s-app": "kube-dns"}, {"kubernetes.io/metadata.name": "kube-system"}
    for workload in of_kind(manifests, "Deployment"):
        pod = pod_labels(workload)
        for protocol in ("UDP", "TCP"):
            assert admits_egress(policies, pod, 53, to_pod=dns, to_namespace=kube_system,
                                 protocol=protocol), workload["metadata"]["name"]  # fmt: skip
    relay = pod_labels(named(manifests, "Deployment", "relay"))
    worker = pod_labels(named(manifests, "Deployment", "relay-worker-example"))
    assert admits_egress(policies, relay, 443, ip="203.0.113.10")  # the AnyFormat API
    assert not admits_egress(policies, worker, 443, ip="203.0.113.10")


def test_dev_admits_its_in_cluster_redis() -> None:
    dev = render("dev")
    policies = of_kind(dev, "NetworkPolicy")
    redis = pod_labels(named(dev, "StatefulSet", "relay-redis"))
    for name in ("relay", "relay-worker-example"):
        pod = pod_labels(named(dev, "Deployment", name))
        assert admits_egress(policies, pod, 6379, to_pod=redis), name
        assert not admits_egress(policies, pod, 6379, ip="10.1.2.3")


# --- images -------------------------------------------------------------------------------


def test_image_tags_are_the_package_version(manifests: list[Resource]) -> None:
    with (ROOT / "pyproject.toml").open("rb") as f:
        version = tomllib.load(f)["project"]["version"]
    ours = [c["image"] for w in of_kind(manifests, "Deployment") for c in containers(w)]
    assert ours and all(image.rsplit(":", 1)[1] == version for image in ours), ours
