"""Small videos, damaged copies and fake cameras for tests/vision/test_sources.py."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from vision.video import VideoWriter

SIZE = (160, 120)  # width, height: small, and both multiples of 16 as every codec likes


def pattern(index: int, size: tuple[int, int] = SIZE) -> np.ndarray:
    """A frame that differs from its neighbours (coarse random blocks and the index written on it)."""
    w, h = size
    blocks = np.random.default_rng(index).integers(0, 256, (h // 8, w // 8, 3), dtype=np.uint8)
    image = np.ascontiguousarray(blocks.repeat(8, 0).repeat(8, 1))
    cv2.putText(image, str(index), (8, h // 2), cv2.FONT_HERSHEY_SIMPLEX, 1.2, (255, 255, 255), 3)
    return image


def write_h264(path: Path, n: int, fps: int, size: tuple[int, int] = SIZE) -> Path:
    """H.264 MP4 as the project writes it (vision.video.VideoWriter: the index comes after the data)."""
    with VideoWriter(path, size, fps) as writer:
        for i in range(n):
            writer.write(pattern(i, size))
    return path


def write_h264_faststart(path: Path, n: int, fps: int, size: tuple[int, int] = SIZE) -> Path:
    """H.264 MP4 with its index before the data, as streaming recorders write it: a cut keeps the index."""
    import av

    with av.open(str(path), "w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "26", "preset": "veryfast", "threads": "1"}
        for i in range(n):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(pattern(i, size), format="bgr24")))
        container.mux(stream.encode())
    return path


def write_cv2(path: Path, n: int, fps: int, fourcc: str, size: tuple[int, int] = SIZE) -> Path:
    """What OpenCV writes: MJPG in AVI, or MPEG-4 part 2 ('mp4v') in MP4."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, size)
    assert writer.isOpened(), f"OpenCV cannot write {fourcc} to {path}"
    for i in range(n):
        writer.write(pattern(i, size))
    writer.release()
    return path


def write_raw_mjpeg(path: Path, n: int, size: tuple[int, int] = SIZE) -> Path:
    """A bare MJPEG stream (concatenated JPEGs, as an IP camera's .mjpeg dump): no rate, no index."""
    path.write_bytes(b"".join(cv2.imencode(".jpg", pattern(i, size))[1].tobytes() for i in range(n)))
    return path


def jpeg_ends(path: Path) -> list[int]:
    """Byte offset just past each JPEG of a raw MJPEG file (baseline JPEGs from OpenCV end in FFD9
    and hold no other FFD9: inside entropy-coded data FF is always followed by 00)."""
    data, ends, at = path.read_bytes(), [], 0
    while (at := data.find(b"\xff\xd9", at)) >= 0:
        at += 2
        ends.append(at)
    return ends


def frames_before_cut(path: Path, cut: int) -> int:
    """How many frames, in display order, an intact `path` has entirely before byte `cut`: frame i
    needs its own packet and every packet decoded before it (its references)."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        packets = [(p.pos, p.size, p.pts) for p in container.demux(stream) if p.size]
    by_display = sorted(range(len(packets)), key=lambda k: packets[k][2])
    complete = [pos + size <= cut for pos, size, _ in packets]
    count, needed = 0, -1
    for decode_index in by_display:
        needed = max(needed, decode_index)
        if not all(complete[: needed + 1]):
            break
        count += 1
    return count


def cut_at(src: Path, dst: Path, fraction: float, minus: int = 0) -> int:
    """A copy of `src` cut short at `fraction` of its bytes less `minus` bytes; returns the cut offset."""
    data = src.read_bytes()
    cut = int(len(data) * fraction) - minus
    dst.write_bytes(data[:cut])
    return cut


def cut_out(src: Path, dst: Path, fraction: float, length: int) -> int:
    """A copy of `src` with `length` bytes removed at `fraction` (what a bad sector or a broken copy
    does); everything after moves. Returns the offset of the hole."""
    data = src.read_bytes()
    at = int(len(data) * fraction)
    dst.write_bytes(data[:at] + data[at + length:])
    return at


# --------------------------------------------------------------------------- fake cameras


class FakeClock:
    """Time that moves only when someone sleeps: the reader thread's backoff and pacing become exact."""

    def __init__(self, t: float = 1_000.0) -> None:
        self.t = t
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds


@dataclass
class FakeCapture:
    """A camera connection that delivers `frames` frames (1/fps of fake time apart), then is lost."""

    frames: int
    clock: FakeClock | None
    first_index: int
    fps: float = 10.0
    opened: bool = True
    released: bool = False
    read_count: int = 0

    def isOpened(self) -> bool:  # noqa: N802 - OpenCV's name
        return self.opened

    def read(self) -> tuple[bool, np.ndarray | None]:
        if self.read_count >= self.frames:
            return False, None
        if self.clock is not None:
            self.clock.t += 1 / self.fps  # a camera's read blocks until its next frame
        image = np.full((4, 6, 3), (self.first_index + self.read_count) % 256, np.uint8)
        self.read_count += 1
        return True, image

    def release(self) -> None:
        self.released = True


@dataclass
class FakeCamera:
    """An opener that follows a script, one entry per connection attempt: an int n connects and
    delivers n frames before the stream is lost; "refused" raises as a network error would; "closed"
    returns a capture that is not opened. After the script every attempt is refused."""

    script: list[int | str]
    clock: FakeClock | None = None
    captures: list[FakeCapture] = field(default_factory=list)
    attempts: int = 0

    def __call__(self) -> FakeCapture:
        step = self.script[self.attempts] if self.attempts < len(self.script) else "refused"
        self.attempts += 1
        if step == "refused":
            raise ConnectionRefusedError(f"connection refused (attempt {self.attempts})")
        delivered = sum(c.frames for c in self.captures)
        capture = FakeCapture(step if isinstance(step, int) else 0, self.clock, delivered, opened=step != "closed")
        self.captures.append(capture)
        return capture


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Polls `condition` (the reader thread works on its own); fails the test after `timeout` seconds."""
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for the source's reader thread"
        time.sleep(0.005)
