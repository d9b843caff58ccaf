"""The bus over NATS JetStream (extra `scale`): camera nodes on any machine, one store runtime.

    node:  publish(event) -> Outbox (SQLite, on disk) -> sender thread -> JetStream, header Nats-Msg-Id: <event id>
                             the event leaves the outbox only on the broker's PubAck
    store: durable pull consumer -> parse -> runtime.apply (its transaction commits) -> ack

Subjects are `walkout.<store>.events.<camera>`, all in one stream per store, `WALKOUT_<store>`
(file storage, work-queue retention: an event leaves the stream once the runtime acknowledged it).
Delivery is at least once at every hop, and each hop forgets a copy only after the next one holds
it; a copy sent twice is dropped by whoever sees it again, by event id:
- the outbox keeps one row per id (a node that emits the same event again before it left);
- JetStream drops a Nats-Msg-Id it stored within `duplicate_window_s` (a resend after a lost PubAck);
- the store runtime applies an id once, for ever (its `applied_events` table), which is what makes
  a copy that comes back after the broker's window — minutes — harmless.

Nothing is dropped to make room: the stream refuses new events past `max_bytes` not yet consumed
(discard "new"), which leaves them in the nodes' outboxes; an outbox past its capacity makes the
node's `publish` wait and then fail loudly (outbox.py).

A malformed message (not an event, sent on another camera's subject, or an event the runtime
refuses for good: an unknown camera, a time out of range, an id already used for another event)
is logged, terminated (`term`: never redelivered) and counted; the consumer goes on. An event the
runtime fails to apply (the database away) is not acknowledged: it comes back, later each time (nak with a delay).
Each side keeps its connection on a thread of its own, with its own asyncio loop, so that the node's
frame loop and the API's threads call plain blocking methods.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from store_runtime.bus.outbox import MAX_EVENT_BYTES, Outbox
from store_runtime.events import CameraStatus, EntryRead, ShelfAction, TrackZone, parse_event

__all__ = [
    "ConsumerStats",
    "NatsBus",
    "NatsConsumer",
    "NatsSettings",
    "PublisherHealth",
    "camera_subject",
    "ensure_stream",
    "stream_name",
]

log = logging.getLogger("walkout.bus")

Event = EntryRead | TrackZone | ShelfAction | CameraStatus
DURABLE = "walkout-runtime"
MSG_ID = "Nats-Msg-Id"
# A message larger than this is refused by the broker itself (a few events' worth of headroom).
MAX_MSG_BYTES = 4 * MAX_EVENT_BYTES

# Store and camera ids (config.py: letters, digits, '.', '_', '-') as single subject tokens: a '.'
# would split the token, so it becomes '~', which no id contains (the mapping can be undone).
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def _token(kind: str, value: str) -> str:
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise ValueError(f"{kind} {value!r}: expected letters, digits, '.', '_' or '-' (at most 64, starting with a "
                         "letter or digit) to name a NATS subject")
    return value.replace(".", "~")


def stream_name(store_id: str) -> str:
    return "WALKOUT_" + _token("store id", store_id)


def camera_subject(store_id: str, camera: str) -> str:
    return f"walkout.{_token('store id', store_id)}.events.{_token('camera', camera)}"


def _events_subjects(store_id: str) -> str:
    return f"walkout.{_token('store id', store_id)}.events.>"


class NatsSettings(BaseModel):
    """How a node or the store runtime uses the broker; the stream's settings are the store
    runtime's to keep (a node only creates the stream when it is missing)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(min_length=1, max_length=2000,
                     description="nats://HOST:PORT (tls:// for TLS); several servers separated by commas.")
    store_id: str = Field(description="The store's id (store.yaml): its stream and subjects are named after it.")
    duplicate_window_s: float = Field(
        default=120.0, gt=0, le=86_400,
        description="JetStream drops a message id it stored this recently: resends after a lost PubAck. Older "
                    "copies reach the runtime, which applies each event id once anyway.")
    max_bytes: int = Field(
        default=1 << 30, ge=1 << 20,
        description="Bytes of events not yet consumed the stream holds; past it the broker refuses new events "
                    "and the nodes' outboxes keep them (nothing is discarded).")
    replicas: int = Field(
        default=1, ge=1, le=5,
        description="Servers of a NATS cluster that hold the stream (JetStream's num_replicas): 3 on a 3-server "
                    "cluster keeps events flowing while one server is down; 1 for a single server.")
    ack_wait_s: float = Field(default=30.0, gt=0, le=3600,
                              description="A delivered event not acknowledged this long is delivered again.")
    fetch_batch: int = Field(default=64, ge=1, le=1000, description="Events the consumer asks for at a time.")
    max_ack_pending: int = Field(default=1000, ge=1, le=100_000,
                                 description="Events delivered to the consumer and not acknowledged yet, at most.")
    request_timeout_s: float = Field(default=2.0, gt=0, le=60,
                                     description="How long a publish waits for the broker's PubAck.")
    reconnect_wait_s: float = Field(default=0.5, gt=0, le=60,
                                    description="Pause between attempts to reach a broker that is down.")
    max_backoff_s: float = Field(default=5.0, gt=0, le=300,
                                 description="Longest pause between retries of a failing publish or fetch.")

    @field_validator("url")
    @classmethod
    def _urls(cls, value: str) -> str:
        for part in value.split(","):
            parsed = urlsplit(part.strip())
            try:
                port = parsed.port
            except ValueError:
                port = None
            if parsed.scheme not in ("nats", "tls") or not parsed.hostname or port is None:
                raise ValueError(f"expected nats://HOST:PORT (or tls://HOST:PORT), got {part.strip()!r}")
        return value

    @field_validator("store_id")
    @classmethod
    def _store_id(cls, value: str) -> str:
        _token("store id", value)
        return value

    @property
    def servers(self) -> list[str]:
        return [part.strip() for part in self.url.split(",")]


