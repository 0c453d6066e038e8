"""The console's event and dead-letter pages in a real browser (headless Chromium), against
a real ``relay run`` process, a real worker and a real redis-server: a payload holding
markup shown as text with no script run, and a replay from the dead-letter page after its
dry-run count, ending with each entry once more on its stream and handled once."""

from __future__ import annotations

import http.client
import json
import re
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.console.browser import chromium, viewport
from tests.console.test_browser import log_in, no_script_ran
from tests.support.process import RelayProcess
from tests.support.redis_server import RedisServer
from tests.support.signing import event_body, sign
from tests.support.waiting import wait_for_sync

pytestmark = pytest.mark.process
ROOT = str(Path(__file__).resolve().parents[2])
STREAM = "anyformat:events"
GROUP = "billing"
MARKUP = "<script>window.__pwned=1</script><img src=x onerror=window.__pwned=2>"
FAILING = 3
WORKER_METRICS: list[str] = []  # the worker's /metrics URL, once it runs


def deliver(relay: RelayProcess, msg_id: str, **extra: str) -> None:
    body = event_body(extraction_id=f"ex-{msg_id}", **extra)
    connection = http.client.HTTPConnection("127.0.0.1", relay.port, timeout=10)
    connection.request("POST", "/webhooks/anyformat", body=body, headers=sign(body, msg_id=msg_id))
    assert connection.getresponse().status == 200
    connection.close()


