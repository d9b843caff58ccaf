"""The bus over a real NATS JetStream broker (nats-server on 127.0.0.1, started and stopped here):
events reach the store runtime once each through the faults a store lives with — the broker down
for a while, a camera node killed and restarted, an event sent again long after the broker forgot
it, garbage on the subject. "Once" is judged where it matters: the runtime's baskets, receipts and
charges equal those of the same events applied directly, with no broker in between."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

nats = pytest.importorskip("nats", reason="the NATS bus tests need nats-py (pip install -e '.[dev]')")

from nats_server import NatsServer  # noqa: E402
from store_fakes import (  # noqa: E402
    BREAD,
    JAM,
    MILK,
    STORE_ID,
    T0,
    Clock,
    code,
    entered,
    entry_read,
    exited,
    open_runtime,
    shelf,
)

from store_runtime.bus.nats import NatsBus, NatsConsumer, NatsSettings, camera_subject, stream_name  # noqa: E402
from store_runtime.bus.outbox import Outbox  # noqa: E402
from store_runtime.events import EntryRead, ShelfAction, TrackZone  # noqa: E402
from store_runtime.runtime import StoreRuntime  # noqa: E402

Event = EntryRead | TrackZone | ShelfAction
HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SAMPLE_STORE = REPO / "sample_videos" / "02-pick-put" / "store.yaml"
NATS_SERVER = shutil.which("nats-server")

pytestmark = pytest.mark.skipif(NATS_SERVER is None,
                                reason="nats-server is not installed (apt-get install nats-server)")


# --------------------------------------------------------------------------------------------
# Fixtures and helpers


@pytest.fixture()
def broker(tmp_path: Path) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path / "nats", NATS_SERVER).start()
    try:
        yield server
    finally:
        server.stop()


def day() -> list[Event]:
    """Two shoppers' visit as a node sends it: codes read, both in, picks and a put, both out."""
    events: list[Event] = [entry_read(code("c-a"), T0 + 1), entry_read(code("c-b"), T0 + 2), entered(1, T0 + 4),
                           entered(2, T0 + 5)]
    products = (MILK, BREAD, JAM)
    events += [shelf(1 + i % 2, "pick", products[i % 3], T0 + 10 + i, slot=f"A{i % 3 + 1}") for i in range(24)]
    events += [shelf(1, "put", MILK, T0 + 40, slot="A1"), exited(1, T0 + 50), exited(2, T0 + 51)]
    return events


class Counting:
    """The runtime, counting how often each event id was handed to it."""

    def __init__(self, runtime: StoreRuntime) -> None:
        self.runtime = runtime
        self.calls: Counter[str] = Counter()
        self.order: list[str] = []
        self._lock = threading.Lock()

    def apply(self, event: Event) -> None:
        self.runtime.apply(event)
        with self._lock:
            self.calls[event.id] += 1
            self.order.append(event.id)


def state(runtime: StoreRuntime) -> dict:
    """What the shoppers and the store see: receipts, basket events, reviews, the payment books."""
    return {"receipts": [r.to_spec() for r in runtime.receipts()],
            "events": [repr(e) for e in runtime.basket_events()],
            "reviews": [(r.id, r.kind, r.state) for r in runtime.reviews(open_only=False)],
            "ledger": [(row["op"], row["customer"], row["amount_cents"]) for row in runtime.provider.ledger()]}


def undisturbed(tmp_path: Path, events: list[Event]) -> dict:
    runtime = open_runtime(tmp_path, clock=Clock(), name="direct.db")
    for event in events:
        runtime.apply(event)
    try:
        return state(runtime)
    finally:
        runtime.db.close()


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.02)


@contextmanager
def consuming(tmp_path: Path, settings: NatsSettings) -> Iterator[tuple[Counting, NatsConsumer]]:
    runtime = open_runtime(tmp_path, clock=Clock(), name="via-nats.db")
    counting = Counting(runtime)
    consumer = NatsConsumer(settings, counting).start()
    try:
        yield counting, consumer
    finally:
        consumer.stop()
        runtime.db.close()


def settings_for(broker: NatsServer, **kw: object) -> NatsSettings:
    # Quick retries: a test waits for the broker to come back, not for a production pause.
    return NatsSettings(url=broker.url, store_id=STORE_ID, reconnect_wait_s=0.2, max_backoff_s=0.5, **kw)


def all_applied(counting: Counting, events: list[Event]) -> Callable[[], bool]:
    return lambda: all(counting.calls[e.id] for e in events)


