"""The operator console in a real browser: headless Chromium (Debian's `chromium`, never a downloaded
one) driven by Playwright, against a real `walkout serve` on 127.0.0.1 fed the node events of the
sample scenario 02-pick-put (its truth's picks and puts, one made uncertain so that it waits for a
person). The operator logs in, resolves the review in the page, and the receipt changes, on the page
and on /v1/receipts; a wrong credential and a form without its CSRF token are refused; the live page
follows the store by server-sent events without a reload; an erasure goes through its confirm step.

A screenshot of each page is kept under tests/artifacts/console/ (git-ignored) for a person to look
at. Skipped, saying why, where /usr/bin/chromium or Playwright is missing (CI installs both).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from paths import REPO, SAMPLES

from store_runtime.bench_load import free_port
from store_runtime.config import load_store
from store_runtime.db import add_credential, open_database
from store_runtime.events import event_id
from vision.entry_code import EntryClaims, make_code

CHROMIUM = Path("/usr/bin/chromium")
SCENARIO = SAMPLES / "02-pick-put"
ARTIFACTS = REPO / "tests" / "artifacts" / "console"
JUICE = "2221715083333"  # Tropicana Mandarin Morning Juice, 419 cents, slot A4: the pick made uncertain

playwright_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed "
                                                                   "(pip install playwright: the dev extra)")
if not CHROMIUM.is_file():
    pytest.skip(f"{CHROMIUM} is absent: apt-get install chromium (the console's browser tests drive it, "
                "never a downloaded browser)", allow_module_level=True)


@dataclass
class Store:
    """A real `walkout serve` of the sample store, and the credentials of its gates, nodes and operator."""

    base: str
    tokens: dict[str, str]
    key: bytes
    store_id: str
    http: httpx.Client
    tracks: dict[str, int] = field(default_factory=dict)

    def auth(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[name]}"}

    def events(self, *events: dict[str, Any]) -> None:
        r = self.http.post("/v1/events", json={"events": list(events)}, headers=self.auth("aisle"))
        assert r.status_code == 200, r.text

    def enter(self, customer: str) -> str:
        """The customer's code read at entry-1, then their track through the entry zone."""
        code = make_code(self.key, EntryClaims(customer, f"jti-{customer}", self.store_id, int(time.time()) + 900, 1))
        r = self.http.post("/v1/entries", json={"gate": "entry-1", "code": code}, headers=self.auth("entry-1"))
        assert r.status_code == 201, r.text
        session = r.json()["session"]
        self.tracks[session] = track = len(self.tracks) + 1
        self.events({"id": event_id("aisle", "entered", track), "t": time.time(), "camera": "aisle",
                     "kind": "entered", "track": track, "zone": "entry-1"})
        return session

    def shelf(self, session: str, truth_event: dict[str, Any], *, confidence: float = 0.95) -> None:
        track = self.tracks[session]
        self.events({"id": event_id("aisle", "shelf", session, truth_event["t"], truth_event["gtin"]),
                     "t": time.time(), "camera": "aisle", "kind": "shelf", "action": truth_event["action"],
                     "track": track, "gtin": truth_event["gtin"], "qty": truth_event["qty"],
                     "slot": truth_event["slot"], "confidence": confidence})

    def leave(self, session: str) -> dict[str, Any]:
        r = self.http.post("/v1/exits", json={"gate": "exit-1", "session": session},
                           headers={**self.auth("exit-1"), "Idempotency-Key": f"exit-{session}"})
        assert r.status_code == 200, r.text
        return r.json()

    def receipt(self, session: str) -> dict[str, Any]:
        r = self.http.get(f"/v1/receipts/{session}", headers=self.auth("alice"))
        assert r.status_code == 200, r.text
        return r.json()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    folder = tmp_path_factory.mktemp("console")
    url = f"sqlite:///{folder / 'walkout.db'}"
    db = open_database(url)
    try:
        tokens = {name: add_credential(db, role, name) for name, role in  # type: ignore[arg-type]
                  {"entry-1": "gate", "exit-1": "gate", "aisle": "node", "alice": "operator"}.items()}
    finally:
        db.close()
    port = free_port()
    log = (folder / "serve.log").open("w+")
    server = subprocess.Popen([sys.executable, "-m", "store_runtime.cli", "serve", "--store",
                               str(SCENARIO / "store.yaml"), "--db", url, "--port", str(port)],
                              stdout=log, stderr=subprocess.STDOUT, cwd=folder)
    base = f"http://127.0.0.1:{port}"
    config = load_store(SCENARIO / "store.yaml").config
    try:
        with httpx.Client(base_url=base, timeout=10) as http:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if http.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert server.poll() is None, (folder / "serve.log").read_text()
                assert time.monotonic() < deadline, "walkout serve did not answer within 60 s"
                time.sleep(0.1)
            yield Store(base, tokens, config.entry_key_bytes, config.store_id, http)
    finally:
        server.terminate()
        server.wait(timeout=20)
        text = (folder / "serve.log").read_text()
        assert "Traceback" not in text, text


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any, store: Store) -> Iterator[Any]:
    context = browser.new_context(base_url=store.base, viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    tab.set_default_timeout(10_000)
    errors: list[str] = []
    tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    try:
        yield tab
    finally:
        context.close()
    # A CSP violation, a script error or a failed load would show here.
    assert not [e for e in errors if "401" not in e and "403" not in e and "422" not in e], errors


def shot(tab: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    tab.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def log_in(tab: Any, store: Store) -> None:
    tab.goto("/operator")
    tab.fill("#token", store.tokens["alice"])
    tab.click("form.login button")
    tab.wait_for_selector("header nav")


def truth() -> list[dict[str, Any]]:
    return json.loads((SCENARIO / "truth.json").read_text())["events"]


# --------------------------------------------------------------------------------------------


def test_a_wrong_credential_is_refused_and_sets_no_cookie(page: Any, store: Store) -> None:
    page.goto("/operator")
    shot(page, "login")
    page.fill("#token", store.tokens["exit-1"])  # a real credential, of a gate
    with page.expect_response(lambda r: r.url.endswith("/operator/login")) as answer:
        page.click("form.login button")
    assert answer.value.status == 401
    assert "not an operator credential" in page.inner_text(".error")
    assert page.context.cookies() == []
    assert page.request.get("/operator/reviews").status == 401


def test_the_operator_resolves_a_review_in_the_page_and_the_receipt_changes(page: Any, store: Store) -> None:
    session = store.enter("c-0001")
    for event in truth():  # pick C2, pick A4 (made uncertain: a review), put C2
        store.shelf(session, event, confidence=0.3 if event["gtin"] == JUICE else 0.95)
    held = store.leave(session)
    assert held["status"] == "review" and held["lines"] == []  # the juice waits for a person; nothing charged

    log_in(page, store)
    page.click("header nav >> text=Reviews")
    card = page.locator("article.review", has_text="Tropicana Mandarin Morning Juice")
    assert "confidence 0.30" in card.inner_text() and "c-0001" in card.inner_text()
    assert card.locator(".clip").inner_text() == "no clip"  # walkout serve records no clips
    shot(page, "reviews")
    card.locator("form.change input[name=qty]").fill("2")  # the shopper took two
    card.locator("form.change input[name=note]").fill("two bottles on the clip")
    card.locator("form.change button").click()
    assert "accepted" in page.inner_text(".flash")
    assert page.locator("article.review", has_text="Tropicana").count() == 0

    receipt = store.receipt(session)
    assert receipt["status"] == "charged"
    assert receipt["lines"] == [{"gtin": JUICE, "qty": 2, "unit_cents": 419}]
    assert receipt["total_cents"] == 838 and receipt["charged_cents"] == 838
    page.goto(f"/operator/receipts?q={session}")
    row = page.locator("table.receipts tbody tr").first
    assert "2 × Tropicana Mandarin Morning Juice" in row.inner_text() and "8.38 EUR" in row.inner_text()
    shot(page, "receipts")

    page.click(f"a[href='/operator/sessions/{session}']")
    assert page.locator("figure.timeline svg circle").count() == 3  # pick, put, and the juice by review
    assert "a person's review" in page.inner_text("main")
    shot(page, "timeline")

    # A dispute from the receipts page, accepted in the queue: refunded.
    page.goto(f"/operator/receipts?q={session}")
    page.click("details summary")
    page.fill("details input[name=reason]", "only one bottle at home")
    page.click("details button")
    assert "opened" in page.inner_text(".flash")
    page.goto("/operator/reviews")
    page.locator("article.review", has_text="Dispute").locator("button", has_text="Accept").click()
    assert store.receipt(session)["refunded_cents"] == 419

    page.goto("/operator/privacy")
    audit = page.inner_text("main")
    for op in ("operator_login", "review_decision", "dispute_opened"):
        assert re.search(rf"alice\s+{op}", audit), audit


def test_a_post_without_the_csrf_token_is_refused(page: Any, store: Store) -> None:
    session = store.enter("c-0002")
    store.shelf(session, {"t": 1.0, "action": "pick", "gtin": JUICE, "qty": 1, "slot": "A4"}, confidence=0.2)
    log_in(page, store)  # the cookie is there: only the token is missing
    review = store.http.get("/v1/reviews", headers=store.auth("alice")).json()[-1]["id"]
    for form in ({"decision": "reject"}, {"decision": "reject", "csrf": "0" * 64}):
        r = page.request.post(f"/operator/reviews/{review}/decision", form=form)
        assert r.status == 403 and r.json()["error"] == "csrf"
    still = store.http.get("/v1/reviews", headers=store.auth("alice")).json()
    assert review in [v["id"] for v in still]  # nothing was decided


def test_the_live_page_follows_the_basket_without_a_reload(page: Any, store: Store) -> None:
    log_in(page, store)
    page.wait_for_selector("body[data-stream=open]")
    page.evaluate("window.notReloaded = true")
    session = store.enter("c-0004")
    panel = page.locator("#panel")
    panel.locator("table.inside", has_text="c-0004").wait_for()
    store.shelf(session, {"t": 2.0, "action": "pick", "gtin": JUICE, "qty": 1, "slot": "A4"})
    panel.locator("table.inside tr", has_text="Tropicana Mandarin Morning Juice").wait_for()
    assert page.evaluate("window.notReloaded") is True
    shot(page, "live")
    for path, name in (("/operator/cameras", "cameras"), ("/operator/privacy?verify=1", "privacy")):
        page.goto(path)
        shot(page, name)
    assert "The audit log verifies" in page.inner_text(".ok")


def test_an_erasure_through_the_page(page: Any, store: Store) -> None:
    session = store.enter("c-0003")
    store.shelf(session, {"t": 3.0, "action": "pick", "gtin": JUICE, "qty": 1, "slot": "A4"})
    store.leave(session)
    log_in(page, store)
    page.click("header nav >> text=Privacy")
    page.fill("input[name=customer]", "c-0003")
    page.click("form.search button")
    assert "given" in page.inner_text("main")
    shot(page, "customer")
    with page.expect_download() as download:
        page.click("text=Download the access export (JSON)")
    export = json.loads(Path(download.value.path()).read_text())
    assert export["customer"] == "c-0003" and [s["session"] for s in export["sessions"]] == [session]

    page.click("text=Erase this customer…")
    page.fill("input[name=confirm]", "c-0004")  # the wrong customer: nothing happens
    page.click("button.danger")
    assert "nothing was erased" in page.inner_text(".error")
    shot(page, "erase-confirm")
    page.fill("input[name=confirm]", "c-0003")
    page.click("button.danger")
    assert "erased" in page.inner_text(".flash")
    shot(page, "erased")
    after = store.http.get("/v1/privacy/customers/c-0003/export", headers=store.auth("alice")).json()
    visit = after["sessions"][0]
    assert visit["detached_t"] is not None and visit["tracks"] == []
    assert [(e["source"], e["camera"], e["slot"]) for e in visit["events"]] == [("receipt", None, None)]
    consents = store.http.get("/v1/privacy/consents/c-0003", headers=store.auth("alice")).json()
    assert consents["purposes"]["checkout"]["state"] == "withdrawn"
    assert store.receipt(session)["total_cents"] == 419  # the receipt is kept (accounting law)