@pytest.fixture(scope="module")
def dead(relay: RelayProcess, redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A real worker of group "billing" whose handler fails (one attempt) while the key
    ``fail`` exists: FAILING deliveries dead-letter; then it handles what comes back."""
    client = redis_server.client()
    client.set("fail", 1)
    worker = RelayProcess(
        {"RELAY_REDIS_URL": redis_server.url, "TEST_REDIS_URL": redis_server.url},
        "worker", "--stream", STREAM, "--group", GROUP,
        "--handler", "tests.support.handlers:failing_while_flagged", "--start-id", "0",
        "--max-attempts", "1", "--metrics-port", "0",
        cwd=ROOT,
    )  # fmt: skip
    worker.args = (*worker.args[:-1], str(worker.admin_port))  # its metrics on a free port
    worker.start(wait_ready=False)
    try:
        for n in range(FAILING):
            deliver(relay, f"msg_dead_{n}", note=MARKUP)
        wait_for_sync(lambda: client.xlen(f"{STREAM}:dlq") == FAILING, what="the dead letters")
        client.delete("fail")
        WORKER_METRICS.append(f"http://127.0.0.1:{worker.admin_port}/metrics")
        yield client
    finally:
        worker.terminate()


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    browser = chromium()
    yield browser
    browser.quit()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("console-action-screenshots")
    print(f"\nconsole screenshots: {folder}")
    return folder


def text_of(driver: Any, selector: str) -> str:
    """An element's text read in one go: "" while the page (or its refreshed part) is
    being replaced, whose elements a two-step find-then-read would lose."""
    from selenium.common.exceptions import WebDriverException

    try:
        return str(
            driver.execute_script(
                "const e = document.querySelector(arguments[0]); return e ? e.innerText : ''",
                selector,
            )
        ).strip()
    except WebDriverException:  # the document went away under the script: read again
        return ""


def admin(relay: RelayProcess, path: str) -> str:
    return f"http://127.0.0.1:{relay.admin_port}{path}"


def test_a_payload_holding_markup_is_shown_as_text_and_no_script_runs(
    driver: Any, relay: RelayProcess, dead: redis.Redis, shots: Path
) -> None:
    from selenium.webdriver.common.by import By

    viewport(driver, 1280, 800)
    log_in(driver, relay)
    search = driver.find_element(By.ID, "q")
    search.send_keys("msg_dead_0")
    search.submit()
    wait_for_sync(lambda: "q=msg_dead_0" in driver.current_url, what="the event page")
    payload = driver.find_element(By.CSS_SELECTOR, '[data-field="payload"]').text
    assert json.loads(payload)["note"] == MARKUP
    states = [
        e.get_attribute("data-state") for e in driver.find_elements(By.CSS_SELECTOR, "[data-state]")
    ]
    assert "dead_lettered" in states
    error = driver.find_element(By.CSS_SELECTOR, "pre.error").text
    assert error.endswith("<b>flagged</b> failure of msg_dead_0")  # markup, as text
    no_script_ran(driver)
    driver.save_screenshot(str(shots / "event.png"))


def test_the_event_and_dead_letter_pages_fit_a_390_pixel_wide_phone(
    driver: Any, relay: RelayProcess, dead: redis.Redis, shots: Path
) -> None:
    log_in(driver, relay)
    viewport(driver, 390, 844)
    try:
        for name, path in (
            ("event", "/console/events?q=msg_dead_1"),
            ("dead-letters", f"/console/streams/{STREAM}/dead-letters"),
        ):
            driver.get(admin(relay, path))
            assert driver.execute_script("return document.documentElement.scrollWidth") <= 390
            driver.save_screenshot(str(shots / f"{name}-390x844.png"))
    finally:
        viewport(driver, 1280, 800)


def test_a_replay_from_the_dead_letter_page_puts_each_entry_back_once(
    driver: Any, relay: RelayProcess, dead: redis.Redis, shots: Path
) -> None:
    from selenium.webdriver.common.by import By

    viewport(driver, 1280, 800)
    log_in(driver, relay)
    before = Counter(f[b"id"] for _, f in dead.xrange(STREAM))
    driver.get(admin(relay, f"/console/streams/{STREAM}/dead-letters"))
    rows = driver.find_elements(By.CSS_SELECTOR, "tr[data-entry]")
    assert len(rows) == FAILING == dead.xlen(f"{STREAM}:dlq")
    driver.save_screenshot(str(shots / "dead-letters.png"))
    for box in driver.find_elements(By.CSS_SELECTOR, 'input[name="ids"]')[:2]:
        box.click()
    driver.find_element(By.CSS_SELECTOR, 'button[value="replay"]').click()
    matched = wait_for_sync(  # the click submits a form: the next page is not there yet
        lambda: text_of(driver, '[data-figure="matched"]'), what="the dry run's count"
    )
    assert matched == "2" and dead.xlen(f"{STREAM}:dlq") == FAILING  # counted, not done
    driver.save_screenshot(str(shots / "replay-confirm.png"))
    driver.find_element(By.ID, "confirm").click()
    wait_for_sync(
        lambda: text_of(driver, '[data-figure="state"]') == "done",
        what="the job's page showing it done",
    )
    assert text_of(driver, '[data-figure="done"]') == "2"
    driver.save_screenshot(str(shots / "job.png"))
    after = Counter(f[b"id"] for _, f in dead.xrange(STREAM))
    back = after - before
    assert sorted(back.values()) == [1, 1] and set(back) < {
        f"msg_dead_{n}".encode() for n in range(FAILING)
    }
    assert dead.xlen(f"{STREAM}:dlq") == FAILING - 2

    def handled() -> list[str]:
        return [json.loads(item)["id"] for item in dead.lrange("handled", 0, -1)]

    wait_for_sync(lambda: len(handled()) == 2, what="the worker handling the replayed two")
    assert sorted(handled()) == sorted(i.decode() for i in back)  # each once


def operator_paused(metrics_url: str) -> bool:
    with urllib.request.urlopen(metrics_url, timeout=5) as answer:  # noqa: S310 (loopback)
        text = answer.read().decode()
    return bool(re.search(r'relay_worker_paused\{[^}]*reason="operator"[^}]*\} 1\.0', text))


def test_pause_and_resume_a_group_from_the_overview(
    driver: Any, relay: RelayProcess, dead: redis.Redis
) -> None:
    from selenium.webdriver.common.by import By

    viewport(driver, 1280, 800)
    log_in(driver, relay)
    [metrics] = WORKER_METRICS

    def state() -> str:
        return text_of(driver, f'tr[data-group="{GROUP}"] [data-figure="state"]')

    driver.find_element(By.CSS_SELECTOR, f'button[aria-label="Pause group {GROUP}"]').click()
    wait_for_sync(lambda: state().startswith("paused"), what="the overview showing it paused")
    wait_for_sync(lambda: operator_paused(metrics), what="the worker honouring the pause")
    # A blocking read already sent before the pause may still return an entry; once no
    # client is blocked in Redis, the paused worker reads nothing more.
    wait_for_sync(lambda: dead.info("clients")["blocked_clients"] == 0, what="no read in flight")
    handled_before = dead.llen("handled")
    deliver(relay, "msg_while_paused")
    driver.get(admin(relay, "/console/"))
    assert state().startswith("paused")
    assert dead.llen("handled") == handled_before  # taken by nobody while paused
    driver.find_element(By.CSS_SELECTOR, f'button[aria-label="Resume group {GROUP}"]').click()
    wait_for_sync(lambda: state().startswith("running"), what="the overview showing it running")
    wait_for_sync(lambda: not operator_paused(metrics), what="the worker resuming")

    def handled() -> list[str]:
        return [json.loads(item)["id"] for item in dead.lrange("handled", 0, -1)]

    wait_for_sync(lambda: "msg_while_paused" in handled(), what="the entry handled after resume")
    assert handled().count("msg_while_paused") == 1
