"""A camera node's outbox: the events it published that the broker has not acknowledged yet.

One SQLite file per node, keyed by event id. `put` commits the event to disk before it returns
(WAL, `synchronous=FULL`: it survives a power cut, not only a killed process); the bus's sender
reads `pending` in the order events were put and calls `ack` once the broker holds the event. So a
broker that is down, or a node killed between the two, delays events and never loses them; what
is sent twice on the way is the same event id, which the broker and the store runtime each apply
once.

The file is bounded (`capacity` events): past it `put` waits for room for a while and then raises
`OutboxFull`, because a node whose broker has been away that long must say so, not drop events.
One process at a time owns an outbox (a lock file beside it): two nodes on one file would send
every event twice and count each other's backlog.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import threading
import time
from pathlib import Path

from pydantic import ValidationError

from store_runtime.events import CameraStatus, EntryRead, ShelfAction, TrackZone, parse_event

__all__ = ["MAX_EVENT_BYTES", "Outbox", "OutboxBusy", "OutboxFull"]

log = logging.getLogger("walkout.bus")

Event = EntryRead | TrackZone | ShelfAction | CameraStatus

# An event is a few hundred bytes (events.py bounds every field); anything near this is not one.
MAX_EVENT_BYTES = 16 * 1024

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq  INTEGER PRIMARY KEY AUTOINCREMENT,  -- publication order, kept across restarts
    id   TEXT NOT NULL UNIQUE,
    body TEXT NOT NULL,
    bad  INTEGER NOT NULL DEFAULT 0          -- 1: the row does not parse (a damaged file); never sent
)
"""


class OutboxFull(OverflowError):
    """The outbox holds `capacity` events the broker has not acknowledged, and no room came in time."""


class OutboxBusy(RuntimeError):
    """Another process has this outbox open."""


class Outbox:
    """The SQLite outbox at `path` (made if missing). Thread-safe: the node's thread puts, the
    sender's thread reads and acknowledges."""

    def __init__(self, path: Path | str, *, capacity: int = 100_000) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise ValueError(f"Outbox capacity: expected an integer of at least 1, got {capacity!r}")
        self.path = Path(path)
        self.capacity = capacity
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_fd = _lock_beside(self.path)
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute(_SCHEMA)
            self._count = self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
            self._bad = self._db.execute("SELECT COUNT(*) FROM outbox WHERE bad = 1").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            os.close(self._lock_fd)
            raise ValueError(f"outbox {self.path}: not a usable SQLite file ({exc})") from exc
        self._room = threading.Condition()
        self._closed = False

    # ------------------------------------------------------------------ the node's side

    def put(self, event: Event, *, wait_s: float = 0.0) -> bool:
        """Store `event` durably. False when an event of its id is waiting already (kept once).
        When the outbox is full, waits up to `wait_s` for the sender to make room, then raises
        OutboxFull."""
        body = event.to_json()
        if len(body) > MAX_EVENT_BYTES:
            raise ValueError(f"event {event.id}: {len(body)} bytes of JSON, more than an event may be "
                             f"({MAX_EVENT_BYTES})")
        deadline = time.monotonic() + max(0.0, wait_s)
        with self._room:
            while self._count >= self.capacity:
                if self._db.execute("SELECT 1 FROM outbox WHERE id = ?", (event.id,)).fetchone():
                    return False
                left = deadline - time.monotonic()
                if left <= 0:
                    raise OutboxFull(f"outbox {self.path}: {self._count} events wait for the broker "
                                     f"(capacity {self.capacity}); is the broker reachable?")
                self._room.wait(left)
            added = self._db.execute("INSERT OR IGNORE INTO outbox (id, body) VALUES (?, ?)",
                                     (event.id, body)).rowcount
            self._count += added
            return added == 1

    # ------------------------------------------------------------------ the sender's side

    def pending(self, limit: int = 100) -> list[Event]:
        """Up to `limit` waiting events, oldest first. A row that does not parse back into an event
        (the file was damaged or written by something else) is marked bad and logged, never sent,
        and still counts against the capacity so that it stays visible."""
        with self._room:
            rows = self._db.execute("SELECT seq, id, body FROM outbox WHERE bad = 0 ORDER BY seq LIMIT ?",
                                    (limit,)).fetchall()
            events: list[Event] = []
            for seq, event_id, body in rows:
                try:
                    event = parse_event(body)
                    if event.id != event_id:
                        raise ValueError(f"its body says id {event.id!r}")
                except (ValidationError, ValueError) as exc:
                    self._db.execute("UPDATE outbox SET bad = 1 WHERE seq = ?", (seq,))
                    self._bad += 1
                    log.error("outbox %s: row %d (id %.40r) is not an event, kept aside: %s",
                              self.path, seq, event_id, str(exc).splitlines()[0][:200])
                    continue
                events.append(event)
            return events

    def ack(self, event_id: str) -> None:
        """The broker holds `event_id`: forget it (a no-op for an id not waiting)."""
        with self._room:
            self._count -= self._db.execute("DELETE FROM outbox WHERE id = ?", (event_id,)).rowcount
            self._room.notify_all()

    # ------------------------------------------------------------------

    def __len__(self) -> int:
        """Events waiting (bad rows included)."""
        return self._count

    @property
    def bad(self) -> int:
        """Rows that did not parse and are kept aside."""
        return self._bad

    def close(self) -> None:
        with self._room:
            if self._closed:
                return
            self._closed = True
            self._db.close()
            os.close(self._lock_fd)

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _lock_beside(path: Path) -> int:
    """An exclusive lock on PATH.lock, held while the outbox is open; the kernel drops it when the
    process dies, however it dies, so a restarted node gets its outbox back."""
    fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise OutboxBusy(f"outbox {path}: another process has it open (one node per outbox)") from None
    return fd
