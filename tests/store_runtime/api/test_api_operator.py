"""The operator console without a browser: who may see it (an operator, by bearer credential or the
login cookie), that its forms need the per-login CSRF token, that every action is in the audit log,
what the pages show, that every value is escaped and nothing is loaded from elsewhere, and that the
reads behind them are bounded. The browser tests are in tests/console/."""

from __future__ import annotations

import logging
import re
import socket
import threading
import time

import httpx
import numpy as np
import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import OperationalError

from api.api_fakes import APPLE, OAT_MILK, Api, assert_error
from store_runtime.api import api_server, create_app
from store_runtime.api.console import pages
from store_runtime.api.console.html import Page, login_document
from store_runtime.api.routes.operator import COOKIE, csrf_of_cookie
from store_runtime.baskets import Line, ReviewView
from store_runtime.db import PrivacyAuditRow
from store_runtime.events import camera_status_id
from store_runtime.privacy import PrivacyOffice, recent_audit
from store_runtime.runtime import EntryView, ReceiptView, SessionEventView, SessionView

HOSTILE = '<script>alert("x")</script>&\'"'
FORM = {"content-type": "application/x-www-form-urlencoded"}
PAGES = ["/operator", "/operator/reviews", "/operator/receipts", "/operator/cameras", "/operator/privacy",
         "/operator/privacy/customers/c-0001", "/operator/privacy/customers/c-0001/erase"]


def login(api: Api, who: str = "alice"):
    return api.client.post("/operator/login", content=f"token={api.tokens[who]}".encode(), headers=FORM,
                           follow_redirects=False)


def csrf(api: Api) -> str:
    return csrf_of_cookie(api.client.cookies[COOKIE])


def audit_ops(api: Api) -> list[tuple[str, str]]:
    return [(row["op"], row["actor"]) for row in recent_audit(api.runtime.db)][::-1]


def test_without_a_credential_every_page_is_the_login_form(api: Api) -> None:
    for path in PAGES:
        r = api.client.get(path)
        assert r.status_code == 401 and '<form class="login" method="post" action="/operator/login">' in r.text
    assert api.client.get("/", follow_redirects=False).headers["location"] == "/operator"


@pytest.mark.parametrize(("who", "status"), [("alice", 200), ("exit-1", 403), ("aisle", 403)])
def test_only_an_operator_credential_opens_the_pages(api: Api, who: str, status: int) -> None:
    for path in PAGES:
        assert api.client.get(path, headers=api.auth(who)).status_code == status, path
    assert api.client.get("/operator", headers={"Authorization": "Bearer wo_operator_nope"}).status_code == 401


def test_the_login_form_sets_a_strict_httponly_cookie_that_logout_forgets(api: Api) -> None:
    r = login(api)
    assert r.status_code == 303 and r.headers["location"] == "/operator"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=") and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert "Path=/operator" in cookie
    first = api.client.cookies[COOKIE]
    assert api.client.get("/operator").status_code == 200
    assert api.client.get("/operator/panel").status_code == 200
    assert f'name="csrf" value="{csrf(api)}"' in api.client.get("/operator/reviews").text
    login(api)
    assert api.client.cookies[COOKIE] != first  # each login its own CSRF token
    r = api.client.post("/operator/logout", data={"csrf": csrf(api)}, follow_redirects=False)
    assert r.status_code == 303 and f'{COOKIE}=""' in r.headers["set-cookie"]
    assert api.client.get("/operator").status_code == 401
    assert audit_ops(api) == [("operator_login", "alice"), ("operator_login", "alice"), ("operator_logout", "alice")]


@pytest.mark.parametrize("body", [b"", b"token=", b"token=wo_gate_x", b"token=" + b"x" * 5000, b"\xff\xfe=\x00",
                                  b"token=%ZZ&token=1&a=b&c=d&e=f&g=h&i=j&k=l&m=n&o=p&q=r&s=t&u=v&w=x&y=z&0=1&2=3",
                                  b"{\"token\": 1}"])
def test_a_wrong_login_is_401_with_the_form_again(api: Api, body: bytes) -> None:
    r = api.client.post("/operator/login", content=body, headers=FORM, follow_redirects=False)
    assert r.status_code == 401 and "not an operator credential" in r.text and "set-cookie" not in r.headers
    assert audit_ops(api) == []


