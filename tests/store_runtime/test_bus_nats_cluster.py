"""The bus on a three-server NATS cluster (deploy/compose.yaml's shape, on 127.0.0.1): with
`replicas=3` the store's stream is kept on every server, so stopping the one that leads it keeps
events flowing; each is applied once and the receipts are those of an undisturbed day."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("nats", reason="the NATS bus tests need nats-py (pip install -e '.[dev]')")

from nats_server import NatsCluster  # noqa: E402
from test_bus_nats import all_applied, consuming, day, state, undisturbed, wait_for, with_js  # noqa: E402

from store_runtime.bus.nats import NatsBus, NatsSettings, stream_name  # noqa: E402
from store_runtime.bus.outbox import Outbox  # noqa: E402

NATS_SERVER = shutil.which("nats-server")
pytestmark = pytest.mark.skipif(NATS_SERVER is None, reason="needs Debian's nats-server (apt-get install nats-server)")
STORE_ID = "walkout-test"


@pytest.fixture()
def cluster(tmp_path: Path) -> Iterator[NatsCluster]:
    servers = NatsCluster(tmp_path / "nats", NATS_SERVER).start()
    try:
        yield servers
    finally:
        servers.stop()


def test_a_stream_on_three_servers_survives_its_leader_stopping(tmp_path: Path, cluster: NatsCluster) -> None:
    events = day()
    settings = NatsSettings(url=cluster.url, store_id=STORE_ID, replicas=3, reconnect_wait_s=0.2, max_backoff_s=0.5,
                            request_timeout_s=1.0)
    with consuming(tmp_path, settings) as (counting, _consumer):
        bus = NatsBus(settings, Outbox(tmp_path / "outbox.db"))
        for event in events[:10]:
            bus.publish(event)
        wait_for(all_applied(counting, events[:10]), "the first ten applied", timeout=60)

        info = with_js(cluster.servers[0], lambda js: js.stream_info(stream_name(STORE_ID)))
        assert info.config.num_replicas == 3 and len(info.cluster.replicas) == 2
        leader = cluster.named(info.cluster.leader)
        leader.stop()

        for event in events[10:]:
            bus.publish(event)
        wait_for(all_applied(counting, events), "every event applied with the stream's leader down", timeout=60)
        assert bus.close(timeout=10) == 0
        time.sleep(0.2)  # anything delivered twice would arrive now
    assert set(counting.calls) == {e.id for e in events} and max(counting.calls.values()) == 1
    assert state(counting.runtime) == undisturbed(tmp_path, events)


def test_replicas_are_bounded() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="replicas"):
        NatsSettings(url="nats://127.0.0.1:4222", store_id=STORE_ID, replicas=0)
