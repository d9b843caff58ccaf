"""Forged and impossible node events, straight into the runtime and over NATS JetStream: refused
with a reason, nothing recorded, and never a message the consumer retries for ever.

The API holds events to these bounds in its schemas; the NATS consumer and the in-process bus did
not, so an event with t = NaN or a track id past 2**63 reached the database, failed there, and
came back from the broker for ever (a poison message), and an event of a camera the store does
not have, or a forged event reusing another event's id, was applied or silently dropped.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from hostile_nats import STORE_ID, nats_drill, wait_for
from hostile_records import changed, snapshot
from store_fakes import BREAD, T0, code, entered, entry_read, inside

from store_runtime.db import AppliedEventRow
from store_runtime.events import EntryRead, ShelfAction, TrackZone
from store_runtime.runtime import InvalidEvent


def zone(**changes: object) -> TrackZone:
    fields = {"id": "f" * 24, "t": T0 + 5, "camera": "aisle", "kind": "entered", "track": 7, "zone": "entry-1"}
    return TrackZone(**{**fields, **changes})  # type: ignore[arg-type]


def pick(**changes: object) -> ShelfAction:
    fields = {"id": "e" * 24, "t": T0 + 5, "camera": "aisle", "action": "pick", "track": 1, "gtin": BREAD,
              "qty": 1, "slot": "A2", "confidence": 0.95}
    return ShelfAction(**{**fields, **changes})  # type: ignore[arg-type]


FORGED = {
    "time not a number": zone(t=float("nan")),
    "time infinite": zone(t=float("inf")),
    "time past year 5138": zone(t=1e308),
    "time before 1970": zone(t=-5.0),
    "track past any integer column": zone(track=10**26),
    "track below -1": pick(track=-2**40),
    "a camera the store does not have": zone(camera="ghost"),
    "NUL in a stored text": zone(zone="entry-1\x00"),
    "NUL in the gate of an entry read": EntryRead(id="d" * 24, t=T0 + 5, camera="gate", gate="entry-1\x00",
                                                  code="WO1.x.y", admitted=True, detail=""),
}


@pytest.mark.parametrize("event", FORGED.values(), ids=FORGED.keys())
def test_impossible_events_are_refused_and_record_nothing(tmp_path: Path, event: object) -> None:
    runtime, _ = inside(tmp_path)
    before = snapshot(runtime.db)
    with pytest.raises(InvalidEvent, match=f"event {event.id}: "):  # type: ignore[attr-defined]
        runtime.apply(event)  # type: ignore[arg-type]
    assert changed(before, snapshot(runtime.db)) == []


def test_an_id_used_again_for_another_event_is_refused_not_silently_dropped(tmp_path: Path) -> None:
    """A node (or a forger who guessed an id: ids derive from what an event says) that reuses an id
    for a different event must hear so; a true resend of the same event stays a quiet no-op."""
    first = pick()
    runtime, session = inside(tmp_path, first)
    before = snapshot(runtime.db)
    runtime.apply(first)  # the outbox resending after a crash
    for other in (pick(t=T0 + 6), zone(id=first.id)):
        with pytest.raises(InvalidEvent, match="applied before"):
            runtime.apply(other)
    assert changed(before, snapshot(runtime.db)) == []
    assert [(line.gtin, line.qty) for line in runtime.session(session).lines] == [(BREAD, 1)]


def test_an_id_another_camera_used_first_does_not_lose_this_cameras_event(tmp_path: Path) -> None:
    """Ids are one namespace for every camera: a node that guessed the id of another camera's next
    event and sent it first must not make the store lose that event, nor apply it twice."""
    genuine = pick()
    runtime, session = inside(tmp_path, zone(id=genuine.id, camera="gate"))  # the forger's, first
    with runtime.db.transaction() as tx:
        assert tx.get(AppliedEventRow, genuine.id).camera == "gate"
    runtime.apply(genuine)
    runtime.apply(genuine)  # its outbox resending: still once
    assert [(line.gtin, line.qty) for line in runtime.session(session).lines] == [(BREAD, 1)]


def test_unknown_products_and_forged_admissions_change_no_basket(tmp_path: Path) -> None:
    runtime, session = inside(tmp_path)
    forged = code("c-evil", key_hex="00" * 32)
    runtime.apply(entry_read(forged, T0 + 4, admitted=True))  # the node says admitted; the runtime checks
    runtime.apply(entry_read("WO1.\x00\u202e\x1b[2J.AAAA", T0 + 5, admitted=True))  # a QR's text as read
    # A valid GTIN no catalog row has, recognised by its look (a node whose catalog is newer).
    runtime.apply(pick(id="c" * 24, gtin="4006381333931", sources=("appearance",)))
    assert runtime.session(session).lines == ()
    refused = [(e.admitted, e.reason) for e in runtime.entries() if e.customer != "c-0001"]
    assert refused == [(False, "signature"), (False, "malformed")]
    assert len(runtime.receipts()) == 1
    [review] = runtime.reviews()
    assert review.codes == ("not_in_catalog",)


# --------------------------------------------------------------------------------------------- NATS


def test_over_nats_refused_events_are_terminated_once_and_the_good_ones_applied(tmp_path: Path) -> None:
    with nats_drill(tmp_path) as drill:
        import nats

        from store_runtime.bus.nats import camera_subject, stream_name

        bus, consumer, runtime = drill.bus, drill.consumer, drill.runtime
        first = entered(1, T0 + 1)
        bus.publish(first)  # makes the stream and consumer exist
        wait_for(lambda: consumer.stats().applied == 1)
        aisle = camera_subject(STORE_ID, "aisle")
        raw = json.loads(zone().to_json())
        hostile = [
            (aisle, {**raw, "t": "NaN"}),  # pydantic's JSON takes NaN; no database column does
            (aisle, {**raw, "id": "1" * 24, "track": 10**26}),
            (camera_subject(STORE_ID, "ghost"), {**raw, "id": "2" * 24, "camera": "ghost"}),
            (aisle, {**json.loads(first.to_json()), "t": T0 + 9}),  # first's id, another time
        ]

        async def send() -> None:
            nc = await nats.connect(drill.url)
            try:
                js = nc.jetstream()
                for subject, body in hostile:
                    await js.publish(subject, json.dumps(body).replace('"NaN"', "NaN").encode())
            finally:
                await nc.close()

        asyncio.run(send())
        wait_for(lambda: consumer.stats().malformed == len(hostile))
        after = entered(2, T0 + 20)
        bus.publish(after)
        wait_for(lambda: consumer.stats().applied == 2)
        bus.close()
        time.sleep(1.5)  # past ack_wait: anything left unacknowledged would come back

        async def info() -> object:
            nc = await nats.connect(drill.url)
            try:
                return await nc.jetstream().consumer_info(stream_name(STORE_ID), "walkout-runtime")
            finally:
                await nc.close()

        state = asyncio.run(info())
        assert state.num_ack_pending == 0 and state.num_redelivered == 0  # type: ignore[attr-defined]
        assert consumer.stats().failed == 0 and consumer.stats().malformed == len(hostile)
        assert sorted(r.event["track"] for r in runtime.reviews()) == [1, 2]  # two anonymous people, no more
        assert {r.event["camera"] for r in runtime.reviews()} == {"aisle"}
