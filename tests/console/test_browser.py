"""The console in a real browser (headless Chromium), against a real ``relay run`` process,
a real redis-server and a real worker: what an operator sees and what a hostile page or
payload cannot do. Screenshots land in a temporary folder (printed); the docs' images are
copies of these."""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.console.browser import chromium, viewport
from tests.operator.conftest import TOKEN
from tests.support.process import RelayProcess
from tests.support.redis_server import RedisServer
from tests.support.signing import event_body, sign
from tests.support.waiting import wait_for_sync

pytestmark = pytest.mark.process
ROOT = str(Path(__file__).resolve().parents[2])
STREAM = "anyformat:events"
QUIET_STREAM = "anyformat:events:extraction.failed"  # no delivery here: a failed event
HOSTILE_GROUP = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'
DELIVERIES = 12


@pytest.fixture(scope="module")
def traffic(relay: RelayProcess, redis_server: RedisServer) -> Iterator[redis.Redis]:
    """Deliveries through the relay's public port; group "billing" handled by a real
    worker to the end; group "audit" left behind with three entries held by a consumer
    that went away; a group whose name is hostile markup."""
    client = redis_server.client()
    client.xgroup_create(STREAM, "audit", id="0", mkstream=True)
    client.xgroup_create(QUIET_STREAM, HOSTILE_GROUP, id="0", mkstream=True)
    for n in range(DELIVERIES):
        body = event_body(extraction_id=f"ex-browser-{n}")
        connection = http.client.HTTPConnection("127.0.0.1", relay.port, timeout=10)
        connection.request("POST", "/webhooks/anyformat", body=body, headers=sign(body))
        assert connection.getresponse().status == 200
        connection.close()
    client.xreadgroup("audit", "gone-worker", {STREAM: ">"}, count=3)
    worker = RelayProcess(
        {"RELAY_REDIS_URL": redis_server.url, "TEST_REDIS_URL": redis_server.url},
        "worker", "--stream", STREAM, "--group", "billing",
        "--handler", "tests.support.handlers:record", "--start-id", "0",
        cwd=ROOT,
    )  # fmt: skip
    worker.start(wait_ready=False)
    try:
        wait_for_sync(lambda: client.llen("handled") >= DELIVERIES, what="the worker's handling")
        wait_for_sync(
            lambda: all(
                g["pending"] == 0 and g["lag"] == 0
                for g in client.xinfo_groups(STREAM)
                if g["name"] == b"billing"
            ),
            what="billing acknowledged everything",
        )
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
    folder = tmp_path_factory.mktemp("console-screenshots")
    print(f"\nconsole screenshots: {folder}")
    return folder


def console(relay: RelayProcess, path: str = "/console/") -> str:
    return f"http://127.0.0.1:{relay.admin_port}{path}"


def log_in(driver: Any, relay: RelayProcess, token: str = TOKEN) -> None:
    from selenium.webdriver.common.by import By

    driver.delete_all_cookies()
    driver.get(console(relay))
    field = driver.find_element(By.ID, "token")
    field.clear()
    field.send_keys(token)
    field.submit()
    wait_for_sync(lambda: gone(field), what="the login form's answer loaded")


def gone(element: Any) -> bool:
    """Whether ``element``'s page was replaced by the next one (its answer is loaded)."""
    from selenium.common.exceptions import StaleElementReferenceException

    try:
        element.is_enabled()
    except StaleElementReferenceException:
        return True
    return False


def logged_out(driver: Any) -> bool:
    return bool(driver.current_url.endswith("/console/login"))


def no_script_ran(driver: Any) -> None:
    from selenium.common.exceptions import NoAlertPresentException

    assert driver.execute_script("return typeof window.__pwned") == "undefined"
    with pytest.raises(NoAlertPresentException):
        driver.switch_to.alert.text  # noqa: B018


# --- login -------------------------------------------------------------------------------


def test_a_wrong_token_is_refused_and_the_right_one_opens_the_overview(
    driver: Any, relay: RelayProcess, traffic: redis.Redis, shots: Path
) -> None:
    from selenium.webdriver.common.by import By

    viewport(driver, 1280, 800)
    log_in(driver, relay, token="not-the-token-at-all")
    assert logged_out(driver)
    assert driver.find_element(By.ID, "login-problem").text == "That is not the token."
    assert not driver.get_cookies()
    driver.save_screenshot(str(shots / "login-refused.png"))
    log_in(driver, relay)
    assert driver.current_url == console(relay)
    assert driver.find_element(By.TAG_NAME, "h1").text == "Overview"
    [cookie] = driver.get_cookies()
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/"
    assert driver.execute_script("return document.cookie") == ""  # no script can read it


# --- the overview ---------------------------------------------------------------------------


def figures_shown(driver: Any, group: str) -> dict[str, str]:
    """The figures of ``group``'s row as shown (read in one go: the refresh swaps rows)."""
    shown = driver.execute_script(
        """
        for (const row of document.querySelectorAll("tr[data-group]")) {
          if (row.dataset.group !== arguments[0]) continue;
          const figures = {};
          for (const cell of row.querySelectorAll("td[data-figure]")) {
            figures[cell.dataset.figure] = cell.innerText.trim();
          }
          return figures;
        }
        return null;
        """,
        group,
    )
    assert shown is not None, f"no row for group {group!r}"
    return dict(shown)


