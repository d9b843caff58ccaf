"""POST /v1/exits: every answer of SPEC section 7, idempotency as payment APIs do it, and who may ask."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from api.api_fakes import APPLE, OAT_MILK, Api, assert_error, serve
from store_runtime.payments import (
    Authorisation,
    LocalProvider,
    PaymentError,
    claim_key,
    decline_customers,
    request_hash,
)


def captures(api: Api) -> list[dict]:
    return [row for row in api.provider.ledger() if row["op"] == "capture"]


def test_200_the_receipt_with_the_charge_id(api: Api) -> None:
    session = api.enter("c-0001")
    api.pick(session, APPLE, qty=2)
    api.pick(session, OAT_MILK)
    r = api.exit(session)
    assert r.status_code == 200, r.text
    receipt = r.json()
    assert receipt["session"] == session and receipt["customer"] == "c-0001"
    assert receipt["lines"] == [{"gtin": OAT_MILK, "qty": 1, "unit_cents": 359},
                                {"gtin": APPLE, "qty": 2, "unit_cents": 389}]
    assert receipt["total_cents"] == receipt["charged_cents"] == 2 * 389 + 359
    assert receipt["status"] == "charged" and receipt["charge"].startswith("ch_")
    assert receipt["exited_t"] is not None and receipt["entered_t"] <= receipt["exited_t"]
    assert api.provider.balance("c-0001") == 2 * 389 + 359


def test_200_an_empty_basket_is_charged_nothing(api: Api) -> None:
    receipt = api.exit(api.enter()).json()
    assert (receipt["status"], receipt["total_cents"], receipt["charge"], receipt["lines"]) == ("charged", 0, None, [])
    assert captures(api) == []


def test_a_retry_with_the_same_key_and_body_gets_the_same_body_and_is_charged_once(api: Api) -> None:
    session = api.enter()
    api.pick(session)
    first = api.exit(session, "exit-key-1")
    api.clock.advance(30)
    again = [api.exit(session, "exit-key-1") for _ in range(3)]
    assert all(r.status_code == 200 and r.content == first.content for r in again)
    assert len(captures(api)) == 1 and api.provider.balance("c-0001") == 389


def test_another_key_for_a_session_charged_already_answers_its_receipt_without_charging(api: Api) -> None:
    # A gate that lost its key (rebooted) and asks again: the session's own state stops a second charge.
    session = api.enter()
    api.pick(session)
    first = api.exit(session, "key-a").json()
    second = api.exit(session, "key-b")
    assert second.status_code == 200 and second.json()["charge"] == first["charge"]
    assert len(captures(api)) == 1


def test_422_the_key_used_with_a_different_body(api: Api) -> None:
    one, other = api.enter("c-0001"), api.enter("c-0002")
    assert api.exit(one, "shared-key").status_code == 200
    assert_error(api.exit(other, "shared-key"), 422, "key_reused")
    assert api.runtime.session(other).status == "open"  # nothing happened to the other session


def test_409_a_request_with_this_key_is_still_in_flight(api: Api) -> None:
    # A first request that claimed the key and has not answered yet (its charge is with the provider).
    session = api.enter()
    body = {"gate": "exit-1", "session": session}
    with api.runtime.db.transaction() as tx:
        claim_key(tx, "busy-key", request_hash(body), now=api.clock(), lease_s=30)
    assert_error(api.exit(session, "busy-key"), 409, "in_flight")
    assert api.runtime.session(session).status == "open" and captures(api) == []


def test_402_payment_declined_leaves_the_session_for_a_person(tmp_path: Path) -> None:
    with serve(tmp_path, decline=decline_customers("c-broke", reason="card declined")) as api:
        session = api.enter("c-broke")
        api.pick(session)
        r = api.exit(session, "k-declined")
        body = assert_error(r, 402, "payment_declined")
        assert body["detail"] == "card declined" and body["session"] == session and body["charge"]
        assert api.exit(session, "k-declined").content == r.content  # the stored answer, replayed
        assert api.runtime.session(session).status == "declined"
        receipt = api.client.get(f"/v1/receipts/{session}", headers=api.auth("alice")).json()
        assert receipt["status"] == "open" and receipt["charge"] is None
        assert api.provider.balance("c-broke") == 0


def test_404_no_such_session(api: Api) -> None:
    assert_error(api.exit("s_00000000000000000000"), 404, "unknown_session")


def test_422_a_gate_that_is_no_exit_gate(api: Api) -> None:
    session = api.enter()
    assert_error(api.exit(session, gate="entry-1"), 422, "not_an_exit_gate")
    assert api.runtime.session(session).status == "open"


def test_422_no_idempotency_key_names_the_header(api: Api) -> None:
    session = api.enter()
    r = api.client.post("/v1/exits", json={"gate": "exit-1", "session": session}, headers=api.auth("exit-1"))
    body = assert_error(r, 422, "invalid_request")
    assert "Idempotency-Key" in body["detail"]


@pytest.mark.parametrize("key", ["", "k" * 256, "clé-1", "a\tb", "camera:0123456789abcdef01234567"])
def test_400_an_idempotency_key_empty_too_long_not_printable_ascii_or_the_runtimes_own(api: Api, key: str) -> None:
    session = api.enter()
    r = api.client.post("/v1/exits", json={"gate": "exit-1", "session": session},
                        headers={**api.auth("exit-1"), "Idempotency-Key": key.encode()})
    body = assert_error(r, 400, "bad_idempotency_key")
    assert "Idempotency-Key" in body["detail"]
    assert api.runtime.session(session).status == "open"


def test_a_key_of_255_characters_is_fine(api: Api) -> None:
    assert api.exit(api.enter(), "k" * 255).status_code == 200


@pytest.mark.parametrize(("who", "status", "error"), [
    ("aisle", 403, "forbidden"),       # a camera node cannot charge anyone
    ("alice", 403, "forbidden"),       # nor can an operator act as a gate
    ("entry-1", 403, "wrong_gate"),    # a gate acts for itself only
])
def test_only_the_exit_gate_itself_closes_a_session(api: Api, who: str, status: int, error: str) -> None:
    session = api.enter()
    assert_error(api.exit(session, as_=who), status, error)
    assert api.runtime.session(session).status == "open"


def test_401_without_a_credential(api: Api) -> None:
    session = api.enter()
    r = api.client.post("/v1/exits", json={"gate": "exit-1", "session": session}, headers={"Idempotency-Key": "k"})
    assert_error(r, 401, "unauthenticated")


class OutageProvider(LocalProvider):
    """A provider that is down until the test says otherwise."""

    down = True

    def authorise(self, **kwargs: Any) -> Authorisation:
        if type(self).down:
            raise PaymentError("connection refused by the card processor")
        return super().authorise(**kwargs)


def test_503_the_provider_down_then_a_retry_with_the_same_key_charges_once(tmp_path: Path) -> None:
    with serve(tmp_path, provider_type=OutageProvider) as api:
        session = api.enter()
        api.pick(session)
        OutageProvider.down = True
        body = assert_error(api.exit(session, "k-outage"), 503, "payment_unavailable")
        assert "Idempotency-Key" in body["detail"]
        OutageProvider.down = False
        first = api.exit(session, "k-outage")
        assert first.status_code == 200 and first.json()["status"] == "charged"
        assert api.exit(session, "k-outage").content == first.content
        assert len(captures(api)) == 1 and api.provider.balance("c-0001") == 389


class SlowProvider(LocalProvider):
    """A provider whose authorisation waits for the test: the first exit request stays in flight."""

    started = threading.Event()
    release = threading.Event()

    def authorise(self, **kwargs: Any) -> Authorisation:
        type(self).started.set()
        assert type(self).release.wait(30)
        return super().authorise(**kwargs)


def test_409_while_the_first_request_is_with_the_provider_then_its_answer(tmp_path: Path) -> None:
    SlowProvider.started.clear()
    SlowProvider.release.clear()
    with serve(tmp_path, provider_type=SlowProvider) as api:
        session = api.enter()
        api.pick(session)
        with ThreadPoolExecutor(1) as pool:
            first = pool.submit(api.exit, session, "k-slow")
            assert SlowProvider.started.wait(30)
            assert_error(api.exit(session, "k-slow"), 409, "in_flight")
            SlowProvider.release.set()
            answer = first.result(timeout=30)
        assert answer.status_code == 200
        assert api.exit(session, "k-slow").content == answer.content
        assert len(captures(api)) == 1
