"""The NATS drills' stage: a real nats-server on 127.0.0.1, a runtime of the test store with its
JetStream consumer, and a node's bus with its outbox; skipped, saying why, when nats-server or
nats-py is missing. A short ack_wait so that a message left unacknowledged comes back within a test."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from store_fakes import Clock, open_runtime

if TYPE_CHECKING:
    from store_runtime.bus.nats import NatsBus, NatsConsumer
    from store_runtime.runtime import StoreRuntime

STORE_ID = "test-store-01"


@dataclass
class NatsDrill:
    """What a drill publishes through (`bus`, or raw to `url`) and what it checks (`runtime`, `consumer`)."""

    url: str
    runtime: StoreRuntime
    consumer: NatsConsumer
    bus: NatsBus  # the drill closes it, to flush


@contextmanager
def nats_drill(tmp_path: Path) -> Iterator[NatsDrill]:
    """The stage for the length of the block; the consumer, the database and the server stopped after."""
    server = shutil.which("nats-server")
    if server is None:
        pytest.skip("nats-server is not installed (apt-get install nats-server)")
    pytest.importorskip("nats", reason="needs nats-py (pip install -e '.[dev]')")
    from nats_server import NatsServer

    from store_runtime.bus.nats import NatsBus, NatsConsumer, NatsSettings
    from store_runtime.bus.outbox import Outbox

    broker = NatsServer(tmp_path / "nats", server).start()
    runtime = open_runtime(tmp_path, clock=Clock())
    settings = NatsSettings(url=broker.url, store_id=STORE_ID, reconnect_wait_s=0.2, max_backoff_s=0.5,
                            ack_wait_s=1.0)
    consumer = NatsConsumer(settings, runtime).start()
    try:
        yield NatsDrill(broker.url, runtime, consumer, NatsBus(settings, Outbox(tmp_path / "outbox.db")))
    finally:
        consumer.stop()
        runtime.db.close()
        broker.stop()


def wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)
