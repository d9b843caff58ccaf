"""A camera node's outbox (store_runtime/bus/outbox.py) on a real SQLite file: what was put survives
the process, leaves only when acknowledged, is kept once per id, never grows past its capacity
without saying so, and a damaged row is set aside instead of stopping everything behind it."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest
from store_fakes import MILK, T0, code, entered, entry_read, shelf

from store_runtime.bus.outbox import Outbox, OutboxBusy, OutboxFull


def test_put_survives_reopening_and_leaves_only_when_acknowledged(tmp_path: Path) -> None:
    events = [entry_read(code(), T0 + 1), entered(1, T0 + 3), shelf(1, "pick", MILK, T0 + 5)]
    with Outbox(tmp_path / "o.db") as outbox:
        assert [outbox.put(e) for e in events] == [True, True, True]
        assert outbox.put(events[1]) is False  # the same id again: kept once
        outbox.ack(events[0].id)
        outbox.ack("0" * 24)  # an id that is not waiting: nothing happens
    with Outbox(tmp_path / "o.db") as outbox:
        assert outbox.pending(10) == events[1:] and len(outbox) == 2  # same events, same order
        assert outbox.pending(1) == events[1:2]


def test_second_process_on_one_outbox_is_refused(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db"), pytest.raises(OutboxBusy, match="another process"):
        Outbox(tmp_path / "o.db")
    Outbox(tmp_path / "o.db").close()  # free again once closed


def test_full_outbox_waits_for_room_then_fails_loudly(tmp_path: Path) -> None:
    events = [shelf(1, "pick", MILK, T0 + i) for i in range(4)]
    with Outbox(tmp_path / "o.db", capacity=3) as outbox:
        for event in events[:3]:
            outbox.put(event)
        started = time.monotonic()
        with pytest.raises(OutboxFull, match="capacity 3"):
            outbox.put(events[3], wait_s=0.2)
        assert time.monotonic() - started >= 0.2 and len(outbox) == 3  # nothing dropped to make room
        assert outbox.put(events[0]) is False  # an event already waiting needs no room

        # Backpressure: the sender acknowledging one lets the waiting put in.
        threading.Timer(0.1, outbox.ack, args=(events[0].id,)).start()
        assert outbox.put(events[3], wait_s=5) is True
        assert [e.id for e in outbox.pending(10)] == [e.id for e in events[1:]]


def test_a_damaged_row_is_set_aside_and_the_rest_still_goes(tmp_path: Path) -> None:
    events = [entered(1, T0 + 3), shelf(1, "pick", MILK, T0 + 5)]
    with Outbox(tmp_path / "o.db") as outbox:
        for event in events:
            outbox.put(event)
    db = sqlite3.connect(tmp_path / "o.db")
    with db:
        db.execute("UPDATE outbox SET body = ? WHERE id = ?", ('{"kind": "shelf", "qty": 1e999', events[0].id))
    db.close()
    with Outbox(tmp_path / "o.db") as outbox:
        assert outbox.pending(10) == events[1:]
        assert outbox.bad == 1 and len(outbox) == 2  # still counted: visible, not silently gone
        assert outbox.pending(10) == events[1:]


@pytest.mark.parametrize("capacity", [0, -1, 1.5, True])
def test_capacity_must_be_a_positive_integer(tmp_path: Path, capacity: object) -> None:
    with pytest.raises(ValueError, match="capacity"):
        Outbox(tmp_path / "o.db", capacity=capacity)  # type: ignore[arg-type]
