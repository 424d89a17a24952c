"""The console in a real browser (Debian's chromium, driven by Playwright) against two real
workers: it loads without errors, shows live numbers and charts, looks payments up with their
lineage, pauses and resumes the cluster, hides every control from a viewer, pages and searches
accounts, and runs the demo load.

``make test`` installs chromium when it can (CI, as root); without a browser these tests fail
under CI and are skipped elsewhere. ``KPAY_SCREENSHOTS=<dir>`` also saves a screenshot of each
main view there (``make screenshots`` refreshes the ones in docs/)."""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import two_workers_on_rocksdb
from tests.support.waiting import eventually
from tests.support.workers import Cluster, Worker

pytestmark = pytest.mark.integration

playwright = pytest.importorskip("playwright.sync_api")
BROWSER = os.environ.get("KPAY_CHROMIUM") or shutil.which("chromium")
SHOTS = os.environ.get("KPAY_SCREENSHOTS")
ACCOUNTS = [f"acct-{i:02d}" for i in range(30)]


@pytest.fixture(scope="module")
def cluster(broker: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with two_workers_on_rocksdb(broker, tmp_path_factory.mktemp("console"), "/pipeline") as made:
        worker = made.workers[0]
        for name in ACCOUNTS:
            assert worker.post("/accounts", {"id": name, "balance": "500.00"})[0] == 202
        eventually(lambda: len(worker.accounts()), lambda n: n == len(ACCOUNTS))
        yield made


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if BROWSER is None:
        if os.environ.get("CI"):
            pytest.fail("no chromium to run the console's browser tests (make test installs it)")
        pytest.skip("no chromium: apt-get install chromium, or set KPAY_CHROMIUM")
    with playwright.sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=BROWSER, args=["--no-sandbox"])
        yield launched
        launched.close()


class Console:
    """One browser tab on a worker's console, with every console error and failed page load
    recorded."""

    def __init__(
        self, browser: object, worker: Worker, viewport: dict | None = None, path: str = "/"
    ) -> None:
        self.worker = worker
        self.page = browser.new_page(viewport=viewport or {"width": 1280, "height": 900})
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else 0)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        #: Requests for anything not served by the worker: none (no CDN, works offline).
        self.foreign: list[str] = []
        self.page.on(
            "request",
            lambda r: None if r.url.startswith(worker.url) else self.foreign.append(r.url),
        )
        self.page.goto(worker.url + path)

    def sign_in(self, role: str) -> Console:
        self.page.fill("#token", self.worker.cluster.tokens[role])
        self.page.click("#signin button[type=submit]")
        self.page.wait_for_selector("#pipeline:not([hidden])")
        return self

    def until(self, expression: str, timeout: float = 30_000) -> None:
        """Poll a JavaScript expression until it is true (``wait_for_function`` evaluates its
        predicate with ``eval``, which the console's Content-Security-Policy forbids)."""
        eventually(lambda: self.page.evaluate(expression), bool, timeout=timeout / 1000)

    def text(self, selector: str) -> str:
        return self.page.inner_text(selector)

    def shot(self, name: str) -> None:
        if SHOTS:
            Path(SHOTS).mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=str(Path(SHOTS) / f"console-{name}.png"), full_page=True)

    def close(self) -> None:
        self.page.close()


def pay(worker: Worker, payment_id: str, payer: str, payee: str, amount: str) -> None:
    body = {"id": payment_id, "from": payer, "to": payee, "amount": amount}
    assert worker.post("/payments", body, role="client")[0] == 202


def finished(worker: Worker, payment_id: str) -> str:
    return eventually(
        lambda: worker.get(f"/payments/{payment_id}")[1].get("state"),
        lambda s: s in ("confirmed", "rejected"),
    )


def number(text: str) -> int:
    return int(re.sub(r"[^0-9]", "", text) or "0")