def test_a_gate_credential_cannot_log_in_nor_a_cookie_with_a_dot(api: Api) -> None:
    assert login(api, "exit-1").status_code == 401
    # The credential and nonce of a cookie pasted as a credential: not one.
    r = api.client.post("/operator/login", content=f"token={api.tokens['alice']}.x".encode(), headers=FORM,
                        follow_redirects=False)
    assert r.status_code == 401


def test_the_cookie_opens_the_console_and_nothing_of_the_api(api: Api) -> None:
    login(api)
    assert_error(api.client.get("/v1/reviews"), 401, "unauthenticated")  # bearer only: no cross-site changes
    assert_error(api.client.post("/v1/disputes", json={}), 401, "unauthenticated")


def test_the_panel_stream_and_pictures_need_an_operator(api: Api) -> None:
    for path in ("/operator/panel", "/operator/stream", "/operator/live/gate.jpg"):
        assert_error(api.client.get(path), 401, "unauthenticated")
    assert_error(api.client.get("/operator/panel", headers=api.auth("exit-1")), 403, "forbidden")
    # walkout serve runs no camera nodes: no live view to show
    assert_error(api.client.get("/operator/live/gate.jpg", headers=api.auth("alice")), 404, "not_found")


def test_a_form_without_its_csrf_token_changes_nothing(api: Api) -> None:
    session = api.enter("c-0001")
    api.pick(session, OAT_MILK, confidence=0.2)
    review = api.runtime.reviews()[0].id
    login(api)
    for form in ({"decision": "reject"}, {"decision": "reject", "csrf": "0" * 64}):
        assert_error(api.client.post(f"/operator/reviews/{review}/decision", data=form), 403, "csrf")
    for path in ("/operator/privacy/purge", "/operator/privacy/customers/c-0001/erase",
                 "/operator/privacy/customers/c-0001/export", "/operator/disputes"):
        assert_error(api.client.post(path, data={"confirm": "c-0001"}), 403, "csrf")
    assert api.runtime.reviews()[0].status == "open" and audit_ops(api) == [("consent_given", "api:entry-1"),
                                                                             ("operator_login", "alice")]
    # A script with the bearer credential needs no token (a browser never adds that header itself).
    api.client.cookies.clear()
    r = api.client.post(f"/operator/reviews/{review}/decision", data={"decision": "reject"},
                        headers=api.auth("alice"), follow_redirects=False)
    assert r.status_code == 303


def test_review_decisions_and_disputes_from_the_page_are_audited_under_the_operator(api: Api) -> None:
    session = api.enter("c-0001")
    api.pick(session, OAT_MILK, confidence=0.2)
    assert api.exit(session).json()["status"] == "review"
    review = api.runtime.reviews()[0].id
    login(api)
    r = api.client.post(f"/operator/reviews/{review}/decision", data={"decision": "accept", "qty": "3",
                                                                      "csrf": csrf(api)}, follow_redirects=False)
    assert r.status_code == 303 and "done=accept" in r.headers["location"]
    receipt = api.runtime.receipt(session)
    assert receipt.status == "charged" and receipt.lines == (Line(OAT_MILK, 3, 359),)
    again = api.client.post(f"/operator/reviews/{review}/decision", data={"decision": "reject", "csrf": csrf(api)})
    assert again.status_code == 409 and "was accepted by alice" in again.text
    bad = api.client.post(f"/operator/reviews/{review}/decision", data={"decision": "maybe", "csrf": csrf(api)})
    assert bad.status_code == 422 and "decision" in bad.text
    r = api.client.post("/operator/disputes", data={"session": session, "gtin": OAT_MILK, "qty": "1",
                                                    "reason": HOSTILE, "csrf": csrf(api)}, follow_redirects=False)
    assert r.status_code == 303
    dispute = [v for v in api.runtime.reviews() if v.kind == "dispute"][0]
    api.client.post(f"/operator/reviews/{dispute.id}/decision", data={"decision": "accept", "csrf": csrf(api)})
    assert api.runtime.receipt(session).refunded_cents == 359
    assert [op for op in audit_ops(api) if op[1] == "alice"] == [
        ("operator_login", "alice"), ("review_decision", "alice"), ("dispute_opened", "alice"),
        ("review_decision", "alice")]
    with api.runtime.db.transaction() as tx:
        from sqlalchemy import select

        from store_runtime.db import PrivacyAuditRow
        last = tx.scalars(select(PrivacyAuditRow).order_by(PrivacyAuditRow.seq.desc())).first()
        assert last.detail["refunds"][0]["amount_cents"] == 359 and last.customer == "c-0001"
    assert PrivacyOffice(api.runtime).verify_audit().ok


