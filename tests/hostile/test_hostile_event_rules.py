"""Node events that are well formed but cannot be true in this store: a slot its camera does not
have, another product than the slot's with no word of how the shelf stage knows, a time from the
future or from before the store keeps tracking data. Refused with the field named (InvalidEvent;
the API answers 422, the NATS consumer terminates the message), nothing recorded; and the events
a real store sends, a misplaced item and an outbox delivering days late among them, still apply.

Before, a node (or anyone with its credential) could charge a shopper from slot "Z9", book a
product at a slot that never held it, or date an entry a year ahead, and the runtime applied it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from api.api_fakes import serve
from hostile_nats import nats_drill, wait_for
from hostile_records import changed, snapshot
from pydantic import ValidationError
from store_fakes import BREAD, JAM, MILK, T0, Clock, code, entered, entry_read, inside, shelf
from test_hostile_events import zone

from store_runtime.events import ShelfAction, event_id
from store_runtime.runtime import DAY_S, InvalidEvent, RuntimeSettings


def pick(gtin: str = BREAD, slot: str = "A2", **changes: object) -> ShelfAction:
    """A pick by shopper track 1, as a node sends it: BREAD is the planned product of slot A2."""
    fields = {"id": "e" * 24, "t": T0 + 5, "camera": "aisle", "action": "pick", "track": 1, "gtin": gtin, "qty": 1,
              "slot": slot, "confidence": 0.95, "sources": ("planogram",)}
    return ShelfAction(**{**fields, **changes})  # type: ignore[arg-type]


# name -> (the event, with the runtime's clock at T0; what the refusal must say)
IMPOSSIBLE = {
    "a slot the camera does not have": (pick(slot="Z9"), "slot: 'Z9' is not a slot of camera 'aisle'"),
    "a shelf event of the gate camera": (pick(camera="gate"), "is not a slot of camera 'gate'"),
    "another product than the slot's, no evidence": (pick(gtin=JAM, sources=()), "is not slot A2's product"),
    "another product, only the planogram as evidence": (pick(gtin=JAM), "no evidence of a misplaced item"),
    "121 s ahead of the store clock": (zone(t=T0 + 121), "121.0 s ahead of the store clock; at most 120 s"),
    "a year ahead": (pick(t=T0 + 365 * DAY_S), "ahead of the store clock"),
    "an entry read an hour ahead": (entry_read(code("c-later"), T0 + 3600), "ahead of the store clock"),
    "31 days late, past the tracking retention": (zone(t=T0 - 31 * DAY_S), "past the 30 days tracking data is kept"),
}


def test_impossible_events_are_refused_naming_the_rule_and_record_nothing(tmp_path: Path) -> None:
    runtime, session = inside(tmp_path)  # one store for the whole table: a database costs a second to make
    before = snapshot(runtime.db)
    for name, (event, message) in IMPOSSIBLE.items():
        with pytest.raises(InvalidEvent, match=f"event {event.id}: .*{message}"):  # type: ignore[attr-defined]
            runtime.apply(event)  # type: ignore[arg-type]
        assert changed(before, snapshot(runtime.db)) == [], name
    assert runtime.session(session).lines == ()


def test_a_misplaced_item_with_the_shelf_stages_evidence_is_charged_as_what_it_is(tmp_path: Path) -> None:
    """SPEC's misplaced scenario: bread taken from its slot and put back into the milk's (A1); taken
    from there later, it is bread. The shelf stage says how it knows: the slot's memory of the put."""
    runtime, session = inside(tmp_path,
                              pick(id="1" * 24, t=T0 + 5),
                              pick(id="2" * 24, t=T0 + 8, action="put", slot="A1", sources=("memory", "appearance")),
                              pick(id="3" * 24, t=T0 + 12, slot="A1", sources=("memory",)),
                              pick(id="4" * 24, t=T0 + 14, gtin=MILK, slot="A1"))
    assert sorted((line.gtin, line.qty) for line in runtime.session(session).lines) == sorted([(BREAD, 1), (MILK, 1)])
    assert runtime.reviews() == []