def test_the_console_loads_signs_in_and_shows_live_numbers_and_charts(cluster, browser) -> None:
    worker = cluster.workers[0]
    console = Console(browser, worker)
    assert "Sign in" in console.text("#welcome")
    assert console.page.is_hidden("#pipeline")  # nothing shown before a token
    console.sign_in("operator")
    assert "(operator)" in console.text("#whoami")
    before = number(console.text("#confirmed-count"))
    for index in range(20):
        pay(worker, f"c-live-{index}", ACCOUNTS[index], ACCOUNTS[index + 1], "1.25")
    finished(worker, "c-live-19")
    console.until(
        f"Number(document.getElementById('confirmed-count').textContent.replace(/,/g, ''))"
        f" >= {before + 20}"
    )
    assert console.text("#pipeline-state") == "running"
    rows = console.page.locator("#workers tbody tr")
    assert rows.count() == 2  # both workers, each with its input partitions
    assert all("ready" in rows.nth(i).inner_text() for i in range(2))
    console.shot("pipeline")
    console.page.click("#tab-instrumentation")
    console.page.wait_for_selector("#chart-rate circle")  # the newest point of the line
    assert console.page.locator("#chart-latency path[d^='M']").count() == 4  # p50 p95 p99 max
    assert console.page.locator("#chart-latency circle").count() == 4
    assert console.page.locator("#chart-rate line.goal").count() == 1  # the 1,000/s goal
    assert "200 ms" in console.text("#goals")
    assert console.errors == [] and console.foreign == []
    console.close()


def test_a_payment_looked_up_shows_its_final_state_and_lineage(cluster, browser) -> None:
    worker = cluster.workers[1]
    pay(worker, "c-lookup", ACCOUNTS[2], ACCOUNTS[3], "7.50")
    assert finished(worker, "c-lookup") == "confirmed"
    console = Console(browser, worker).sign_in("viewer")
    console.page.click("#tab-payments")
    console.page.fill("#payment-id", "c-lookup")
    console.page.click("#payment-lookup button[type=submit]")
    console.page.wait_for_selector("#payment-state")
    assert console.text("#payment-state") == "confirmed"
    steps = console.page.locator("#trace-hops tbody tr td:first-child").all_inner_texts()
    assert steps == ["gateway", "debit", "credit", "confirmed"]
    assert "Submission to outcome" in console.text("#trace-summary")
    console.shot("payment")
    console.page.fill("#payment-id", "no-such-payment")
    console.page.click("#payment-lookup button[type=submit]")
    console.until("document.getElementById('payment-fields').textContent.includes('no payment')")
    assert console.errors == [] or all("404" in e for e in console.errors)
    console.close()


def test_a_client_submits_a_payment_and_sees_its_outcome(cluster, browser) -> None:
    console = Console(browser, cluster.workers[0]).sign_in("client")
    console.page.click("#tab-payments")
    assert console.page.is_visible("#payment-submit")
    console.page.fill("#pay-from", ACCOUNTS[5])
    console.page.fill("#pay-to", ACCOUNTS[6])
    console.page.fill("#pay-amount", "3.00")
    console.page.fill("#pay-id", "c-submitted")
    console.page.click("#payment-submit button[type=submit]")
    console.until(
        "document.getElementById('message').textContent.includes('c-submitted confirmed')"
    )
    assert finished(cluster.workers[0], "c-submitted") == "confirmed"
    assert console.page.is_hidden("#controls")  # a client controls nothing
    console.close()


def test_a_viewer_sees_everything_read_only(cluster, browser) -> None:
    console = Console(browser, cluster.workers[1]).sign_in("viewer")
    assert "(viewer)" in console.text("#whoami")
    for control in ("#controls", "#payment-submit", "#load-form"):
        assert console.page.is_hidden(control), control
    assert console.page.is_visible("[data-below=operator]")
    console.page.focus("#tab-pipeline")  # the tabs work from the keyboard
    console.page.keyboard.press("ArrowRight")
    assert console.page.get_attribute("#tab-instrumentation", "aria-selected") == "true"
    assert console.page.is_visible("#instrumentation") and console.page.is_hidden("#pipeline")
    console.page.click("#tab-operations")
    assert console.page.is_hidden("#dlq-table")  # raw records: operators only
    console.page.click("#reconcile")
    console.until(
        "document.getElementById('reconcile-result').textContent.includes('money conservation')"
    )
    console.page.click("#tab-accounts")
    console.page.wait_for_selector("#accounts-table tbody tr td")
    assert console.errors == []
    console.close()