async def _with_js(url: str, work: Callable) -> object:
    nc = await nats.connect(url)
    try:
        return await work(nc.jetstream())
    finally:
        await nc.close()


def with_js(broker: NatsServer, work: Callable) -> object:
    """Run `work(js)` on a connection of the test's own (a raw client: what a hostile one can do)."""
    return asyncio.run(_with_js(broker.url, work))


# --------------------------------------------------------------------------------------------


def test_each_event_published_is_applied_once_in_order(tmp_path: Path, broker: NatsServer) -> None:
    events = day()
    settings = settings_for(broker)
    with consuming(tmp_path, settings) as (counting, consumer):
        bus = NatsBus(settings, Outbox(tmp_path / "outbox.db"))
        for event in events:
            bus.publish(event)
        wait_for(all_applied(counting, events), "every event applied")
        assert bus.flush(5)
        health = bus.health()
        assert bus.close() == 0
        time.sleep(0.2)  # anything delivered twice would arrive now
        assert counting.order == [e.id for e in events]  # each once, in the order published
        assert consumer.stats().applied == len(events) and consumer.stats().malformed == 0
        assert health.connected and health.published == len(events) and health.duplicates == 0
        assert state(counting.runtime) == undisturbed(tmp_path, events)
    assert state(counting.runtime)["receipts"][0]["status"] == "charged"

    # Work-queue retention: what the runtime acknowledged has left the broker.
    info = with_js(broker, lambda js: js.stream_info(stream_name(STORE_ID)))
    assert info.state.messages == 0 and info.config.duplicate_window == pytest.approx(120)


def test_broker_stopped_while_nodes_publish_delays_events_and_loses_none(tmp_path: Path,
                                                                         broker: NatsServer) -> None:
    events = day()
    settings = settings_for(broker)
    with consuming(tmp_path, settings) as (counting, consumer):
        bus = NatsBus(settings, Outbox(tmp_path / "outbox.db"))
        for event in events[:10]:
            bus.publish(event)
        wait_for(all_applied(counting, events[:10]), "the first ten applied")

        broker.stop()
        started = time.monotonic()
        for event in events[10:]:
            bus.publish(event)  # returns once on disk: the camera's loop does not wait for the broker
        assert time.monotonic() - started < 2.0
        time.sleep(2.0)  # the broker stays down for a few seconds
        health = bus.health()
        assert not health.connected and health.backlog == len(events) - 10 and health.last_error
        assert not consumer.stats().connected
        assert sum(counting.calls.values()) == 10

        broker.start()
        wait_for(all_applied(counting, events), "every event applied after the broker came back")
        assert bus.close(timeout=10) == 0
    assert set(counting.calls) == {e.id for e in events}
    assert state(counting.runtime) == undisturbed(tmp_path, events)


def test_node_and_runtime_started_before_the_broker_catch_up_once_it_is_there(tmp_path: Path,
                                                                              broker: NatsServer) -> None:
    broker.stop()  # a store booting: the broker's machine comes up last
    events = day()[:6]
    settings = settings_for(broker)
    with consuming(tmp_path, settings) as (counting, consumer):
        bus = NatsBus(settings, Outbox(tmp_path / "outbox.db"))
        for event in events:
            bus.publish(event)
        time.sleep(1.0)
        assert bus.health().backlog == len(events) and not counting.calls and consumer.stats().last_error
        broker.start()
        wait_for(all_applied(counting, events), "every event applied once the broker came")
        assert bus.close() == 0
        assert consumer.stats().last_error is None  # health says it works again
    assert state(counting.runtime) == undisturbed(tmp_path, events)


def run_publisher(broker: NatsServer, outbox: Path, events_file: Path, *, delay: float = 0.0) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, str(HERE / "nats_publisher.py"), broker.url, STORE_ID, str(outbox),
                             str(events_file), "--delay", str(delay)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)


