"""How camera nodes hand events to the store runtime: one small interface, several transports.

`MemoryBus` is the embedded transport of a replay and of a one-machine store; the NATS JetStream
transport (extra `scale`) implements the same `publish`.
"""

from __future__ import annotations

from collections import deque
from typing import Protocol

from store_runtime.events import CameraStatus, EntryRead, ShelfAction, TrackZone

Event = EntryRead | TrackZone | ShelfAction | CameraStatus


class Bus(Protocol):
    def publish(self, event: Event) -> None:
        """Deliver `event` at least once; the runtime ignores an id it has already applied."""


class MemoryBus:
    """An in-process queue: `publish` appends, `drain` hands everything over in publication order.

    Bounded: past `capacity` undrained events `publish` raises instead of growing without end,
    because a consumer that stopped draining is a fault to surface, not to hide by dropping events.
    """

    def __init__(self, capacity: int = 100_000) -> None:
        self.capacity = capacity
        self._queue: deque[Event] = deque()

    def publish(self, event: Event) -> None:
        if len(self._queue) >= self.capacity:
            raise OverflowError(f"MemoryBus: {self.capacity} events published and none drained")
        self._queue.append(event)

    def drain(self) -> list[Event]:
        events = list(self._queue)
        self._queue.clear()
        return events

    def __len__(self) -> int:
        return len(self._queue)