def audit_rows(api: Api) -> list[PrivacyAuditRow]:
    with api.runtime.db.transaction() as tx:
        rows = list(tx.scalars(select(PrivacyAuditRow).order_by(PrivacyAuditRow.seq)))
        tx.expunge_all()
        return rows


def test_decisions_and_disputes_through_the_bearer_api_are_audited_too(api: Api) -> None:
    session = api.enter("c-0001")
    api.pick(session, OAT_MILK, confidence=0.2)
    api.exit(session)
    auth = api.auth("alice")
    review = api.runtime.reviews()[0].id
    r = api.client.post(f"/v1/reviews/{review}/decision", json={"decision": "accept", "qty": 2, "note": "two"},
                        headers=auth)
    assert r.status_code == 200
    r = api.client.post("/v1/disputes", json={"session": session, "gtin": OAT_MILK, "qty": 1, "reason": "one"},
                        headers=auth)
    assert r.status_code == 201
    dispute = r.json()["id"]
    assert api.client.post(f"/v1/reviews/{dispute}/decision", json={"decision": "accept"},
                           headers=auth).status_code == 200
    rows = [row for row in audit_rows(api) if row.actor == "alice"]
    assert [(row.op, row.customer) for row in rows] == [("review_decision", "c-0001"), ("dispute_opened", "c-0001"),
                                                        ("review_decision", "c-0001")]
    decided, opened, refunded = (row.detail for row in rows)
    [charge] = api.runtime.receipt(session).charges  # the shelf decision let the held exit be charged
    assert (decided["review"], decided["decision"], decided["qty"], decided["note"]) == (review, "accept", 2, "two")
    assert decided["charges"] == [{"id": charge.id, "kind": "exit", "amount_cents": 2 * 359}]
    assert opened == {"review": dispute, "session": session, "gtin": OAT_MILK, "qty": 1}
    [refund] = api.runtime.receipt(session).refunds
    assert refunded["kind"] == "dispute" and refunded["session"] == session
    assert refunded["refunds"] == [{"id": refund.id, "charge": charge.id, "amount_cents": 359}]
    assert PrivacyOffice(api.runtime).verify_audit().ok


def test_a_decision_whose_audit_row_cannot_be_written_is_not_made(api: Api) -> None:
    charged = api.enter("c-0001")
    api.pick(charged, APPLE)
    api.exit(charged)
    held = api.enter("c-0002")
    api.pick(held, OAT_MILK, confidence=0.2)
    api.exit(held)
    review = api.runtime.reviews()[0].id
    before = [api.runtime.receipt(charged), api.runtime.receipt(held)]
    with api.runtime.db.transaction() as tx:  # the audit log cannot take a row: the change must not stand alone
        tx.execute(text("ALTER TABLE privacy_audit RENAME TO privacy_audit_away"))
    with pytest.raises(OperationalError):
        api.runtime.resolve_review(review, "accept", by="alice")
    with pytest.raises(OperationalError):
        api.runtime.dispute(charged, APPLE, 1, "never took it", by="alice")
    assert [api.runtime.receipt(charged), api.runtime.receipt(held)] == before
    assert [(v.kind, v.status) for v in api.runtime.reviews(open_only=False)] == [("shelf", "open")]


def outage(api: Api, start: float, end: float | None) -> None:
    """The aisle node reports a stall from `start`, and its end at `end` (None: not yet)."""
    events = [{"id": camera_status_id("aisle", "stalled", start, start + 1), "t": start + 1, "camera": "aisle",
               "kind": "camera", "status": "stalled", "outage": "stalled", "start_t": start, "detail": "no frame"}]
    if end is not None:
        events.append({"id": camera_status_id("aisle", "recovered", start, end), "t": end, "camera": "aisle",
                       "kind": "camera", "status": "recovered", "outage": "stalled", "start_t": start, "end_t": end})
    api.post_events(*events)


