"""A live camera that stalls (the stream open, no frame) or disconnects (the stream lost), read by the
real OpenCV/FFmpeg path from a network camera on loopback (tests/mjpeg_camera.py): `health()`
says which, since when, and that it recovered; and the stall threshold is a few frame intervals."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import pytest
from mjpeg_camera import MjpegCamera, jpeg

from vision.sources import (
    DEFAULT_STALL_S,
    Backoff,
    LiveSource,
    SourceConfig,
    SourceConfigError,
    SourceState,
    stall_threshold,
)


def wait_for(what: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def frames(n: int = 4) -> list[bytes]:
    return [jpeg(np.full((120, 160, 3), 40 * i, np.uint8)) for i in range(n)]


@pytest.mark.parametrize(("stall_after_s", "fps", "interval_s", "expected"), [
    (0.3, 15.0, None, 0.3),              # configured: used as given
    (None, 15.0, None, 1.0),             # 5 intervals of a 15 fps camera is 0.33 s: never under 1 s
    (None, 2.0, None, 2.5),              # a 2 fps camera: 5 intervals
    (None, None, 0.5, 2.5),              # rate unknown (RTSP, HTTP): the measured interval
    (None, None, None, DEFAULT_STALL_S),  # nothing known yet
])
def test_the_stall_threshold_is_a_few_frame_intervals(stall_after_s: float | None, fps: float | None,
                                                      interval_s: float | None, expected: float) -> None:
    config = SourceConfig(kind="http", uri="http://127.0.0.1/video.mjpg", camera="aisle", stall_after_s=stall_after_s)
    assert stall_threshold(config, fps, interval_s) == pytest.approx(expected)


@pytest.mark.parametrize(("fields", "message"), [
    ({"kind": "http", "uri": "rtsp://cam/1"}, "http:// or https://"),
    ({"kind": "http", "uri": "http://"}, "with a host"),
    ({"kind": "http", "uri": "http://cam/1", "stall_after_s": 0}, "stall_after_s"),
    ({"kind": "http", "uri": "http://cam/1", "stall_after_s": float("nan")}, "stall_after_s"),
    ({"kind": "http", "uri": "http://cam/1", "stall_after_s": True}, "stall_after_s"),
])
def test_bad_http_and_stall_settings_name_the_field(fields: dict, message: str) -> None:
    with pytest.raises(SourceConfigError, match=message):
        SourceConfig(camera="aisle", **fields)


def test_a_stall_is_reported_while_the_socket_stays_open_and_a_drop_reconnects() -> None:
    with MjpegCamera(frames(), fps=25) as camera:
        config = SourceConfig(kind="http", uri=camera.url, camera="aisle", stall_after_s=0.4, queue_size=2,
                              backoff=Backoff(initial_s=0.2, jitter=0))
        with LiveSource(config) as source:
            first = source.read(timeout=10)
            assert first is not None and first.image.shape == (120, 160, 3), "decoded by the real FFmpeg path"
            health = source.health()
            assert (health.state, health.outage_since, health.stall_after_s) == (SourceState.STREAMING, None, 0.4)

            camera.stall()
            wait_for(lambda: source.health().state is SourceState.STALLED)
            stalled = source.health()
            assert stalled.outage_since == stalled.last_frame_t, "the outage began after the newest frame"
            assert time.time() - stalled.outage_since >= 0.4
            assert stalled.reconnects == 0 and camera.connections == 1, "a stall is not a lost stream"

            camera.resume()
            wait_for(lambda: source.health().state is SourceState.STREAMING)
            assert source.health().outage_since is None and camera.connections == 1

            camera.drop()
            wait_for(lambda: source.health().reconnects == 1)
            lost = source.health()
            assert lost.state in (SourceState.RECONNECTING, SourceState.STREAMING)
            wait_for(lambda: source.health().state is SourceState.STREAMING and camera.connections == 2)
            before = source.health().frames_read
            wait_for(lambda: source.health().frames_read > before + 3)


def test_a_camera_that_never_answers_is_down_since_the_source_started() -> None:
    # A port where nothing listens: every attempt is refused, the source stays `connecting`, and its
    # outage runs from start() (the node reports it as disconnected once past the stall threshold).
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = SourceConfig(kind="http", uri=f"http://127.0.0.1:{port}/video.mjpg", camera="gate",
                          backoff=Backoff(initial_s=0.05, max_s=0.1))
    started = time.time()
    with LiveSource(config) as source:
        wait_for(lambda: source.health().last_error is not None)
        health = source.health()
    assert health.state is SourceState.CONNECTING and health.frames_read == 0
    assert started <= health.outage_since <= started + 1.0
    assert "cannot open http://127.0.0.1" in health.last_error


class PacedCamera:
    """A capture that delivers `n` frames, one per call, each `interval` apart on a fake clock."""

    def __init__(self, clock: list[float], n: int, interval: float) -> None:
        self.clock, self.n, self.interval = clock, n, interval

    def isOpened(self) -> bool:  # noqa: N802 - OpenCV's name
        return True

    def read(self) -> tuple[bool, np.ndarray | None]:
        if self.n == 0:
            return False, None
        self.n -= 1
        self.clock[0] += self.interval
        return True, np.zeros((2, 2, 3), np.uint8)

    def release(self) -> None:
        pass


def test_the_default_threshold_follows_the_measured_frame_interval() -> None:
    # An RTSP camera states no rate to us: a 2 fps camera must not count as stalled between frames.
    clock = [1000.0]
    config = SourceConfig(kind="rtsp", uri="rtsp://127.0.0.1/x", camera="aisle", queue_size=100,
                          backoff=Backoff(max_attempts=1))
    camera = PacedCamera(clock, 12, 0.5)  # reopened, it has nothing more: the source gives up
    source = LiveSource(config, lambda: camera, clock=lambda: clock[0], sleep=lambda s: None)
    with source:
        wait_for(lambda: source.health().state is SourceState.FAILED)
        health = source.health()
    assert health.frames_read == 12
    assert health.stall_after_s == pytest.approx(2.5)