@pytest.mark.parametrize("broker_up", [False, True], ids=["broker-down", "broker-up"])
def test_node_killed_mid_stream_and_restarted_resumes_its_outbox(tmp_path: Path, broker: NatsServer,
                                                                 broker_up: bool) -> None:
    events = day()
    events_file = tmp_path / "events.jsonl"
    events_file.write_text("".join(e.to_json() + "\n" for e in events))
    outbox = tmp_path / "node-outbox.db"
    with consuming(tmp_path, settings_for(broker)) as (counting, _):
        if not broker_up:
            broker.stop()  # what the node puts stays in its outbox: the kill is all that happens to it
        node = run_publisher(broker, outbox, events_file, delay=0.03)
        assert node.stdout is not None
        for line in node.stdout:
            if line.strip() == "put 11":
                break
        else:
            pytest.fail(f"the node ended before its 12th event: {node.wait()} {node.stderr.read()}")
        node.send_signal(signal.SIGKILL)
        node.wait(timeout=10)
        node.stdout.close()
        node.stderr.close()

        with Outbox(outbox) as left:  # the kill released the outbox; what was put is there, on disk
            waiting = [e.id for e in left.pending(100)]
        if broker_up:
            assert len(waiting) <= 12
        else:
            assert waiting == [e.id for e in events[:12]]
            broker.start()

        # The restarted node sends what its outbox kept, then goes on from a little before where it
        # was killed (a node re-reading its camera's last frames): events[:8] reach the broker only
        # from the outbox, the copies of events[8:12] have no effect.
        rest_file = tmp_path / "rest.jsonl"
        rest_file.write_text("".join(e.to_json() + "\n" for e in events[8:]))
        node = run_publisher(broker, outbox, rest_file)
        out, err = node.communicate(timeout=60)
        assert node.returncode == 0 and out.splitlines()[-1] == "done 0", err
        wait_for(all_applied(counting, events), "every event applied")
        time.sleep(0.2)
    assert state(counting.runtime) == undisturbed(tmp_path, events)


def test_same_event_again_after_the_duplicate_window_has_one_effect(tmp_path: Path, broker: NatsServer) -> None:
    settings = settings_for(broker, duplicate_window_s=2.0)
    visit = [entry_read(code("c-a"), T0 + 1), entered(1, T0 + 4)]
    pick = shelf(1, "pick", MILK, T0 + 10)
    with consuming(tmp_path, settings) as (counting, consumer):
        bus = NatsBus(settings, Outbox(tmp_path / "outbox.db"))
        for event in [*visit, pick]:
            bus.publish(event)
        wait_for(all_applied(counting, [*visit, pick]), "the visit applied")

        bus.publish(pick)  # within the window: the broker drops the copy itself
        assert bus.flush(5)
        assert bus.health().duplicates == 1
        time.sleep(2.5)  # past the window: the broker has forgotten the id
        bus.publish(pick)
        wait_for(lambda: counting.calls[pick.id] == 2, "the late copy delivered to the runtime")
        assert bus.health().duplicates == 1  # the broker took it as new...
        bus.close()
        assert consumer.stats().applied == 4
        [receipt] = state(counting.runtime)["receipts"]
        assert receipt["lines"] == [{"gtin": MILK, "qty": 1, "unit_cents": 120}]  # ...the runtime did not


def test_malformed_messages_are_terminated_counted_and_consumption_goes_on(tmp_path: Path,
                                                                         broker: NatsServer) -> None:
    settings = settings_for(broker, ack_wait_s=1.0)
    aisle = camera_subject(STORE_ID, "aisle")
    good = entry_read(code("c-a"), T0 + 1)  # a gate camera's event
    garbage = [
        (aisle, b"\xff\xfenot json at all"),
        (aisle, json.dumps({"id": "0" * 24, "t": 1.0, "camera": "aisle", "kind": "teleport"}).encode()),
        (aisle, good.to_json().encode()),  # a real event on another camera's subject
        (aisle, b"{" + b" " * 40_000 + b"}"),  # larger than any event
        (aisle, json.dumps({**json.loads(good.to_json()), "code": "x" * 5000}).encode()),  # a field too long
    ]

    async def send(js):
        for subject, payload in garbage:
            await js.publish(subject, payload)
        return await js.consumer_info(stream_name(STORE_ID), "walkout-runtime")

    with consuming(tmp_path, settings) as (counting, consumer):
        wait_for(lambda: consumer.connected, "consumer connected")
        bus = NatsBus(settings, Outbox(tmp_path / "outbox.db"))
        bus.publish(good)  # also makes sure the stream and consumer exist before the garbage
        wait_for(lambda: counting.calls[good.id] == 1, "the good event applied")
        with_js(broker, send)
        wait_for(lambda: consumer.stats().malformed == len(garbage), "every malformed message counted")
        after = entered(1, T0 + 4)
        bus.publish(after)
        wait_for(lambda: counting.calls[after.id] == 1, "events after the garbage applied")
        bus.close()
        time.sleep(1.5)  # past ack_wait: a message left unacknowledged would be delivered again
        info = with_js(broker, lambda js: js.consumer_info(stream_name(STORE_ID), "walkout-runtime"))
        assert info.num_ack_pending == 0 and info.num_redelivered == 0
        assert consumer.stats().malformed == len(garbage) and consumer.stats().failed == 0
        assert sum(counting.calls.values()) == 2
    assert [s["customer"] for s in state(counting.runtime)["receipts"]] == ["c-a"]


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"url": "http://127.0.0.1:4222"}, "url"),
        ({"url": "nats://127.0.0.1"}, "url"),
        ({"url": "nats://127.0.0.1:4222,nats//oops"}, "url"),
        ({"store_id": "two words"}, "store_id"),
        ({"store_id": "a*b"}, "store_id"),
        ({"duplicate_window_s": 0}, "duplicate_window_s"),
        ({"fetch_batch": 0}, "fetch_batch"),
        ({"typo_s": 1}, "typo_s"),
    ],
)
def test_bad_settings_name_the_field(kw: dict, field: str) -> None:
    from pydantic import ValidationError

    given = {"url": "nats://127.0.0.1:4222", "store_id": STORE_ID, **kw}
    with pytest.raises(ValidationError) as info:
        NatsSettings(**given)
    assert field in str(info.value)


