"""The operators' routes: the review queue, decisions, disputes; and that only operators reach them."""

from __future__ import annotations

import pytest

from api.api_fakes import APPLE, OAT_MILK, Api, assert_error


def reviews(api: Api, status: str = "open") -> list[dict]:
    r = api.client.get(f"/v1/reviews?status={status}", headers=api.auth("alice"))
    assert r.status_code == 200, r.text
    return r.json()


def decide(api: Api, review: str, who: str = "alice", **body: object):
    return api.client.post(f"/v1/reviews/{review}/decision", json=body, headers=api.auth(who))


def test_an_uncertain_pick_holds_the_charge_until_an_operator_accepts_it(api: Api) -> None:
    session = api.enter()
    api.pick(session, APPLE)
    api.pick(session, OAT_MILK, confidence=0.2)  # the camera is not sure what it saw
    [review] = reviews(api)
    assert review["kind"] == "shelf" and review["session"] == session and "low_confidence" in review["codes"]
    held = api.exit(session).json()
    assert held["status"] == "review" and held["charge"] is None

    r = decide(api, review["id"], decision="accept", note="seen on the recording")
    assert r.status_code == 200
    assert r.json()["status"] == "accepted" and r.json()["decided_by"] == "alice"
    receipt = api.client.get(f"/v1/receipts/{session}", headers=api.auth("alice")).json()
    assert receipt["status"] == "charged" and receipt["total_cents"] == 389 + 359
    assert reviews(api) == [] and len(reviews(api, "all")) == 1


def test_a_rejected_pick_goes_nowhere(api: Api) -> None:
    session = api.enter()
    api.pick(session, OAT_MILK, confidence=0.2)
    [review] = reviews(api)
    assert decide(api, review["id"], decision="reject").json()["status"] == "rejected"
    assert api.runtime.session(session).lines == ()


def test_409_a_review_decided_already_and_404_an_unknown_one(api: Api) -> None:
    session = api.enter()
    api.pick(session, OAT_MILK, confidence=0.2)
    [review] = reviews(api)
    assert decide(api, review["id"], decision="reject").status_code == 200
    assert_error(decide(api, review["id"], decision="accept"), 409, "review_closed")
    assert_error(decide(api, "r_00000000000000000000", decision="accept"), 404, "not_found")
    assert_error(decide(api, "x" * 100, decision="accept"), 404, "not_found")


@pytest.mark.parametrize(("body", "field"), [
    ({"decision": "maybe"}, "body.decision"),
    ({}, "body.decision"),
    ({"decision": "accept", "qty": 100}, "body.qty"),
    ({"decision": "accept", "qty": -1}, "body.qty"),  # 0 is a camera_outage quantity: "take it off"
    ({"decision": "accept", "note": "n" * 501}, "body.note"),
    ({"decision": "accept", "by": "mallory"}, "body.by"),  # who decided is the credential's name, not a field
])
def test_422_a_decision_that_is_not_one_names_the_field(api: Api, body: dict, field: str) -> None:
    err = assert_error(decide(api, "r_00000000000000000000", **body), 422, "invalid_request")
    assert field in err["detail"]


def test_a_dispute_accepted_takes_the_line_off_and_refunds_it(api: Api) -> None:
    session = api.enter("c-0005")
    api.pick(session, APPLE, qty=2)
    assert api.exit(session).json()["charged_cents"] == 778
    r = api.client.post("/v1/disputes", json={"session": session, "gtin": APPLE, "qty": 1,
                                              "reason": "I put one back"}, headers=api.auth("alice"))
    assert r.status_code == 201, r.text
    dispute = r.json()
    assert dispute["kind"] == "dispute" and dispute["status"] == "open"
    assert decide(api, dispute["id"], decision="accept").status_code == 200
    receipt = api.client.get(f"/v1/receipts/{session}", headers=api.auth("alice")).json()
    assert receipt["lines"] == [{"gtin": APPLE, "qty": 1, "unit_cents": 389}]
    assert receipt["refunded_cents"] == 389 and receipt["refunds"][0]["state"] == "done"
    assert api.provider.balance("c-0005") == 389


def test_a_dispute_of_what_is_not_on_a_charged_receipt(api: Api) -> None:
    session = api.enter()
    body = {"session": session, "gtin": APPLE, "qty": 1, "reason": "never took it"}
    assert_error(api.client.post("/v1/disputes", json=body, headers=api.auth("alice")), 422, "cannot_dispute")
    body["session"] = "s_00000000000000000000"
    assert_error(api.client.post("/v1/disputes", json=body, headers=api.auth("alice")), 404, "unknown_session")


@pytest.mark.parametrize("who", ["entry-1", "exit-1", "aisle"])
def test_403_only_operators_review(api: Api, who: str) -> None:
    session = api.enter()
    api.pick(session, OAT_MILK, confidence=0.2)
    [review] = reviews(api)
    assert_error(api.client.get("/v1/reviews", headers=api.auth(who)), 403, "forbidden")
    assert_error(decide(api, review["id"], who, decision="accept"), 403, "forbidden")
    body = {"session": session, "gtin": APPLE, "qty": 1, "reason": "x"}
    assert_error(api.client.post("/v1/disputes", json=body, headers=api.auth(who)), 403, "forbidden")
    assert reviews(api)[0]["status"] == "open"
