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
from relay.reconcile.metrics import ReconcileMetrics
from relay.streams.health import StreamHealthCollector

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "deploy" / "monitoring"
ALERT_NAME = re.compile(r"\bRelay[A-Z][A-Za-z]+\b")
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
    reconcile = CollectorRegistry()
    ReconcileMetrics(reconcile)
    found = [IngestMetrics().registry, WorkerMetrics().registry, health, reconcile]
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


def rules() -> dict[str, dict[str, Any]]:
    resource = yaml.safe_load((MONITORING / "prometheus-rules.yaml").read_text())
    return {rule["alert"]: rule for group in resource["spec"]["groups"] for rule in group["rules"]}


def promtool_cases() -> list[dict[str, Any]]:
    found = []
    for path in sorted((MONITORING / "tests").glob("*.test.yaml")):
        for test in yaml.safe_load(path.read_text())["tests"]:
            found += test.get("alert_rule_test", [])
    return found


def test_every_rule_is_tested_firing_and_staying_silent() -> None:
    cases = promtool_cases()
    for alert in rules():
        outcomes = [bool(case["exp_alerts"]) for case in cases if case["alertname"] == alert]
        assert True in outcomes, f"{alert}: no promtool case where it fires"
        assert False in outcomes, f"{alert}: no promtool case where it stays silent"


def test_one_rule_fires_when_no_relay_is_scraped_at_all() -> None:
    """Without it, relays all down would silence every alert built on their metrics."""
    exprs = [rule["expr"] for rule in rules().values()]
    assert any("absent(up{" in expr for expr in exprs)


def class_names() -> set[str]:
    """``RelayServer`` and its kin: code the docs name, not alerts."""
    sources = (path.read_text() for path in (ROOT / "relay").rglob("*.py"))
    return {name for text in sources for name in re.findall(r"^class (Relay\w+)", text, re.M)}


def alert_names_in_docs() -> dict[str, set[str]]:
    pages = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]
    code = class_names()
    found = {page.name: set(ALERT_NAME.findall(page.read_text())) - code for page in pages}
    return {name: alerts for name, alerts in found.items() if alerts}


def test_every_alert_the_docs_name_exists_and_each_rule_is_explained() -> None:
    defined = set(rules())
    for page, named in alert_names_in_docs().items():
        assert named <= defined, f"docs/{page} names alerts no rule defines: {named - defined}"
    headings = re.findall(
        r"^## (Relay\w+) \((warning|critical)\)$",
        (ROOT / "docs" / "alerts.md").read_text(),
        re.MULTILINE,
    )
    assert {name for name, _ in headings} == defined
    severities = {name: severity for name, severity in headings}
    assert severities == {name: rule["labels"]["severity"] for name, rule in rules().items()}


def test_the_docs_promise_alerts_for_what_operators_were_told_to_watch() -> None:
    """The promises docs/operations.md and the pages it links made: a rule for each."""
    assert {
        "RelayNoneScraped", "RelayNotReady", "RelayLatencyHigh", "RelayWorkerPaused",
        "RelayEventsReconciled", "RelayUnavailableAnswers", "RelayRedisErrors",
        "RelayInvalidSignatures", "RelayDeadLettersGrowing",
    } <= alert_names_in_docs()["operations.md"]  # fmt: skip


def test_a_made_up_alert_name_in_the_docs_would_be_caught() -> None:
    assert set(ALERT_NAME.findall("see `RelayWorkerStalled`")) - set(rules()) == {
        "RelayWorkerStalled"
    }