def test_a_camera_outage_review_says_camera_window_and_what_was_missed_and_takes_qty_0(api: Api) -> None:
    session = api.enter("c-0001")
    api.pick(session, APPLE)
    t = api.clock.t
    outage(api, t + 2, t + 5.5)  # the aisle camera stalls for 3.5 s while the shopper is inside
    api.clock.advance(10)
    assert api.exit(session).json()["status"] == "review"
    [review] = api.runtime.reviews()
    login(api)
    page = api.client.get("/operator/reviews").text
    card = page[page.index(f'id="review-{review.id}"'):]
    assert "Camera outage during a visit" in card and "Uncertain shelf event" not in card
    window = f"{time.strftime('%H:%M:%S', time.gmtime(t + 2))}–{time.strftime('%H:%M:%S', time.gmtime(t + 5.5))}"
    assert f"camera <b>aisle</b> was <b>stalled</b> <b>{window}</b> (3.5 s)" in card
    assert "it may have missed: picks and puts at its shelves" in card and "a person (track" not in card
    assert 'name="qty" type="number" min="0"' in card and 'name="session"' not in card
    r = api.client.post(f"/operator/reviews/{review.id}/decision",
                        data={"decision": "accept", "gtin": APPLE, "qty": "0", "csrf": csrf(api)},
                        follow_redirects=False)
    assert r.status_code == 303, r.text
    receipt = api.runtime.receipt(session)
    assert receipt.status == "charged" and receipt.lines == () and receipt.total_cents == 0  # the apple went back
    assert audit_rows(api)[-1].detail["qty"] == 0
    timeline = api.client.get(f"/operator/sessions/{session}").text
    assert "Camera outage during a visit" in timeline and f"<b>{window}</b>" in timeline
    hostile = ReviewView(HOSTILE, "camera_outage", "open", 1.0, HOSTILE, HOSTILE, (), (HOSTILE,), (HOSTILE,),
                         {"camera": HOSTILE}, None, None, None, None)
    flag = {"camera": HOSTILE, "kind": HOSTILE, "start_t": 1.0, "end_t": None, "affects": [HOSTILE],
            "review": HOSTILE}
    for html in (pages.reviews_page(_hostile_page(), [hostile], [], outages={HOSTILE: flag}),
                 pages.reviews_page(_hostile_page(), [hostile], [])):
        assert "<script>alert" not in html and "&lt;script&gt;" in html and "Camera outage" in html


def test_the_pages_show_baskets_reviews_receipts_and_entries(api: Api) -> None:
    inside = api.enter("c-0001")
    api.pick(inside, APPLE)
    api.pick(inside, OAT_MILK, confidence=0.2)  # unsure: a review
    left = api.enter("c-0002")
    api.pick(left, APPLE, qty=2)
    assert api.exit(left).status_code == 200
    auth = api.auth("alice")
    page = api.client.get("/operator", headers=auth).text
    assert "In the store (1)" in page and "c-0001" in page and "Red Delicious Apple" in page
    assert "3.89 EUR" in page and "1 open review" in page
    assert "7.78 EUR" in page and "charged" in page  # c-0002's receipt: two apples
    assert page.count("admitted") == 2
    assert api.client.get("/operator/panel", headers=auth).text in page
    reviews = api.client.get("/operator/reviews", headers=auth).text
    assert "Review queue (1 open)" in reviews and "confidence <b>0.20</b>" in reviews and "no clip" in reviews
    assert "c-0002 · " + left in reviews  # may be given to a shopper who left
    receipts = api.client.get("/operator/receipts?q=c-0002", headers=auth).text
    assert "7.78 EUR" in receipts and "Open a dispute" in receipts and "c-0001" not in receipts
    assert api.client.get("/operator/receipts?q=<x>", headers=auth).status_code == 422
    timeline = api.client.get(f"/operator/sessions/{left}", headers=auth).text
    assert timeline.count("<circle") == 1 and "exit" in timeline and "captured" in timeline
    assert_error(api.client.get("/operator/sessions/nope", headers=auth), 404, "unknown_session")
    cameras = api.client.get("/operator/cameras", headers=auth).text
    assert "aisle" in cameras and "gate" in cameras