def test_the_accounts_table_pages_and_searches(cluster, browser) -> None:
    console = Console(browser, cluster.workers[0]).sign_in("viewer")
    console.page.click("#tab-accounts")
    console.page.select_option("#account-limit", "10")
    console.page.click("#account-search button[type=submit]")
    first_column = "#accounts-table tbody tr td:first-child"
    console.until(
        f"document.querySelectorAll('{first_column}').length === 10"
        f" && document.querySelector('{first_column}').textContent === 'acct-00'"
    )
    console.page.click("#accounts-next")
    console.until(f"document.querySelector('{first_column}').textContent === 'acct-10'")
    assert console.page.locator(first_column).all_inner_texts() == ACCOUNTS[10:20]
    console.page.click("#accounts-prev")
    console.until(f"document.querySelector('{first_column}').textContent === 'acct-00'")
    console.page.fill("#account-prefix", "acct-2")
    console.page.click("#account-search button[type=submit]")
    console.until(f"document.querySelector('{first_column}').textContent === 'acct-20'")
    assert console.page.locator(first_column).all_inner_texts() == ACCOUNTS[20:30]
    assert console.page.is_disabled("#accounts-next")  # the last page
    console.page.click(f"{first_column} >> nth=0")
    console.page.wait_for_selector("#account-detail:not([hidden])")
    assert "Account acct-20" in console.text("#account-title")
    console.shot("accounts")
    assert console.errors == []
    console.close()


def test_the_demo_load_starts_and_stops_from_the_console(cluster, browser) -> None:
    worker = cluster.workers[0]
    console = Console(browser, worker).sign_in("operator")
    console.page.click("#tab-load")
    console.page.fill("#load-rate", "50")
    console.page.fill("#load-accounts", "10")
    console.page.fill("#load-seconds", "120")
    console.page.click("#load-form button[type=submit]")
    console.until("document.getElementById('load-status').textContent.startsWith('running')")
    opened = eventually(
        lambda: worker.get("/accounts?prefix=gen-&limit=100")[1], lambda a: a and a["count"] == 10
    )
    assert opened["count"] == 10
    before = worker.get("/pipeline")[1]["confirmed"]["count"]
    eventually(lambda: worker.get("/pipeline")[1]["confirmed"]["count"], lambda n: n > before + 50)
    if SHOTS:  # a picture with some seconds of load on the charts
        time.sleep(20)
    console.shot("load")
    console.page.click("#tab-instrumentation")  # with the load's seconds on the charts
    console.page.wait_for_selector("#chart-rate circle")
    console.shot("instrumentation")
    console.page.click("#tab-load")
    console.page.click("#load-stop")
    console.until("document.getElementById('load-status').textContent.startsWith('stopped')")
    assert worker.get("/load")[1]["running"] is False
    assert console.errors == []
    console.close()


#: Records every state the page's badge shows from now on.
SEEN_STATES = """() => {
  window.seenStates = [];
  const badge = document.getElementById('pipeline-state');
  new MutationObserver(() => window.seenStates.push(badge.textContent))
    .observe(badge, {childList: true, characterData: true, subtree: true});
}"""


def test_an_operator_pauses_and_resumes_the_cluster(cluster, browser) -> None:
    console = Console(browser, cluster.workers[1]).sign_in("operator")
    console.page.click("#tab-operations")
    console.page.wait_for_selector("#audit-table tbody tr td")
    console.shot("operations")
    console.page.click("#tab-pipeline")
    console.page.evaluate(SEEN_STATES)
    console.page.click("#pause")
    assert console.page.is_visible("#confirm-pause")  # the console asks before pausing
    console.page.click("#confirm-pause-yes")
    console.until(
        "document.getElementById('pipeline-state').textContent === 'paused'", timeout=60_000
    )
    seen = console.page.evaluate("window.seenStates")
    # running, then draining for as long as payments were in flight (if the page looked
    # then), then paused: never back.
    shown = [state for i, state in enumerate(seen) if i == 0 or seen[i - 1] != state]
    assert shown in (
        ["paused"],
        ["running", "paused"],
        ["draining", "paused"],
        ["running", "draining", "paused"],
    ), seen
    assert cluster.workers[0].get("/control/status")[1]["state"] == "paused"
    console.page.click("#resume")
    console.until("document.getElementById('pipeline-state').textContent === 'running'")
    assert cluster.workers[0].get("/control/status")[1]["state"] == "running"
    assert console.errors == []
    console.close()


def test_the_console_fits_a_phone_screen(cluster, browser) -> None:
    console = Console(browser, cluster.workers[0], viewport={"width": 390, "height": 844})
    console.sign_in("viewer")
    width = console.page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390 + 1  # nothing wider than the screen: tables scroll in their own box
    console.shot("phone")
    console.close()


def test_swagger_ui_shows_the_generated_document_offline(cluster, browser) -> None:
    docs = Console(browser, cluster.workers[0], path="/docs")
    docs.page.wait_for_selector(".opblock")
    operations = docs.page.locator(".opblock").count()
    assert operations >= 25  # every documented operation
    assert "/payments/{payment_id}/trace" in docs.text("#swagger-ui")
    assert docs.errors == [] and docs.foreign == []
    docs.shot("api-docs")
    docs.close()