def test_subject_tokens_keep_dotted_ids_apart() -> None:
    # Ids may hold '.', which would split a subject token: "a.b" and "a_b" must not meet.
    assert camera_subject("paris.flash-01", "aisle.2") == "walkout.paris~flash-01.events.aisle~2"
    assert camera_subject("paris.flash-01", "aisle.2") != camera_subject("paris_flash-01", "aisle_2")
    with pytest.raises(ValueError, match="camera"):
        camera_subject(STORE_ID, "aisle >")


# --------------------------------------------------------------------------------------------
# The commands


def test_walkout_serve_with_bus_applies_what_nodes_publish(tmp_path: Path, broker: NatsServer) -> None:
    from store_runtime.bench_load import free_port

    db_path = tmp_path / "walkout.db"
    log_path = tmp_path / "serve.log"
    with log_path.open("w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "store_runtime.cli", "serve", "--store", str(SAMPLE_STORE), "--db",
             f"sqlite:///{db_path}", "--port", str(free_port()), "--bus", broker.url],
            stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    bus = NatsBus(NatsSettings(url=broker.url, store_id="walkout-synth-01"), Outbox(tmp_path / "outbox.db"))
    events = [entered(1, T0 + 3), exited(1, T0 + 9)]

    def applied() -> set[str]:
        assert server.poll() is None, log_path.read_text()
        try:
            with sqlite3.connect(db_path) as db:
                return {row[0] for row in db.execute("SELECT id FROM applied_events")}
        except sqlite3.OperationalError:  # not migrated yet
            return set()

    try:
        for event in events:
            bus.publish(event)
        wait_for(lambda: applied() == {e.id for e in events}, "walkout serve applied the node's events", 60)
    finally:
        bus.close()
        server.terminate()
        returncode = server.wait(timeout=30)
    text = log_path.read_text()
    assert returncode in (0, -signal.SIGTERM) and "Traceback" not in text, text


@pytest.mark.parametrize(("bus", "message"), [("http://127.0.0.1:4222", "nats://HOST:PORT"),
                                              ("nats://127.0.0.1", "nats://HOST:PORT")])
def test_a_wrong_bus_url_is_a_one_line_error(tmp_path: Path, bus: str, message: str,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    from store_runtime.cli import main

    for args in (["node", "--scenario", str(REPO / "sample_videos" / "01-single"), "--camera", "gate", "--bus", bus,
                  "--outbox", str(tmp_path / "o.db")],
                 ["serve", "--store", str(SAMPLE_STORE), "--db", f"sqlite:///{tmp_path / 'w.db'}", "--bus", bus]):
        assert main(args) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err


def test_node_refuses_an_outbox_another_node_has_open(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from store_runtime.cli import main

    with Outbox(tmp_path / "o.db"):
        assert main(["node", "--scenario", str(REPO / "sample_videos" / "01-single"), "--camera", "gate",
                     "--bus", "nats://127.0.0.1:1", "--outbox", str(tmp_path / "o.db")]) == 2
    assert "another process" in capsys.readouterr().err