def stream_config(settings: NatsSettings) -> StreamConfig:
    return StreamConfig(
        name=stream_name(settings.store_id), subjects=[_events_subjects(settings.store_id)],
        description=f"walkout: camera-node events of store {settings.store_id}",
        retention=RetentionPolicy.WORK_QUEUE, storage=StorageType.FILE, discard=DiscardPolicy.NEW,
        max_bytes=settings.max_bytes, max_msg_size=MAX_MSG_BYTES, duplicate_window=settings.duplicate_window_s,
        num_replicas=settings.replicas)


async def ensure_stream(js: JetStreamContext, settings: NatsSettings, *, owner: bool) -> None:
    """Create the store's stream if missing. The `owner` (the store runtime) also brings the settings
    it may change (duplicate window, size) to its own; a node never changes them, so that nodes and
    the runtime with different settings do not take turns rewriting the stream."""
    want = stream_config(settings)
    try:
        info = await js.stream_info(want.name)
    except nats.js.errors.NotFoundError:
        try:
            await js.add_stream(want)
            log.info("created stream %s (%s)", want.name, want.subjects[0])
            return
        except nats.js.errors.BadRequestError:  # made meanwhile by another node or the runtime
            info = await js.stream_info(want.name)
    have = info.config
    if owner and (abs((have.duplicate_window or 0) - want.duplicate_window) > 1e-3 or have.max_bytes != want.max_bytes
                  or (have.num_replicas or 1) != want.num_replicas):
        await js.update_stream(want)
        log.info("stream %s: duplicate window %.3g s, max bytes %d, %d replica(s)", want.name, want.duplicate_window,
                 want.max_bytes, want.num_replicas)


# --------------------------------------------------------------------------------------------
# A coroutine on its own thread


