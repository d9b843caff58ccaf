"""The camera node reports its camera's outages: `CameraWatch` turns a live source's health into
CameraStatus events (stalled, disconnected, recovered, ok heartbeats with the frame lag), and
`follow` runs a real network camera (tests/mjpeg_camera.py) through a node that stalls, recovers
and loses its stream."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from mjpeg_camera import MjpegCamera, jpeg
from paths import SAMPLES
from pydantic import ValidationError

from store_runtime.bus import MemoryBus
from store_runtime.config import load_scenario
from store_runtime.events import CameraStatus, parse_event
from store_runtime.node import CameraNode, CameraWatch, NodeConfig, follow
from vision.sources import Backoff, LiveSource, SourceConfig, SourceHealth, SourceState
from vision.types import Detections

S = SourceState


def health(state: SourceState, *, last: float | None = 100.0, since: float | None = None, reconnects: int = 0,
           error: str | None = None) -> SourceHealth:
    return SourceHealth("aisle", state, 10, 0, reconnects, error, last, since, 1.0)


def brief(events: list[CameraStatus]) -> list[tuple]:
    return [(e.status, e.outage, e.start_t, e.end_t) for e in events]


def test_an_outage_is_reported_once_worsened_once_and_ended_by_a_newer_frame() -> None:
    watch = CameraWatch("aisle", heartbeat_s=30)
    steps = [
        # (health, now, frame time) -> what the node reports
        ((health(S.STREAMING), 100.1, 100.0), [("ok", None, None, None)]),     # the first frame: a heartbeat
        ((health(S.STREAMING), 100.2, 100.1), []),
        ((health(S.STALLED, since=100.1), 101.5, None), [("stalled", "stalled", 100.1, None)]),
        ((health(S.STALLED, since=100.1), 102.0, None), []),                    # said once
        ((health(S.RECONNECTING, since=100.1, reconnects=1, error="read timed out"), 110.0, None),
         [("disconnected", "disconnected", 100.1, None)]),                    # worse: same outage, same start
        ((health(S.STREAMING, reconnects=1), 110.5, 100.1), []),               # an old frame from the queue
        ((health(S.STREAMING, reconnects=1), 110.6, 110.4), [("recovered", "disconnected", 100.1, 110.4)]),
        ((health(S.STREAMING, reconnects=1), 125.0, 124.9), []),
        ((health(S.STREAMING, reconnects=1), 140.7, 140.6), [("ok", None, None, None)]),  # 30 s after the last report
    ]
    for (state, now, frame_t), expected in steps:
        assert brief(watch.update(state, now, frame_t)) == expected, (state.state, now)


def test_reports_carry_the_lag_reconnects_and_error_and_stable_ids() -> None:
    def run() -> list[CameraStatus]:
        watch = CameraWatch("aisle", heartbeat_s=30, to_store=lambda t: t + 1000.0)
        out = watch.update(health(S.STREAMING), 100.5, 100.0)  # a frame 0.5 s old when processed
        out += watch.update(health(S.RECONNECTING, since=100.0, reconnects=2,
                                   error="read failed: rtsp://u:***@cam"), 103.0)
        out += watch.update(health(S.STREAMING, reconnects=2), 104.2, 104.0)
        return out

    ok, lost, back = run()
    assert (ok.t, ok.lag_s, ok.reconnects) == (1100.5, 0.5, 0)
    assert (lost.t, lost.start_t, lost.reconnects, lost.detail) == (1103.0, 1100.0, 2, "read failed: rtsp://u:***@cam")
    assert (back.start_t, back.end_t, back.lag_s) == (1100.0, 1104.0, pytest.approx(0.2))
    assert [e.id for e in run()] == [ok.id, lost.id, back.id], "a resent report has the same id"
    assert len({ok.id, lost.id, back.id}) == 3
    assert all(parse_event(e.to_json()) == e for e in (ok, lost, back)), "they cross the bus as JSON"


@pytest.mark.parametrize(("since", "now", "expected"), [
    (100.0, 100.5, []),                                                  # still within the threshold: opening
    (100.0, 101.5, [("disconnected", "disconnected", 100.0, None)]),    # never delivered: the camera is not there
])
def test_a_camera_still_connecting_past_the_threshold_is_disconnected(since: float, now: float,
                                                                       expected: list) -> None:
    watch = CameraWatch("gate", heartbeat_s=30)
    assert brief(watch.update(health(S.CONNECTING, last=None, since=since), now)) == expected


@pytest.mark.parametrize("fields", [
    {"status": "ok", "start_t": 1.0},
    {"status": "stalled"},
    {"status": "stalled", "outage": "disconnected", "start_t": 1.0},
    {"status": "recovered", "outage": "stalled", "start_t": 5.0},   # an end without its time
    {"status": "ok", "outage": "stalled"},
    {"status": "stalled", "outage": "stalled", "start_t": -1.0},
    {"status": "ok", "reconnects": -1},
])
def test_inconsistent_camera_reports_are_refused(fields: dict) -> None:
    with pytest.raises(ValidationError):
        CameraStatus(id="0" * 24, t=10.0, camera="aisle", **fields)


class NoDetector:
    def detect(self, image: np.ndarray) -> Detections:
        return Detections.empty(("person", "hand", "product", "phone"))


def test_a_live_node_reports_its_camera_stalling_recovering_and_reconnecting() -> None:
    store = load_scenario(SAMPLES / "01-single").store.config
    bus = MemoryBus()
    node = CameraNode(store, "aisle", detector=NoDetector(), bus=bus, config=NodeConfig(heartbeat_s=60))
    images = [jpeg(np.full((120, 160, 3), 30 * i, np.uint8)) for i in range(3)]
    published: list = []
    stop = threading.Event()

    def until(status: str, events) -> None:
        for event in events:
            published.append(event)
            if getattr(event, "status", None) == status:
                return
        raise AssertionError(f"no {status} report before the test's deadline: {brief(published)}")

    with MjpegCamera(images, fps=25) as camera:
        config = SourceConfig(kind="http", uri=camera.url, camera="aisle", stall_after_s=0.3,
                              backoff=Backoff(initial_s=0.3, jitter=0))
        deadline = threading.Timer(20.0, stop.set)  # a report that never comes fails, not hangs
        deadline.start()
        with LiveSource(config) as source:
            events = follow(node, source, poll_s=0.05, stop=stop)
            until("ok", events)
            camera.stall()
            until("stalled", events)
            stop.wait(0.3)
            camera.resume()
            until("recovered", events)
            camera.drop()
            until("disconnected", events)
            until("recovered", events)
        deadline.cancel()
    reports = [e for e in published if isinstance(e, CameraStatus)]
    assert [e.status for e in reports] == ["ok", "stalled", "recovered", "disconnected", "recovered"]
    _, stalled, back, lost, again = reports
    assert back.start_t == stalled.start_t and back.end_t - back.start_t >= 0.6, "the window spans the stall"
    assert (back.outage, back.reconnects) == ("stalled", 0)
    assert (lost.outage, again.outage, again.reconnects) == ("disconnected", "disconnected", 1)
    assert lost.start_t >= back.end_t
    assert [e.id for e in bus.drain() if isinstance(e, CameraStatus)] == [e.id for e in reports], "on the bus"
