"""The privacy routes (SPEC section 7: "an operator reviews and handles privacy"): operators only,
every bad input a 4xx naming the field, and the entry gate's answer for a customer who withdrew."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from api.api_fakes import APPLE, STORE_YAML, Api, assert_error, serve
from store_runtime.api import create_app, open_runtime
from store_runtime.api.settings import ApiSettings
from store_runtime.db import PrivacyAuditRow
from store_runtime.events import event_id

CONSENT = {"purposes": ["analytics"], "method": "app"}
# method, path, body: every privacy route.
ROUTES: list[tuple[str, str, dict | None]] = [
    ("GET", "/v1/privacy/consents/c-0001", None),
    ("POST", "/v1/privacy/consents/c-0001", CONSENT),
    ("POST", "/v1/privacy/consents/c-0001/withdraw", CONSENT),
    ("GET", "/v1/privacy/customers/c-0001/export", None),
    ("DELETE", "/v1/privacy/customers/c-0001", None),
    ("POST", "/v1/privacy/retention/purge", None),
    ("GET", "/v1/privacy/audit/verify", None),
    ("GET", "/v1/privacy/record", None),
]


def call(api: Api, method: str, path: str, body: Any = None, *, as_: str | None = "alice") -> Any:
    return api.client.request(method, path, json=body, headers=api.auth(as_) if as_ else {})


def test_privacy_routes_are_for_operators_only(api: Api) -> None:
    for method, path, body in ROUTES:
        for other in ("entry-1", "exit-1", "aisle"):
            assert_error(call(api, method, path, body, as_=other), 403, "forbidden")
        assert_error(call(api, method, path, body, as_=None), 401)
        assert call(api, method, path, body).status_code == 200, path
    # The refused calls changed nothing: the log holds the operator's calls only.
    assert {who for *_, who in audit(api)} == {"alice"}
    assert call(api, "GET", "/v1/privacy/audit/verify").json()["ok"] is True


def audit(api: Api) -> list[tuple[str, str | None, str]]:
    with api.runtime.db.transaction() as tx:
        return [(r.op, r.customer, r.actor) for r in tx.scalars(select(PrivacyAuditRow).order_by(PrivacyAuditRow.seq))]


def test_a_customer_who_withdrew_checkout_gets_403_no_consent_at_the_gate(api: Api) -> None:
    r = call(api, "POST", "/v1/privacy/consents/c-0001/withdraw", {"purposes": ["checkout"], "method": "app"})
    assert r.json()["purposes"]["checkout"]["state"] == "withdrawn"
    refused = api.client.post("/v1/entries", json={"gate": "entry-1", "code": api.code()}, headers=api.auth("entry-1"))
    body = assert_error(refused, 403, "no_consent")
    assert "withdrawn consent to checkout" in body["detail"]
    # Consent given again at the gate's screen: the same code now opens a session.
    call(api, "POST", "/v1/privacy/consents/c-0001", {"purposes": ["checkout"], "method": "gate_screen"})
    assert api.client.post("/v1/entries", json={"gate": "entry-1", "code": api.code()},
                           headers=api.auth("entry-1")).status_code == 201


def test_withdrawal_mid_session_charges_the_basket_so_far_and_ignores_the_rest(api: Api) -> None:
    session = api.enter()
    api.pick(session)
    r = call(api, "POST", "/v1/privacy/consents/c-0001/withdraw", {"purposes": ["checkout"], "method": "app"})
    assert r.status_code == 200 and r.json()["sessions_closed"] == [session]
    receipt = api.client.get(f"/v1/receipts/{session}", headers=api.auth("alice")).json()
    assert (receipt["status"], receipt["total_cents"]) == ("charged", 389) and receipt["charge"]
    api.pick(session)  # the node still sends what it sees: the runtime takes it and discards it
    assert api.client.get(f"/v1/receipts/{session}", headers=api.auth("alice")).json()["total_cents"] == 389
    # The gate's exit after that answers the receipt: the session was closed and charged once.
    exit_ = api.exit(session)
    assert exit_.status_code == 200 and exit_.json()["charge"] == receipt["charge"]


def test_export_then_erasure_of_a_shopper_inside(api: Api) -> None:
    session = api.enter()
    api.pick(session)
    export = call(api, "GET", "/v1/privacy/customers/c-0001/export").json()
    assert [s["session"] for s in export["sessions"]] == [session]
    assert [e["gtin"] for e in export["sessions"][0]["events"]] == [APPLE]

    erased = call(api, "DELETE", "/v1/privacy/customers/c-0001")
    assert erased.status_code == 200
    answer = erased.json()
    assert answer["sessions_closed"] == [session] and answer["removed"]["tracks"] == 1
    assert all(k["what"] and k["why"] and k["until"] for k in answer["kept"])
    after = call(api, "GET", "/v1/privacy/customers/c-0001/export").json()
    assert after["sessions"][0]["tracks"] == [] and after["entries"] == []
    assert after["sessions"][0]["receipt"]["total_cents"] == 389
    assert [op for op, *_ in audit(api)] == ["consent_given", "export", "erasure", "export"]
    verify = call(api, "GET", "/v1/privacy/audit/verify").json()
    assert verify["ok"] and verify["rows"] == 4 and len(verify["head"]) == 64


def test_purge_and_record_answer_from_the_running_configuration(api: Api) -> None:
    purge = call(api, "POST", "/v1/privacy/retention/purge").json()
    assert purge["cutoffs"]["video"] == api.clock.t - 3 * 86_400  # store.yaml has no privacy section: defaults
    record = call(api, "GET", "/v1/privacy/record").json()
    assert record["store"] == api.runtime.store.config.store_id and record["retention"]["video_days"] == 3
    assert {c["where"] for c in record["categories"]} >= {"database table consents", "database table sessions"}


@pytest.mark.parametrize(("method", "path", "body", "field"), [
    ("POST", "/v1/privacy/consents/c-0001", {"purposes": ["marketing"], "method": "app"}, "body.purposes[0]"),
    ("POST", "/v1/privacy/consents/c-0001", {"purposes": [], "method": "app"}, "body.purposes"),
    ("POST", "/v1/privacy/consents/c-0001", {"purposes": ["checkout"]}, "body.method"),
    ("POST", "/v1/privacy/consents/c-0001", {**CONSENT, "method": "email"}, "body.method"),
    ("POST", "/v1/privacy/consents/c-0001", {**CONSENT, "notice_version": ""}, "body.notice_version"),
    ("POST", "/v1/privacy/consents/c-0001", {**CONSENT, "given_t": 0}, "body.given_t"),
    ("POST", "/v1/privacy/consents/c-0001/withdraw", {"purposes": "checkout", "method": "app"}, "body.purposes"),
    ("GET", "/v1/privacy/consents/not%20an%20id", None, "path.customer"),
    ("GET", "/v1/privacy/customers/" + "c" * 65 + "/export", None, "path.customer"),
    ("DELETE", "/v1/privacy/customers/%E2%80%AEc-1", None, "path.customer"),
])
def test_bad_input_is_a_422_naming_the_field(api: Api, method: str, path: str, body: dict | None,
                                             field: str) -> None:
    r = call(api, method, path, body)
    error = assert_error(r, 422, "invalid_request")
    assert field in [f["field"] for f in error["fields"]], error
    assert audit(api) == []  # a refused request is no privacy operation


CUSTOMERS = st.from_regex(r"[A-Za-z0-9._-]{1,64}", fullmatch=True) | st.text(max_size=80)
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                    max_leaves=10)
BODIES = st.fixed_dictionaries({}, optional={"purposes": st.lists(st.sampled_from(
    ["checkout", "review_clips", "analytics", "x"]), max_size=4) | JSON, "method": st.sampled_from(
    ["app", "gate_screen", "x"]) | JSON, "notice_version": st.text(max_size=250) | JSON}) | JSON


def test_no_body_or_customer_id_makes_a_5xx(tmp_path: Path) -> None:
    with serve(tmp_path) as api:

        @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(customer=CUSTOMERS, body=BODIES, route=st.sampled_from(["", "/withdraw"]))
        def post_anything(customer: str, body: Any, route: str) -> None:
            path = "/v1/privacy/consents/" + quote(customer, safe="")
            r = api.client.post(path + route, content=json.dumps(body), headers={
                **api.auth("alice"), "content-type": "application/json"})
            assert r.status_code < 500, r.text
            if r.status_code >= 400:
                assert isinstance(r.json()["detail"], str)

        post_anything()


def test_the_app_runs_the_retention_purge_at_start_and_on_schedule(tmp_path: Path) -> None:
    settings_ = ApiSettings(store=STORE_YAML, db_url=f"sqlite:///{tmp_path / 'w.db'}")
    runtime = open_runtime(settings_)
    try:
        with TestClient(create_app(settings_, runtime=runtime, retention_every_s=0.05)):
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and len(purges(runtime)) < 2:
                time.sleep(0.02)
        assert len(purges(runtime)) >= 2  # once at start, then again a moment later
        stopped = len(purges(runtime))
        time.sleep(0.2)
        assert len(purges(runtime)) == stopped  # the job ends with the app
    finally:
        runtime.db.close()


def purges(runtime: Any) -> list[str]:
    with runtime.db.transaction() as tx:
        return list(tx.scalars(select(PrivacyAuditRow.actor).where(PrivacyAuditRow.op == "purge")))


def test_a_node_event_of_a_withdrawn_shopper_is_accepted_and_discarded(api: Api) -> None:
    # The node cannot know about consent: its post succeeds, and nothing of it is applied.
    session = api.enter()
    call(api, "POST", "/v1/privacy/consents/c-0001/withdraw", {"purposes": ["checkout"], "method": "app"})
    api.post_events({"id": event_id("aisle", "exited", 1), "t": api.clock.t + 5, "camera": "aisle", "kind": "exited",
                     "track": 1, "zone": "exit-1"})
    export = call(api, "GET", "/v1/privacy/customers/c-0001/export").json()
    assert [d["kind"] for d in export["sessions"][0]["discarded_events"]] == ["exited"]
    assert export["sessions"][0]["session"] == session
