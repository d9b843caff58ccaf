"""POST /v1/events: a camera node's events, applied once each, from its own camera only."""

from __future__ import annotations

import json

import pytest

from api.api_fakes import APPLE, Api, assert_error
from store_runtime.events import event_id


def shelf_event(track: int, t: float, **changes: object) -> dict:
    event = {"id": event_id("aisle", "shelf", track, t), "t": t, "camera": "aisle", "kind": "shelf",
             "action": "pick", "track": track, "gtin": APPLE, "qty": 1, "slot": "B1", "confidence": 0.9}
    return {**event, **changes}


def test_events_build_the_basket_and_a_resent_batch_changes_nothing(api: Api) -> None:
    session = api.enter()
    batch = {"events": [shelf_event(1, api.clock.t + 2), shelf_event(1, api.clock.t + 3)]}
    for _ in range(3):  # a node resending its outbox after a crash
        r = api.client.post("/v1/events", json=batch, headers=api.auth("aisle"))
        assert r.status_code == 200 and r.json() == {"received": 2}
    assert api.runtime.session(session).lines[0].qty == 2


def test_a_gate_camera_posts_its_entry_reads(api: Api) -> None:
    code = api.code("c-0099")
    read = {"id": event_id("gate", "entry", 1), "t": api.clock.t, "camera": "gate", "kind": "entry",
            "gate": "entry-1", "code": code, "admitted": True, "detail": "read at the gate"}
    r = api.client.post("/v1/events", json={"events": [read]}, headers=api.auth("gate"))
    assert r.status_code == 200
    assert [(e.customer, e.admitted, e.source) for e in api.runtime.entries()] == [("c-0099", True, "camera")]


def test_403_a_node_posting_another_cameras_events(api: Api) -> None:
    api.enter()
    r = api.client.post("/v1/events", json={"events": [shelf_event(1, api.clock.t + 1)]}, headers=api.auth("gate"))
    assert_error(r, 403, "wrong_camera")
    assert api.runtime.basket_events() == []


@pytest.mark.parametrize("who", ["entry-1", "exit-1", "alice"])
def test_403_only_nodes_post_events(api: Api, who: str) -> None:
    r = api.client.post("/v1/events", json={"events": [shelf_event(1, api.clock.t)]}, headers=api.auth(who))
    assert_error(r, 403, "forbidden")


@pytest.mark.parametrize(("changes", "field"), [
    ({"t": float("nan")}, "body.events[0]"),
    ({"t": float("inf")}, "body.events[0]"),
    ({"t": -5.0}, "body.events[0]"),
    ({"track": 2**70}, "body.events[0]"),
    ({"qty": 0}, "body.events[0].shelf.qty"),
    ({"gtin": "apple"}, "body.events[0].shelf.gtin"),
    ({"kind": "teleport"}, "body.events[0]"),
    ({"id": "not-an-id"}, "body.events[0].shelf.id"),
    ({"slot": "\ud800"}, "body.events[0]"),
    ({"extra": 1}, "body.events[0].shelf.extra"),
])
def test_422_an_event_that_cannot_be_names_the_field(api: Api, changes: dict, field: str) -> None:
    body = json.dumps({"events": [{**shelf_event(1, api.clock.t), **changes}]})  # NaN/Infinity as Python writes them
    r = api.client.post("/v1/events", content=body, headers={**api.auth("aisle"), "content-type": "application/json"})
    err = assert_error(r, 422, "invalid_request")
    assert any(f["field"].startswith(field) for f in err["fields"]), err


@pytest.mark.parametrize("events", [[], [{}] * 501])
def test_422_an_empty_or_oversized_batch(api: Api, events: list) -> None:
    r = api.client.post("/v1/events", json={"events": events}, headers=api.auth("aisle"))
    assert_error(r, 422, "invalid_request")


def test_a_person_lost_and_found_again_keeps_their_session(api: Api) -> None:
    session = api.enter()  # track 1
    t = api.clock.t
    batch = {"events": [
        {"id": event_id("aisle", "lost", 1), "t": t + 2, "camera": "aisle", "kind": "lost", "track": 1, "zone": ""},
        {"id": event_id("aisle", "appeared", 9), "t": t + 3, "camera": "aisle", "kind": "appeared", "track": 9,
         "zone": ""},
        shelf_event(9, t + 4)]}
    r = api.client.post("/v1/events", json=batch, headers=api.auth("aisle"))
    assert r.status_code == 200, r.text
    assert [(line.gtin, line.qty) for line in api.runtime.session(session).lines] == [(APPLE, 1)]