def test_privacy_screens_export_erase_after_a_confirm_and_purge(api: Api) -> None:
    session = api.enter("c-0003")
    api.pick(session, APPLE)
    api.exit(session)
    login(api)
    assert "given" in api.client.get("/operator/privacy/customers/c-0003").text
    r = api.client.post("/operator/privacy/customers/c-0003/export", data={"csrf": csrf(api)})
    assert r.status_code == 200 and "attachment" in r.headers["content-disposition"]
    assert r.json()["sessions"][0]["session"] == session
    wrong = api.client.post("/operator/privacy/customers/c-0003/erase", data={"csrf": csrf(api), "confirm": "c-0004"})
    assert wrong.status_code == 422 and "nothing was erased" in wrong.text
    assert PrivacyOffice(api.runtime).consents("c-0003")["purposes"]["checkout"]["state"] == "given"
    done = api.client.post("/operator/privacy/customers/c-0003/erase", data={"csrf": csrf(api), "confirm": "c-0003"})
    assert done.status_code == 200 and "Kept, and why" in done.text
    assert PrivacyOffice(api.runtime).consents("c-0003")["purposes"]["checkout"]["state"] == "withdrawn"
    r = api.client.post("/operator/privacy/purge", data={"csrf": csrf(api)}, follow_redirects=False)
    assert r.status_code == 303
    page = api.client.get("/operator/privacy?verify=1").text
    assert "The audit log verifies" in page and "by alice" in page
    mine = ("operator_login", "export", "erasure", "purge")
    assert [op for op, who in audit_ops(api) if who == "alice" and op in mine] == list(mine)
    assert api.client.get("/operator/privacy/customers/bad%20id").status_code == 422


def test_retention_status_counts_what_the_purge_then_removes(api: Api) -> None:
    for customer in ("c-0001", "c-0002"):
        session = api.enter(customer)
        api.pick(session, APPLE)
        api.exit(session)
    office = PrivacyOffice(api.runtime)
    assert not any(office.retention_status()["would_remove"].values())
    api.clock.advance(api.runtime.store.config.privacy.tracking_days * 86_400 + 1)
    status = office.retention_status()
    removed = office.purge(by="alice")["removed"]
    would = status["would_remove"]
    assert would["sessions_detached"] == removed["sessions_detached"] == 2
    # Detaching a session removes its tracks, events and entries too: the purge's counts add those.
    assert would["entries"] == removed["entries"] and all(would[k] <= removed.get(k, 0) for k in would)
    assert office.retention_status()["last_purge"]["by"] == "alice"


def test_the_purge_drops_ended_camera_outages_past_tracking_retention(api: Api) -> None:
    def visit(customer: str, start: float, end: float) -> str:
        session = api.enter(customer)
        api.pick(session, APPLE)
        outage(api, api.clock.t + start, api.clock.t + end)
        api.clock.advance(end + 5)
        assert api.exit(session).json()["status"] == "review"
        return session

    visit("c-0001", 1, 4)
    api.runtime.resolve_review(api.runtime.reviews()[0].id, "accept", by="alice")  # decided: it holds nothing
    held = visit("c-0002", 1, 4)  # its review stays open: the outage still holds a charge
    outage(api, api.clock.t + 1, None)  # still going
    office = PrivacyOffice(api.runtime)
    assert office.retention_status()["would_remove"]["camera_outages"] == 0
    api.clock.advance(api.runtime.store.config.privacy.tracking_days * 86_400 + 60)
    assert office.retention_status()["would_remove"]["camera_outages"] == 1
    before = {c["camera"]: c for c in api.runtime.camera_health()}
    assert office.purge(by="alice")["removed"]["camera_outages"] == 1
    after = {c["camera"]: c for c in api.runtime.camera_health()}
    assert [(o["end_t"] is None, o["sessions"]) for o in after["aisle"]["outages"]] == [(False, [held]), (True, [])]
    assert after["aisle"]["last_event_t"] == before["aisle"]["last_event_t"] is not None  # its newest status stays
    assert office.retention_status()["would_remove"]["camera_outages"] == 0
    login(api)
    assert "1 camera outages" in api.client.get("/operator/privacy").text  # the last purge, on the console


