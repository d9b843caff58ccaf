"""GET /v1/sessions/{session} and GET /v1/receipts/{session}: 200 and 404, and who reads what."""

from __future__ import annotations

import pytest

from api.api_fakes import APPLE, Api, assert_error


def get(api: Api, path: str, who: str = "alice"):
    return api.client.get(path, headers=api.auth(who))


def test_200_the_live_basket(api: Api) -> None:
    session = api.enter("c-0007", party=1)
    api.pick(session, APPLE, qty=3)
    api.pick(session, APPLE, action="put")
    r = get(api, f"/v1/sessions/{session}", "exit-1")
    assert r.status_code == 200
    body = r.json()
    assert (body["session"], body["customer"], body["status"], body["gate"]) == (session, "c-0007", "open", "entry-1")
    assert body["lines"] == [{"gtin": APPLE, "qty": 2, "unit_cents": 389}] and body["total_cents"] == 778
    assert body["version"] == 2 and body["tracks"] == 1 and body["currency"] == "EUR"


@pytest.mark.parametrize("session", ["s_00000000000000000000", "nope", "-x", "a" * 300, "%00", "s_%F0%9F%98%80"])
def test_404_no_such_session(api: Api, session: str) -> None:
    assert_error(get(api, f"/v1/sessions/{session}"), 404, "unknown_session")
    assert_error(get(api, f"/v1/receipts/{session}"), 404, "unknown_session")


def test_200_the_receipt_after_exit(api: Api) -> None:
    session = api.enter()
    api.pick(session)
    charged = api.exit(session).json()
    r = get(api, f"/v1/receipts/{session}", "exit-1")
    assert r.status_code == 200 and r.json() == charged


def test_404_no_receipt_while_inside(api: Api) -> None:
    session = api.enter()
    assert_error(get(api, f"/v1/receipts/{session}"), 404, "no_receipt")


def test_an_operator_lists_every_receipt(api: Api) -> None:
    inside, left = api.enter("c-0001"), api.enter("c-0002")
    api.exit(left)
    r = get(api, "/v1/receipts")
    assert r.status_code == 200
    assert {(x["session"], x["status"]) for x in r.json()} == {(inside, "open"), (left, "charged")}
    assert_error(get(api, "/v1/receipts", "exit-1"), 403, "forbidden")


def test_an_entry_gate_reads_only_the_sessions_it_admitted(api: Api) -> None:
    # The sample store has one entry gate; a second one's credential stands for "another gate".
    from store_runtime.db import add_credential

    session = api.enter()
    assert get(api, f"/v1/sessions/{session}", "entry-1").status_code == 200
    other = add_credential(api.runtime.db, "gate", "entry-2")
    r = api.client.get(f"/v1/sessions/{session}", headers={"Authorization": f"Bearer {other}"})
    assert_error(r, 403, "forbidden")


@pytest.mark.parametrize("who", ["aisle", "gate"])
def test_403_a_node_reads_no_sessions(api: Api, who: str) -> None:
    session = api.enter()
    assert_error(get(api, f"/v1/sessions/{session}", who), 403, "forbidden")
    assert_error(get(api, f"/v1/receipts/{session}", who), 403, "forbidden")


def test_401_without_a_credential(api: Api) -> None:
    session = api.enter()
    assert_error(api.client.get(f"/v1/sessions/{session}"), 401, "unauthenticated")
    assert_error(api.client.get(f"/v1/receipts/{session}"), 401, "unauthenticated")