def test_late_events_apply_and_the_lead_is_a_typed_setting(tmp_path: Path) -> None:
    clock = Clock()
    runtime, session = inside(tmp_path, clock=clock, max_event_lead_s=10)
    runtime.apply(zone(id="a" * 24, t=T0 + 10, track=2))  # exactly the lead ahead: a clock a little fast
    with pytest.raises(InvalidEvent, match="at most 10 s"):
        runtime.apply(pick(t=T0 + 10.5))
    clock.advance(29 * DAY_S)  # a node's outbox held this pick through a month-long outage, nearly
    runtime.apply(pick(t=T0 + 6))
    assert [(line.gtin, line.qty) for line in runtime.session(session).lines] == [(BREAD, 1)]
    for wrong in ({"max_event_lead_s": 0}, {"max_event_lead_s": -5}, {"max_event_lead_s": 86_400},
                  {"max_event_lead_s": "soon"}, {"max_event_lead": 120}):
        with pytest.raises(ValidationError, match="max_event_lead"):
            RuntimeSettings(**wrong)  # type: ignore[arg-type]


def test_over_http_each_rule_is_a_422_naming_the_event_and_records_nothing(tmp_path: Path) -> None:
    with serve(tmp_path) as api:
        session = api.enter("c-0001")
        api.pick(session)
        before = snapshot(api.runtime.db)
        good = {"id": event_id("aisle", "x"), "t": api.clock.t + 1, "camera": "aisle", "kind": "shelf",
                "action": "pick", "track": 1, "gtin": "2110054234714", "qty": 1, "slot": "B1", "confidence": 0.99}
        for event, message in [({**good, "slot": "Z9"}, "is not a slot of camera 'aisle'"),
                               ({**good, "gtin": "2088972807856"}, "is not slot B1's product"),
                               ({**good, "t": api.clock.t + 3600}, "ahead of the store clock"),
                               ({**good, "t": api.clock.t - 400 * DAY_S}, "tracking data is kept")]:
            r = api.client.post("/v1/events", json={"events": [event]}, headers=api.auth("aisle"))
            assert r.status_code == 422 and message in r.json()["detail"], r.text
            assert f"body.events[0]: event {good['id']}: " in r.json()["detail"]
        assert changed(before, snapshot(api.runtime.db)) == []
        misplaced = {**good, "gtin": "2088972807856", "sources": ["appearance"]}
        r = api.client.post("/v1/events", json={"events": [misplaced]}, headers=api.auth("aisle"))
        assert r.status_code == 200, r.text


def test_over_nats_the_refused_are_terminated_and_the_day_goes_on(tmp_path: Path) -> None:
    with nats_drill(tmp_path) as drill:
        # What a broken node's outbox holds: the good and the impossible, in order.
        day = [entry_read(code(), T0 + 1), entered(1, T0 + 3), shelf(1, "pick", BREAD, T0 + 5, slot="A2"),
               pick(id="9" * 24, slot="Z9"), zone(id="8" * 24, t=T0 + 3600), shelf(1, "pick", MILK, T0 + 7)]
        for event in day:
            drill.bus.publish(event)
        wait_for(lambda: drill.consumer.stats().malformed == 2 and len(drill.runtime.basket_events()) == 2)
        drill.bus.close()
        assert drill.consumer.stats().failed == 0
        [receipt] = drill.runtime.receipts()
        assert sorted(line.gtin for line in receipt.lines) == sorted([BREAD, MILK])


def test_events_keep_their_evidence_on_the_wire() -> None:
    """The node's shelf stage evidence travels with the event (bus JSON, outbox, API) and an event
    from an older node without it still parses: it then only passes for the slot's planned product."""
    event = pick(gtin=JAM, sources=("memory", "appearance"))
    assert json.loads(event.to_json())["sources"] == ["memory", "appearance"]
    legacy = {k: v for k, v in json.loads(event.to_json()).items() if k != "sources"}
    assert ShelfAction.model_validate(legacy).sources == ()
    with pytest.raises(ValidationError, match="sources"):
        ShelfAction.model_validate({**legacy, "sources": ["trust me"]})


def test_rivals_travel_on_the_wire_and_forged_ones_count_for_nothing(tmp_path: Path) -> None:
    event = pick(track_confidence=0.45, rivals=((2, 0.4), (7, 0.15)))
    assert ShelfAction.model_validate_json(event.to_json()).rivals == ((2, 0.4), (7, 0.15))
    for rivals, rule in [(((2, 1.5),), "less than or equal to 1"), (((-1, 0.1),), "greater than or equal to 0"),
                         (((2, 0.1),) * 4, "at most 3")]:
        with pytest.raises(ValidationError, match=rule):
            pick(track_confidence=0.45, rivals=rivals)
    # Shares only count for other persons of the same session: the event's own track named again, or
    # twice, adds nothing; the pick still waits for a person.
    runtime, _ = inside(tmp_path)
    runtime.apply(pick(track_confidence=0.3, rivals=((1, 0.5), (1, 0.6))))
    assert [review.codes for review in runtime.reviews()] == [("low_track_confidence",)]