def test_the_overview_shows_what_redis_says(
    driver: Any, relay: RelayProcess, traffic: redis.Redis, shots: Path
) -> None:
    from selenium.webdriver.common.by import By

    viewport(driver, 1280, 800)
    log_in(driver, relay)
    section = driver.find_element(By.CSS_SELECTOR, "section.stream")
    assert section.find_element(By.TAG_NAME, "h2").text == STREAM
    length = section.find_element(By.CSS_SELECTOR, 'dd[data-figure="length"]').text
    assert int(length.replace("\u2009", "")) == traffic.xlen(STREAM) == DELIVERIES
    dlq = section.find_element(By.CSS_SELECTOR, 'dd[data-figure="dlq_length"]').text
    assert int(dlq) == traffic.xlen(f"{STREAM}:dlq")
    for info in traffic.xinfo_groups(STREAM):
        name = info["name"].decode()
        shown = figures_shown(driver, name)
        consumers = traffic.xinfo_consumers(STREAM, name)
        assert (int(shown["pending"]), int(shown["lag"]), int(shown["consumers"])) == (
            info["pending"], info["lag"], len(consumers),
        ), name  # fmt: skip
    audit = figures_shown(driver, "audit")
    assert (audit["pending"], audit["lag"]) == ("3", str(DELIVERIES - 3))
    assert audit["oldest_pending"].endswith(("s", "min"))
    driver.save_screenshot(str(shots / "overview-1280x800.png"))


def test_the_overview_refreshes_itself(
    driver: Any, relay: RelayProcess, traffic: redis.Redis
) -> None:
    from selenium.webdriver.common.by import By

    log_in(driver, relay)
    traffic.xreadgroup("audit", "gone-worker", {STREAM: ">"}, count=2)
    wait_for_sync(
        lambda: figures_shown(driver, "audit")["pending"] == "5",
        within=30,
        what="the overview's refresh showing the new pending count",
    )
    assert driver.find_element(By.ID, "live").get_attribute("data-refreshed")


def test_the_overview_fits_a_390_pixel_wide_phone(
    driver: Any, relay: RelayProcess, traffic: redis.Redis, shots: Path
) -> None:
    from selenium.webdriver.common.by import By

    log_in(driver, relay)
    viewport(driver, 390, 844)
    try:
        driver.refresh()
        assert driver.execute_script("return window.innerWidth") == 390
        # Nothing wider than the screen but the tables, which scroll inside their box.
        assert driver.execute_script("return document.documentElement.scrollWidth") <= 390
        assert driver.find_element(By.CSS_SELECTOR, 'dd[data-figure="length"]').is_displayed()
        driver.save_screenshot(str(shots / "overview-390x844.png"))
    finally:
        viewport(driver, 1280, 800)


def test_the_overview_is_usable_with_the_keyboard(
    driver: Any, relay: RelayProcess, traffic: redis.Redis
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    log_in(driver, relay)
    body = driver.find_element(By.TAG_NAME, "body")
    body.send_keys(Keys.TAB)
    focused = driver.switch_to.active_element
    assert focused.text == "Skip to content"
    reached = set()
    for _ in range(12):
        driver.switch_to.active_element.send_keys(Keys.TAB)
        reached.add(driver.switch_to.active_element.get_attribute("id") or
                    driver.switch_to.active_element.text)  # fmt: skip
    assert "Log out" in reached


# --- hostile text and hostile pages -----------------------------------------------------


def test_markup_from_redis_is_shown_as_text_and_never_runs(
    driver: Any, relay: RelayProcess, traffic: redis.Redis
) -> None:
    from selenium.webdriver.common.by import By

    log_in(driver, relay)
    names = [
        row.find_element(By.TAG_NAME, "th").text
        for row in driver.find_elements(By.CSS_SELECTOR, "tr[data-group]")
    ]
    assert HOSTILE_GROUP in names
    no_script_ran(driver)


class Attacker(BaseHTTPRequestHandler):
    """Another origin's page that posts a form to the console as soon as it loads."""

    target = ""

    def do_GET(self) -> None:
        page = f"""<!doctype html><body><form method="post" action="{self.target}">
        <input type="hidden" name="csrf" value="guessed"></form>
        <script>document.forms[0].submit()</script></body>"""
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(page.encode())

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def attacker(relay: RelayProcess) -> Iterator[str]:
    Attacker.target = console(relay, "/console/logout")
    server = ThreadingHTTPServer(("127.0.0.1", 0), Attacker)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"], ids=["same-site", "cross-site"])
def test_a_post_from_another_site_is_refused(
    driver: Any, relay: RelayProcess, traffic: redis.Redis, attacker: str, host: str
) -> None:
    log_in(driver, relay)
    driver.get(attacker.replace("127.0.0.1", host))
    wait_for_sync(lambda: "/console/logout" in driver.current_url, what="the attack's POST")
    answer = json.loads(driver.find_element("tag name", "body").text)
    assert answer["error"] in ("cross_site_request", "unauthorized")
    if host == "127.0.0.1":  # same site: the cookie went along; Sec-Fetch-Site stopped it
        assert answer["error"] == "cross_site_request"
    driver.get(console(relay))
    assert not logged_out(driver)  # the session survived: the POST did nothing


def test_a_post_without_the_csrf_token_is_refused(
    driver: Any, relay: RelayProcess, traffic: redis.Redis
) -> None:
    from selenium.webdriver.common.by import By

    log_in(driver, relay)
    driver.execute_script("document.querySelectorAll('input[name=csrf]').forEach(e => e.remove())")
    driver.find_element(By.CSS_SELECTOR, "form.inline button").click()
    wait_for_sync(lambda: "/console/logout" in driver.current_url, what="the POST")
    answer = json.loads(driver.find_element(By.TAG_NAME, "body").text)
    assert answer == {"error": "csrf_token_missing_or_wrong"}
    driver.get(console(relay))
    assert not logged_out(driver)
    driver.find_element(By.CSS_SELECTOR, "form.inline button").click()  # with the token
    wait_for_sync(lambda: logged_out(driver), what="the logout")