def test_the_reads_behind_the_pages_are_bounded(api: Api) -> None:
    sessions = []
    for i in range(1, 6):
        api.clock.advance(1)
        sessions.append(api.enter(f"c-{i:04d}"))
    for session in sessions[:3]:
        api.clock.advance(1)
        api.exit(session)
    count, inside = api.runtime.inside(limit=1)
    assert count == 2 and [v.session for v in inside] == [sessions[-1]]  # the newest of those inside
    assert [r.session for r in api.runtime.recent_receipts(2)] == [sessions[2], sessions[1]]
    assert [v.customer for v in api.runtime.entries(limit=2)] == ["c-0004", "c-0005"]
    assert api.runtime.open_review_count() == 0


def test_the_recent_receipts_are_read_by_index_not_sorted(api: Api) -> None:
    # SQLite's plan for the console's receipt queries (runtime.recent_receipts): an index walk in
    # exit order, no sort of every session that ever left.
    def plan(where: str) -> str:
        with api.runtime.db.engine.connect() as connection:
            rows = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN SELECT id FROM sessions WHERE {where} "
                                              "ORDER BY exited_t DESC, id DESC LIMIT 10").all()
        return " | ".join(str(row[-1]) for row in rows)

    store = plan("exited_t IS NOT NULL")
    assert "ix_sessions_exited_t_id" in store and "TEMP B-TREE" not in store, store
    customer = plan("exited_t IS NOT NULL AND customer = 'c-0001'")
    assert "ix_sessions_customer_exited_t_id" in customer and "TEMP B-TREE" not in customer, customer


def test_the_change_counter_moves_with_every_write_and_not_with_reads(api: Api) -> None:
    changes = api.runtime.changes
    before = changes.version
    api.client.get("/operator/panel", headers=api.auth("alice"))
    assert changes.version == before
    api.enter("c-0001")  # an entry, then a track: two writes
    assert changes.version == before + 2
    api.client.post("/v1/entries", json={"gate": "entry-1", "code": "garbage"}, headers=api.auth("entry-1"))
    assert changes.version == before + 3  # a refusal is recorded: a write too


def test_a_stopping_server_ends_the_console_stream_instead_of_cancelling_it(
        api: Api, caplog: pytest.LogCaptureFixture) -> None:
    # A real uvicorn on loopback whose graceful shutdown (1 s) is shorter than a stream's life
    # (STREAM_S): the stream must end on its own when the shutdown begins, not be cancelled.
    app = create_app(api.client.app.state.settings, runtime=api.runtime)  # type: ignore[attr-defined]
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    server = api_server(app, log_config=None, access_log=False, timeout_graceful_shutdown=1, lifespan="on")
    serving = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    serving.start()
    try:
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/operator/stream"
        with httpx.Client(timeout=30) as client, client.stream("GET", url, headers=api.auth("alice")) as r:
            assert r.status_code == 200
            lines = r.iter_lines()
            assert next(lines) == "retry: 1000" and next(lines) == "" and next(lines) == "event: change"
            server.should_exit = True
            rest = list(lines)  # to its clean end: a cancelled stream would raise (an incomplete body)
        assert "event: change" not in rest
    finally:
        server.should_exit = True
        serving.join(30)
    assert not serving.is_alive() and app.state.stopping.is_set()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


def test_the_pages_load_nothing_from_elsewhere_and_run_only_their_own_script(api: Api) -> None:
    auth = api.auth("alice")
    for path in PAGES:
        r = api.client.get(path, headers=auth)
        csp = r.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp and "nonce" not in csp
        assert re.findall(r"<script[^>]*>", r.text) == ['<script src="/operator/static/console.js" defer>']
        assert "style=" not in r.text and "<style" not in r.text  # the CSP would block them
        assert not re.search(r"""(src|href|action)=["']?(https?:)?//""", r.text)  # no CDN, no other site
        assert r.headers["cache-control"] == "no-store" and r.headers["x-content-type-options"] == "nosniff"
    for name, kind in (("console.js", "text/javascript"), ("console.css", "text/css")):
        r = api.client.get(f"/operator/static/{name}")
        assert r.status_code == 200 and r.headers["content-type"].startswith(kind)
    assert_error(api.client.get("/operator/static/..%2Fauth.py"), 404)


def _hostile_page() -> Page:
    return Page(base="/operator", store_id=HOSTILE, currency=HOSTILE, operator=HOSTILE, csrf=HOSTILE, open_reviews=1,
                names={"2110054234714": HOSTILE})


