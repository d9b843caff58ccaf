"""A replay's cameras run side by side (store_runtime.replay.CameraFeed), and the runtime still sees
their events in time order: ties by camera, then frame, whichever thread was faster; a camera whose
recording fails ends the replay with that camera's error, and stopping joins every thread."""

from __future__ import annotations

import time
from dataclasses import dataclass

import pytest

from store_runtime.bus import MemoryBus
from store_runtime.replay import CameraFeed, in_time_order, stop_feeds


@dataclass(frozen=True)
class _Frame:
    t: float
    index: int


class _Node:
    """Publishes one event per frame, named after camera and frame; sleeps `delay` per frame."""

    def __init__(self, camera: str, bus: MemoryBus, delay: float = 0.0, fail_at: int | None = None) -> None:
        self.camera, self.bus, self.delay, self.fail_at = camera, bus, delay, fail_at

    def step(self, frame: _Frame) -> None:
        if frame.index == self.fail_at:
            raise ValueError(f"{self.camera}.mp4: frame {frame.index} is damaged")
        time.sleep(self.delay)
        self.bus.publish(f"{self.camera}#{frame.index}")

    def finish(self) -> None:
        self.bus.publish(f"{self.camera}:end")

    def close(self) -> None:
        pass


def _feed(camera: str, fps: float, frames: int, **node: object) -> CameraFeed:
    bus = MemoryBus()
    return CameraFeed(camera, _Node(camera, bus, **node), bus, (_Frame(i / fps, i) for i in range(frames)))


@pytest.mark.parametrize("slow", ["aisle", "gate"])
def test_events_come_in_time_order_whichever_camera_is_slower(slow: str) -> None:
    feeds = [_feed("aisle", 10, 6, delay=0.01 if slow == "aisle" else 0.0),
             _feed("gate", 5, 3, delay=0.01 if slow == "gate" else 0.0)]
    for feed in feeds:
        feed.start()
    order = [(camera, t, events) for camera, t, events in in_time_order(feeds)]
    stop_feeds(feeds)
    assert [events for _, _, events in order] == [
        ["aisle#0"], ["gate#0"], ["aisle#1"], ["aisle#2"], ["gate#1"], ["aisle#3"], ["aisle#4"], ["gate#2"],
        ["aisle#5"]]
    assert [f.final_events for f in feeds] == [["aisle:end"], ["gate:end"]]


def test_a_failing_recording_ends_the_replay_with_its_error() -> None:
    feeds = [_feed("aisle", 10, 50, fail_at=3), _feed("gate", 10, 50)]
    for feed in feeds:
        feed.start()
    with pytest.raises(ValueError, match=r"aisle\.mp4: frame 3 is damaged"):
        list(in_time_order(feeds))
    stop_feeds(feeds)
    assert not any(feed.thread.is_alive() for feed in feeds)


def test_stopping_joins_threads_that_are_ahead() -> None:
    # Nobody reads: each thread fills its queue and waits; stop_feeds must still end them.
    feeds = [_feed("aisle", 10, 10_000), _feed("gate", 10, 10_000)]
    for feed in feeds:
        feed.start()
    time.sleep(0.2)
    stop_feeds(feeds)
    assert not any(feed.thread.is_alive() for feed in feeds)
