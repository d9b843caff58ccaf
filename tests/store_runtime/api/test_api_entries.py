"""POST /v1/entries: every answer of SPEC section 7, and who may ask."""

from __future__ import annotations

import pytest

from api.api_fakes import T0, Api, assert_error


def post(api: Api, code: str, *, gate: str = "entry-1", as_: str = "entry-1"):
    return api.client.post("/v1/entries", json={"gate": gate, "code": code}, headers=api.auth(as_))


def test_201_opens_a_session_for_the_code(api: Api) -> None:
    r = post(api, api.code("c-0042", party=2))
    assert r.status_code == 201
    body = r.json()
    assert body == {"session": body["session"], "customer": "c-0042", "party": 2}
    assert api.runtime.session(body["session"]).status == "open"


def test_the_same_scan_retried_a_moment_later_is_the_same_session(api: Api) -> None:
    # A gate whose first request timed out retries it: that must not be refused as "used".
    code = api.code()
    first = post(api, code).json()["session"]
    api.clock.advance(1)
    again = post(api, code)
    assert again.status_code == 201 and again.json()["session"] == first


def test_409_a_code_used_before(api: Api) -> None:
    code = api.code()
    assert post(api, code).status_code == 201
    api.clock.advance(60)  # well past a retry of the same scan
    assert_error(post(api, code), 409, "used")


def test_401_a_code_with_a_wrong_signature(api: Api) -> None:
    forged = api.code(key=bytes(32))
    body = assert_error(post(api, forged), 401, "signature")
    assert forged not in body["detail"]  # a code is a bearer token: never echoed


def test_403_a_code_of_another_store(api: Api) -> None:
    assert_error(post(api, api.code(sid="another-store-02")), 403, "other_store")


def test_410_an_expired_code(api: Api) -> None:
    assert_error(post(api, api.code(exp=int(T0) - 1)), 410, "expired")


@pytest.mark.parametrize("code", ["", "WO1.", "junk", "WO1.e30.abc", "WO1." + "A" * 4000])
def test_422_a_malformed_code(api: Api, code: str) -> None:
    assert_error(post(api, code), 422, "malformed")


def test_refusals_are_recorded_and_open_nothing(api: Api) -> None:
    post(api, api.code(exp=int(T0) - 1))
    api.clock.advance(1)
    post(api, "junk")
    assert api.runtime.receipts() == []
    assert [e.reason for e in api.runtime.entries()] == ["expired", "malformed"]


def test_422_a_gate_that_is_no_entry_gate(api: Api) -> None:
    # exit-1's own credential naming itself: allowed to speak, but exit-1 scans no entry codes.
    assert_error(post(api, api.code(), gate="exit-1", as_="exit-1"), 422, "not_an_entry_gate")


def test_403_a_gate_acting_for_another_gate(api: Api) -> None:
    body = assert_error(post(api, api.code(), gate="entry-1", as_="exit-1"), 403, "wrong_gate")
    assert "exit-1" in body["detail"] and "entry-1" in body["detail"]


@pytest.mark.parametrize("who", ["aisle", "alice"])
def test_403_only_a_gate_posts_entries(api: Api, who: str) -> None:
    body = assert_error(post(api, api.code(), as_=who), 403, "forbidden")
    assert "gate" in body["detail"]


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wo_gate_not-a-real-one"},
                                     {"Authorization": "Basic ZW50cnktMTpwdw=="}, {"Authorization": "Bearer"}])
def test_401_without_a_known_credential(api: Api, headers: dict[str, str]) -> None:
    r = api.client.post("/v1/entries", json={"gate": "entry-1", "code": api.code()}, headers=headers)
    assert_error(r, 401, "unauthenticated")
    assert r.headers["www-authenticate"] == "Bearer"
    assert api.runtime.entries() == []  # nothing was looked at


@pytest.mark.parametrize(("body", "field"), [
    ({"code": "x"}, "body.gate"),
    ({"gate": "entry-1"}, "body.code"),
    ({"gate": "entry-1", "code": 7}, "body.code"),
    ({"gate": "entry-1", "code": "x", "party": 3}, "body.party"),
    ({"gate": "../etc", "code": "x"}, "body.gate"),
])
def test_422_a_body_that_is_not_an_entry_names_the_field(api: Api, body: dict, field: str) -> None:
    r = api.client.post("/v1/entries", json=body, headers=api.auth("entry-1"))
    err = assert_error(r, 422, "invalid_request")
    assert field in [f["field"] for f in err["fields"]] and field in err["detail"]
