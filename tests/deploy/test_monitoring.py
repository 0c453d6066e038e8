"""deploy/monitoring/ watches metrics the code exports: every name the alert rules and the
Grafana dashboard use is one a relay or worker registry produces. (The rules' behaviour is
tested by promtool: .ci/monitoring.sh.)"""

from __future__ import annotations

import importlib
import importlib.util
import json
import re
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import CollectorRegistry

from relay.observability import IngestMetrics, WorkerMetrics
from relay.streams.health import StreamHealthCollector

MONITORING = Path(__file__).resolve().parents[2] / "deploy" / "monitoring"
NAME = re.compile(r"\b(relay_[a-z0-9_]+)\b")
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "gauge": ("",),
    "info": ("_info",),
}
STREAM_HEALTH = {  # the contract's "Operations" list
    "relay_stream_length", "relay_stream_group_lag", "relay_stream_group_pending",
    "relay_stream_group_oldest_pending_seconds", "relay_stream_dlq_length", "relay_dedupe_ids",
}  # fmt: skip
# relay_worker_entries_lost comes with the worker runtime of issue 17 (relay.worker.metrics);
# until that module exists its name may be missing here, and no other.
WORKER_RUNTIME = "relay.worker.metrics"
FROM_WORKER_RUNTIME = {"relay_worker_entries_lost_total"}


def registries() -> list[CollectorRegistry]:
    health = CollectorRegistry()
    health.register(StreamHealthCollector())
    found = [IngestMetrics().registry, WorkerMetrics().registry, health]
    if importlib.util.find_spec(WORKER_RUNTIME) is not None:
        found.append(importlib.import_module(WORKER_RUNTIME).WorkerMetrics().registry)
    return found


def exported() -> set[str]:
    """Every series name the registries can produce, labelled children or not."""
    names = set()
    for registry in registries():
        for family in registry.collect():
            names.update(family.name + suffix for suffix in SUFFIXES[family.type])
    return names


def rule_expressions() -> list[str]:
    resource = yaml.safe_load((MONITORING / "prometheus-rules.yaml").read_text())
    return [rule["expr"] for group in resource["spec"]["groups"] for rule in group["rules"]]


def dashboard_expressions() -> list[str]:
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    found = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    variables: list[dict[str, Any]] = dashboard["templating"]["list"]
    found += [v["definition"] for v in variables if v["type"] == "query"]
    return found


def names_in(expressions: list[str]) -> set[str]:
    return {name for expr in expressions for name in NAME.findall(expr)}


def allowed_missing() -> set[str]:
    return set() if importlib.util.find_spec(WORKER_RUNTIME) else FROM_WORKER_RUNTIME


def test_every_metric_the_alert_rules_use_is_exported() -> None:
    used = names_in(rule_expressions())
    assert len(used) >= 9
    assert used - exported() <= allowed_missing()


def test_every_metric_the_dashboard_uses_is_exported() -> None:
    used = names_in(dashboard_expressions())
    assert used - exported() <= allowed_missing()


def test_the_dashboard_shows_every_stream_health_metric_and_the_build() -> None:
    used = names_in(dashboard_expressions())
    assert {*STREAM_HEALTH, "relay_build_info"} <= used
    assert exported() >= STREAM_HEALTH


def test_a_misspelt_name_would_be_caught() -> None:
    assert names_in(["rate(relay_deliveries_recieved_total[5m])"]) - exported() == {
        "relay_deliveries_recieved_total"
    }
