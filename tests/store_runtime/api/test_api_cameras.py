"""Camera outages over the API: a node posts its camera's status to POST /v1/events, operators read
GET /v1/cameras, and the sessions, receipts and reviews show the flag."""

from __future__ import annotations

import pytest

from api.api_fakes import APPLE, Api, assert_error
from store_runtime.events import camera_status_id


def status(status: str, t: float, *, camera: str = "aisle", start: float | None = None, end: float | None = None,
           outage: str | None = None, **more: object) -> dict:
    return {"id": camera_status_id(camera, status, start, t), "t": t, "camera": camera, "kind": "camera",
            "status": status, "outage": outage, "start_t": start, "end_t": end, **more}


def test_an_outage_posted_by_the_node_flags_the_session_and_holds_its_charge(api: Api) -> None:
    session = api.enter()
    api.pick(session, APPLE)
    t = api.clock.t
    batch = [status("stalled", t + 3, start=t + 2, outage="stalled", detail="no frame for 1.0 s"),
             status("recovered", t + 6, start=t + 2, end=t + 5.5, outage="stalled", reconnects=0, lag_s=0.2)]
    for _ in range(2):  # resent from the outbox: applied once
        r = api.client.post("/v1/events", json={"events": batch}, headers=api.auth("aisle"))
        assert r.status_code == 200 and r.json() == {"received": 2}

    cameras = api.client.get("/v1/cameras", headers=api.auth("alice"))
    assert cameras.status_code == 200
    aisle = {c["camera"]: c for c in cameras.json()}["aisle"]
    assert (aisle["state"], aisle["last_event_t"], aisle["lag_s"]) == ("ok", t + 6, 0.2)
    assert aisle["outages"] == [{"start_t": t + 2, "end_t": t + 5.5, "kind": "stalled", "sessions": [session]}]

    [flag] = api.client.get(f"/v1/sessions/{session}", headers=api.auth("alice")).json()["camera_outages"]
    assert (flag["camera"], flag["affects"], flag["start_t"], flag["end_t"]) == ("aisle", ["shelf"], t + 2, t + 5.5)
    api.clock.advance(10)  # it leaves after the outage
    receipt = api.exit(session).json()
    assert receipt["status"] == "review" and receipt["camera_outages"] == [flag]
    [review] = api.client.get("/v1/reviews", headers=api.auth("alice")).json()
    assert (review["kind"], review["id"], review["session"]) == ("camera_outage", flag["review"], session)
    r = api.client.post(f"/v1/reviews/{review['id']}/decision", json={"decision": "accept", "gtin": APPLE, "qty": 2},
                        headers=api.auth("alice"))
    assert r.status_code == 200 and r.json()["status"] == "accepted"
    receipt = api.client.get(f"/v1/receipts/{session}", headers=api.auth("alice")).json()
    assert (receipt["status"], receipt["charged_cents"]) == ("charged", 2 * 389), "the apple taken unseen is charged"


@pytest.mark.parametrize(("changes", "field"), [
    ({"status": "stalled", "outage": None}, "outage"),              # an outage report without its kind
    ({"status": "recovered", "outage": "stalled", "end_t": None}, "end_t"),
    ({"status": "ok", "lag_s": -1.0}, "lag_s"),
    ({"status": "stalled", "outage": "stalled", "start_t": 1e12}, "start_t"),
])
def test_422_a_camera_status_that_cannot_be_names_what(api: Api, changes: dict, field: str) -> None:
    event = {**status("stalled", api.clock.t, start=api.clock.t - 1, outage="stalled"), **changes}
    r = api.client.post("/v1/events", json={"events": [event]}, headers=api.auth("aisle"))
    assert field in assert_error(r, 422)["detail"]
    assert api.client.get("/v1/cameras", headers=api.auth("alice")).json()[0]["state"] == "unknown"


def test_only_operators_read_cameras_and_only_its_node_reports_a_camera(api: Api) -> None:
    assert_error(api.client.get("/v1/cameras"), 401)
    assert_error(api.client.get("/v1/cameras", headers=api.auth("exit-1")), 403)
    r = api.client.post("/v1/events", json={"events": [status("ok", api.clock.t, camera="aisle")]},
                        headers=api.auth("gate"))
    assert_error(r, 403, "wrong_camera")
    document = api.client.get("/openapi.json").json()
    assert "/v1/cameras" in document["paths"] and {"CameraOkIn", "CameraStalledIn", "CameraDisconnectedIn",
                                                  "CameraRecoveredIn"} <= set(document["components"]["schemas"])