def test_every_value_is_escaped() -> None:
    line = Line("2110054234714", 1, 389)
    session = SessionView(HOSTILE, HOSTILE, 1, HOSTILE, 1.0, None, HOSTILE, (line,), 389, 3, HOSTILE, 1, 1)
    receipt = ReceiptView(HOSTILE, HOSTILE, 1.0, 2.0, (line,), 389, "charged", None, 389, 0, HOSTILE, (), ())
    review = ReviewView(HOSTILE, "shelf", "open", 1.0, HOSTILE, HOSTILE, (HOSTILE,), (HOSTILE,), (HOSTILE,),
                        {"action": HOSTILE, "gtin": HOSTILE, "qty": HOSTILE, "slot": HOSTILE, "camera": HOSTILE,
                         "confidence": 0.5}, None, None, HOSTILE, None)
    entry = EntryView(1.0, HOSTILE, HOSTILE, HOSTILE, False, HOSTILE, HOSTILE, None)
    event = SessionEventView(1.5, HOSTILE, HOSTILE, 1, 389, HOSTILE, HOSTILE, 0.5, HOSTILE, HOSTILE)
    status = {"scenario": HOSTILE, "day": HOSTILE, "store_t": 1.0, "events_applied": HOSTILE,
              "cameras": [{"camera": HOSTILE, "state": HOSTILE, "loop": HOSTILE, "error": HOSTILE}]}
    page = _hostile_page()
    live = pages.LiveData(1, [session], [receipt], [entry], status=status, cameras={HOSTILE: (64, 48)})
    camera = pages.CameraData({HOSTILE: {"role": HOSTILE, "fps": HOSTILE}}, [{"camera": HOSTILE, "state": HOSTILE,
                                                                            "outages": [{"kind": HOSTILE}]}],
                              status, cameras={HOSTILE: (64, 48)}, slot_maps=True)
    consents = {"customer": HOSTILE, "purposes": {HOSTILE: {"state": HOSTILE, "method": HOSTILE}},
                "history": [{"purpose": HOSTILE, "recorded_by": HOSTILE}]}
    written = [
        pages.live_page(page, live),
        pages.reviews_page(page, [review], [pages.Choice(HOSTILE, HOSTILE, HOSTILE)], error=HOSTILE),
        pages.receipts_page(page, [receipt], {HOSTILE: [review]}, query=HOSTILE),
        pages.session_page(page, session, receipt, [event], [review], now=2.0),
        pages.cameras_page(page, camera, now=2.0),
        pages.privacy_page(page, {"would_remove": {HOSTILE: HOSTILE}, "last_purge": None},
                           [{"seq": 1, "t": 1.0, "actor": HOSTILE, "op": HOSTILE, "customer": HOSTILE,
                             "sha256": HOSTILE}], check={"ok": False, "problem": HOSTILE}),
        pages.privacy_customer_page(page, consents, [receipt]),
        pages.erase_confirm_page(page, HOSTILE, error=HOSTILE),
        pages.erase_done_page(page, {"customer": HOSTILE, "removed": {HOSTILE: 1}, "kept": [{"what": HOSTILE}]}),
        login_document(base="/operator", message=HOSTILE),
    ]
    for html in written:
        assert "<script>alert" not in html and "'\"" not in html, html
        assert "&lt;script&gt;" in html


def test_a_live_picture_is_served_as_jpeg(api: Api) -> None:
    from store_runtime.live import LiveView
    from vision.privacy import PrivacyConfig, Redactor
    from vision.types import Detections, Frame

    class NoFaces:
        def detect(self, image: np.ndarray) -> Detections:
            return Detections.empty(("face",))

    view = LiveView({"gate": (64, 48)})
    api.client.app.state.live_view = view  # type: ignore[attr-defined]
    auth = api.auth("alice")
    assert_error(api.client.get("/operator/live/gate.jpg", headers=auth), 503, "no_picture_yet")
    assert_error(api.client.get("/operator/live/aisle.jpg", headers=auth), 404, "not_found")
    frame = Frame("gate", 0, 0.0, np.zeros((48, 64, 3), np.uint8))
    view.put("gate", Redactor(NoFaces(), PrivacyConfig(lookahead=0, budget_ms=None)).redact(frame))
    r = api.client.get("/operator/live/gate.jpg", headers=auth)
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg" and r.content[:2] == b"\xff\xd8"
    assert 'data-live="/operator/live/gate.jpg' in api.client.get("/operator", headers=auth).text