class _LoopThread:
    """Runs `main()` on an asyncio loop in a daemon thread. `_stop` asks it to end (the coroutine
    watches `_stopping`) and cancels it if it has not within `grace_s`."""

    def __init__(self, name: str, settings: NatsSettings) -> None:
        self.settings = settings
        self._name = name
        self._stopping = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task | None = None
        self._wake: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._nc: NatsClient | None = None
        self._last_error: str | None = None
        self._outage_logged = False

    def _start(self, main: Callable[[], Awaitable[None]]) -> None:
        async def guarded() -> None:
            self._loop, self._task, self._wake = asyncio.get_running_loop(), asyncio.current_task(), asyncio.Event()
            self._ready.set()
            try:
                await main()
            except asyncio.CancelledError:
                pass
            finally:
                if self._nc is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(self._nc.close(), 2.0)

        self._thread = threading.Thread(target=lambda: asyncio.run(guarded()), name=self._name, daemon=True)
        self._thread.start()
        self._ready.wait(10)

    def _poke(self) -> None:
        """Wake the loop from another thread."""
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            with contextlib.suppress(RuntimeError):  # the loop has ended
                loop.call_soon_threadsafe(wake.set)

    async def _nap(self, seconds: float) -> None:
        """Sleep up to `seconds`, less if poked or stopping."""
        assert self._wake is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)
        self._wake.clear()

    def _stop(self, grace_s: float) -> None:
        thread = self._thread
        if thread is None:
            return
        self._stopping.set()
        self._poke()
        thread.join(grace_s)
        if thread.is_alive() and self._loop is not None and self._task is not None:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._task.cancel)
            thread.join(5)

    @property
    def connected(self) -> bool:
        return self._nc is not None and self._nc.is_connected

    async def _connect(self, name: str) -> NatsClient:
        """A connection that reconnects by itself for ever; waits (cancellably) until the broker answers."""

        async def on_error(exc: Exception) -> None:
            self._trouble(exc)

        async def on_disconnect() -> None:
            if not self._stopping.is_set():
                log.warning("%s: disconnected from the broker", self._name)

        async def on_reconnect() -> None:
            log.info("%s: reconnected to the broker", self._name)

        self._nc = await nats.connect(
            servers=self.settings.servers, name=name, allow_reconnect=True, max_reconnect_attempts=-1,
            reconnect_time_wait=self.settings.reconnect_wait_s, connect_timeout=2, ping_interval=10,
            max_outstanding_pings=3, error_cb=on_error, disconnected_cb=on_disconnect, reconnected_cb=on_reconnect)
        return self._nc

    def _trouble(self, exc: BaseException) -> None:
        """Remember a failure; log the first of an outage (a broker down fails every retry)."""
        self._last_error = f"{type(exc).__name__}: {exc}"[:300]
        if not self._outage_logged and not self._stopping.is_set():
            self._outage_logged = True
            log.warning("%s: %s (retrying)", self._name, self._last_error)

    def _recovered(self) -> None:
        if self._outage_logged:
            log.info("%s: working again", self._name)
        self._outage_logged, self._last_error = False, None


class _Backoff:
    def __init__(self, first_s: float, max_s: float) -> None:
        self.first_s, self.max_s, self.next_s = first_s, max_s, first_s

    def __call__(self) -> float:
        wait, self.next_s = self.next_s, min(self.max_s, self.next_s * 2)
        return wait

    def reset(self) -> None:
        self.next_s = self.first_s


# --------------------------------------------------------------------------------------------
# The node's side


@dataclass(frozen=True, slots=True)
class PublisherHealth:
    connected: bool
    backlog: int  # events in the outbox the broker has not acknowledged
    capacity: int
    published: int  # acknowledged by the broker since this bus started
    duplicates: int  # of those, ones the broker had already (a resend after a lost PubAck, or a restart)
    bad: int  # outbox rows that do not parse, kept aside
    last_error: str | None


