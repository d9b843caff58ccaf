"""Forged credentials and forged node events over HTTP change nothing recorded: every table of the
database is the same before and after (tests/store_runtime/api/test_api_hostile.py checks the 4xx
answers of hostile bodies; this checks that none of them left a trace)."""

from __future__ import annotations

import json
from pathlib import Path

from api.api_fakes import serve
from hostile_records import changed, snapshot
from sqlalchemy import select

from store_runtime.db import AppliedEventRow
from store_runtime.events import event_id


def test_forgeries_over_http_are_4xx_and_record_nothing(tmp_path: Path) -> None:
    with serve(tmp_path) as api:
        session = api.enter("c-0001")
        api.pick(session)
        with api.runtime.db.transaction() as tx:  # the pick's id, applied
            picked = tx.scalars(select(AppliedEventRow.id).where(AppliedEventRow.kind == "shelf")).one()
        before = snapshot(api.runtime.db)
        good = {"id": event_id("aisle", "x"), "t": api.clock.t + 1, "camera": "aisle", "kind": "shelf",
                "action": "pick", "track": 1, "gtin": "2110054234714", "qty": 1, "slot": "B1", "confidence": 0.99}
        attempts = [
            # forged, malformed and misused credentials
            ("/v1/entries", {"gate": "entry-1", "code": api.code("c-2")}, {"Authorization": "Bearer wo_gate_forged"}),
            ("/v1/entries", {"gate": "entry-1", "code": api.code("c-2")}, {"Authorization": "Basic YTpi"}),
            ("/v1/entries", {"gate": "entry-1", "code": api.code("c-2")}, api.auth("exit-1")),  # another gate's
            ("/v1/entries", {"gate": "entry-1", "code": api.code("c-2")}, api.auth("aisle")),  # a node's
            ("/v1/exits", {"gate": "exit-1", "session": session}, {**api.auth("entry-1"), "Idempotency-Key": "k1"}),
            ("/v1/events", {"events": [good]}, api.auth("gate")),  # the gate camera posting the aisle's events
            ("/v1/events", {"events": [good]}, api.auth("entry-1")),  # a gate posting events
            # forged node events from the right camera
            ("/v1/events", {"events": [{**good, "t": 1e12}]}, api.auth("aisle")),
            ("/v1/events", {"events": [{**good, "t": -1}]}, api.auth("aisle")),
            ("/v1/events", {"events": [{**good, "track": 2**40}]}, api.auth("aisle")),
            ("/v1/events", {"events": [{**good, "id": picked}]}, api.auth("aisle")),  # its id, another event
            ("/v1/events", {"events": [good, {**good, "camera": "gate"}]}, api.auth("aisle")),  # one bad: none in
            ("/v1/events", {"events": [{**good, "id": "not-hex"}]}, api.auth("aisle")),
            # bombs
            ("/v1/events", b'{"events": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", api.auth("aisle")),
            ("/v1/entries", b'{"gate": "entry-1", "code": "' + b"A" * 300_000 + b'"}', api.auth("entry-1")),
        ]
        for route, body, headers in attempts:
            content = body if isinstance(body, bytes) else json.dumps(body).encode()
            r = api.client.post(route, content=content, headers={**headers, "content-type": "application/json"})
            assert 400 <= r.status_code < 500, (route, headers, r.status_code, r.text[:300])
            assert r.json()["detail"], r.text
        assert changed(before, snapshot(api.runtime.db)) == []