class NatsBus(_LoopThread):
    """`Bus.publish` of a camera node over JetStream, through `outbox`.

    `publish` returns once the event is on disk in the outbox (it raises OutboxFull when the outbox
    stays full for `full_wait_s`); a sender thread publishes the outbox in order, deletes each event
    on its PubAck, and retries with a growing pause while the broker is away. `close` gives the
    sender up to a timeout to empty the outbox; what is left goes at the next start."""

    def __init__(self, settings: NatsSettings, outbox: Outbox, *, full_wait_s: float = 30.0,
                 name: str = "walkout-node") -> None:
        super().__init__(f"nats-publisher {name}", settings)
        self.outbox = outbox
        self.full_wait_s = full_wait_s
        self._client_name = name
        self._stream = stream_name(settings.store_id)
        self._published = 0
        self._duplicates = 0
        self._start(self._send_forever)

    def publish(self, event: Event) -> None:
        camera_subject(self.settings.store_id, event.camera)  # a camera no subject can name fails here, not later
        self.outbox.put(event, wait_s=self.full_wait_s)
        self._poke()

    def health(self) -> PublisherHealth:
        return PublisherHealth(connected=self.connected, backlog=len(self.outbox), capacity=self.outbox.capacity,
                               published=self._published, duplicates=self._duplicates, bad=self.outbox.bad,
                               last_error=self._last_error)

    def flush(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for the outbox to empty (bad rows aside); True if it did."""
        deadline = time.monotonic() + timeout
        while len(self.outbox) > self.outbox.bad:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)
        return True

    def close(self, timeout: float = 10.0) -> int:
        """Flush for up to `timeout` seconds, stop the sender and close the outbox; returns the
        events left in it."""
        self.flush(timeout)
        self._stop(grace_s=2.0)
        left = len(self.outbox)
        self.outbox.close()
        return left

    async def _send_forever(self) -> None:
        nc = await self._connect(self._client_name)
        js = nc.jetstream(timeout=self.settings.request_timeout_s)
        backoff = _Backoff(self.settings.reconnect_wait_s / 2, self.settings.max_backoff_s)
        stream_ready = False
        while not self._stopping.is_set():
            try:
                if not stream_ready:
                    await ensure_stream(js, self.settings, owner=False)
                    stream_ready = True
                batch = self.outbox.pending(64)
                if not batch:
                    await self._nap(1.0)
                    continue
                for event in batch:
                    await self._send(js, event)
                    if self._stopping.is_set():
                        return
                backoff.reset()
                self._recovered()
            except (TimeoutError, nats.errors.Error, OSError) as exc:
                if isinstance(exc, nats.js.errors.NoStreamResponseError):
                    stream_ready = False  # the stream was deleted, or JetStream restarted without it
                self._trouble(exc)
                await self._nap(backoff())
            except Exception:  # a bug must not leave events piling up in silence
                log.exception("%s: unexpected failure (retrying)", self._name)
                await self._nap(backoff())

    async def _send(self, js: JetStreamContext, event: Event) -> None:
        ack = await js.publish(camera_subject(self.settings.store_id, event.camera), event.to_json().encode(),
                               stream=self._stream, headers={MSG_ID: event.id})
        self.outbox.ack(event.id)
        self._published += 1
        self._duplicates += bool(ack.duplicate)


# --------------------------------------------------------------------------------------------
# The store runtime's side


class Applies(Protocol):
    def apply(self, event: Event) -> None:
        """Apply `event` in one committed transaction, once per event id (StoreRuntime.apply);
        ValueError for an event it will never apply (the message is then terminated, not retried)."""


@dataclass(frozen=True, slots=True)
class ConsumerStats:
    connected: bool
    applied: int  # events applied and acknowledged (a repeat the runtime ignored included)
    malformed: int  # messages that were no event of this store, terminated
    failed: int  # attempts to apply that raised; the event comes back later
    last_error: str | None


class NatsConsumer(_LoopThread):
    """The store runtime's side: a durable pull consumer (`walkout-runtime`) of the store's stream
    that hands each event to `runtime.apply` and acknowledges it only after that returned (its
    transaction committed). One event at a time, in stream order. `start()`, `stop()`, `stats()`."""

    def __init__(self, settings: NatsSettings, runtime: Applies, *, name: str = "walkout-runtime") -> None:
        super().__init__(f"nats-consumer {name}", settings)
        self.runtime = runtime
        self._client_name = name
        self._prefix = camera_subject(settings.store_id, "x")[:-1]
        self._applied = self._malformed = self._failed = 0

    def start(self) -> NatsConsumer:
        self._start(self._consume_forever)
        return self

    def stop(self, grace_s: float = 5.0) -> None:
        self._stop(grace_s)

    def stats(self) -> ConsumerStats:
        return ConsumerStats(connected=self.connected, applied=self._applied, malformed=self._malformed,
                             failed=self._failed, last_error=self._last_error)

    async def _consume_forever(self) -> None:
        nc = await self._connect(self._client_name)
        js = nc.jetstream(timeout=self.settings.request_timeout_s)
        backoff = _Backoff(self.settings.reconnect_wait_s / 2, self.settings.max_backoff_s)
        sub = None
        while not self._stopping.is_set():
            try:
                if sub is None:
                    await ensure_stream(js, self.settings, owner=True)
                    sub = await js.pull_subscribe(
                        _events_subjects(self.settings.store_id), durable=DURABLE,
                        stream=stream_name(self.settings.store_id), config=self._consumer_config())
                try:
                    messages = await sub.fetch(self.settings.fetch_batch, timeout=1.0)
                except nats.errors.TimeoutError:
                    if nc.is_connected:
                        self._recovered()  # an idle stream is a working one
                    continue
                for msg in messages:
                    await self._handle(msg)
                backoff.reset()
                self._recovered()
            except (TimeoutError, nats.errors.Error, OSError) as exc:
                self._trouble(exc)
                if isinstance(exc, nats.js.errors.APIError | nats.errors.BadSubscriptionError):
                    sub = await _dropped(sub)  # e.g. the consumer was deleted: make it again
                await self._nap(backoff())
            except Exception:
                log.exception("%s: unexpected failure (retrying)", self._name)
                sub = await _dropped(sub)
                await self._nap(backoff())

    def _consumer_config(self) -> ConsumerConfig:
        return ConsumerConfig(durable_name=DURABLE, deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.EXPLICIT,
                              ack_wait=self.settings.ack_wait_s, max_deliver=-1,
                              max_ack_pending=self.settings.max_ack_pending,
                              description="walkout store runtime: applies every event once, then acknowledges")

    async def _handle(self, msg: Msg) -> None:
        try:
            event = self._parse(msg)
        except ValueError as exc:
            self._malformed += 1
            log.warning("%s: malformed message on %.120s terminated: %s", self._name, msg.subject, exc)
            await msg.term()
            return
        try:
            await asyncio.to_thread(self.runtime.apply, event)
        except ValueError as exc:  # refused for good (StoreRuntime.apply's InvalidEvent): redelivery cannot help
            self._malformed += 1
            log.warning("%s: event %s refused by the runtime, terminated: %.300s", self._name, event.id, exc)
            await msg.term()
            return
        except Exception as exc:
            self._failed += 1
            delivered = _delivered(msg)
            log.error("%s: applying event %s failed (delivery %d), it comes back: %s", self._name, event.id,
                      delivered, f"{type(exc).__name__}: {exc}"[:300], exc_info=delivered == 1)
            await msg.nak(delay=min(60.0, 0.5 * 2 ** min(delivered, 10)))
            return
        await msg.ack()
        self._applied += 1

    def _parse(self, msg: Msg) -> Event:
        """The event in `msg`; ValueError saying why when it is none, or not of the camera whose
        subject carried it (one node must not speak for another camera)."""
        if len(msg.data) > MAX_EVENT_BYTES:
            raise ValueError(f"{len(msg.data)} bytes, more than an event may be ({MAX_EVENT_BYTES})")
        try:
            event = parse_event(msg.data)
        except ValidationError as exc:
            raise ValueError(_summary(exc)) from None
        if msg.subject != self._prefix + event.camera.replace(".", "~"):
            raise ValueError(f"an event of camera {event.camera!r} on another camera's subject")
        return event


async def _dropped(sub: Any) -> None:
    if sub is not None:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
    return None


def _delivered(msg: Msg) -> int:
    try:
        return int(msg.metadata.num_delivered)
    except Exception:
        return 1


def _summary(exc: ValidationError) -> str:
    """What was wrong, by field, without echoing the (possibly hostile) input."""
    errors = exc.errors(include_input=False, include_url=False)
    parts = [f"{'.'.join(map(str, e['loc'])) or 'message'}: {e['msg']}" for e in errors[:3]]
    more = f" (+{len(errors) - 3} more)" if len(errors) > 3 else ""
    return "; ".join(parts)[:300] + more
