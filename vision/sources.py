"""Video sources: recorded files, RTSP streams and local cameras behind one interface that yields `Frame`s.

Two kinds of reading, because replay and live want opposite things:

- **Replay** (`FileSource`): a recorded file is decoded in the caller's thread, one frame per
  `next()`. Nothing runs ahead and nothing is dropped (the reader simply waits for the consumer), and
  `t = start + index / fps` is the scenario clock of SPEC section 2, so a replay gives the same frames
  at the same times every run. No thread is ever started for it.
- **Live** (`LiveSource`): a camera does not wait for a slow consumer, so a reader thread keeps the
  newest frames in a bounded queue that drops the oldest, stamps each with the wall clock, and
  reconnects with capped exponential backoff when the stream is lost.

A live camera fails in two ways, and `health()` tells them apart. A lost stream (the decoder's error
or end of stream, a read timeout, a refused connection) is `reconnecting` while the reader reopens
it. A stream that stays open but delivers nothing (a frozen encoder, a congested link: the socket is
up, no frame comes) is `stalled` once no frame has come for `SourceConfig.stall_after_s`, which by
default is a few frame intervals (`stall_threshold`). Both say since when the camera has shown
nothing (`SourceHealth.outage_since`): the camera node reports outages from that.

`vision` is a pure library without threads, and the live reader is the one honest exception: a
camera's frames arrive whether or not anyone reads them, and only a reader of its own keeps the
newest ones. So the thread lives inside a `LiveSource` object only, is started by `start()` (or
`with`), stopped and joined by `close()`, shares nothing with other objects, and is never created at
import or by a file replay. The sockets of an RTSP stream are OpenCV's (FFmpeg's), opened inside the
capture that the opener makes.

Files are decoded with PyAV rather than `cv2.VideoCapture`: on damaged files (measured on H.264 and
MPEG-4 in MP4, MJPEG in AVI and raw MJPEG, cut short or overwritten) OpenCV silently returns
concealed garbage frames or stops early with no error, while PyAV flags cut-short packets
(`Packet.is_corrupt`) and, with FFmpeg's `err_detect=explode`, raises on undecodable data. Live streams
use OpenCV, whose `VideoCapture` already handles RTSP, V4L2 devices and their read timeouts.
"""

from __future__ import annotations

import math
import random
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Protocol, Self
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from vision.types import Frame

if TYPE_CHECKING:
    import av.container
    import av.stream
    import av.video.frame

SourceKind = Literal["file", "rtsp", "device", "http"]
KINDS: tuple[str, ...] = ("file", "rtsp", "device", "http")

# Containers that carry no frame rate: FFmpeg reports 25 fps for them whatever the camera did.
RATELESS_FORMATS = frozenset({"jpeg_pipe", "mjpeg", "mpjpeg", "image2", "image2pipe", "h264", "hevc"})
# OpenCV's FFmpeg default is to wait 30 s on a dead stream; a node should notice a lost camera sooner.
RTSP_TIMEOUT_MS = 10_000
# A live source is stalled after this many frame intervals without a frame, and never sooner than
# MIN_STALL_S: a camera's frames arrive with jitter, and a congested link delays a few of them.
STALL_INTERVALS = 5
MIN_STALL_S = 1.0
DEFAULT_STALL_S = 2.0  # before the first two frames of a camera whose rate is not known


class SourceError(Exception):
    """A source cannot go on: a damaged or unreadable file (names the file and the frame), or a live
    source that gave up reconnecting."""


class SourceConfigError(ValueError):
    """A source configuration that cannot work; the message names the field and what was expected."""


class SourceState(StrEnum):
    CONNECTING = "connecting"  # not a single frame read yet
    STREAMING = "streaming"
    STALLED = "stalled"  # the stream is open, but no frame came for the stall threshold
    RECONNECTING = "reconnecting"  # the stream was lost; waiting or trying to reopen it
    ENDED = "ended"  # end of a file, or closed
    FAILED = "failed"  # damaged file, or reconnection given up; `last_error` says why


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class Backoff:
    """Waits between reconnection attempts: `initial_s * factor ** (n - 1)` before attempt n after n
    failures, capped at `max_s`, shortened by up to `jitter` of itself so that cameras that dropped
    together do not all come back in the same instant. `max_attempts` consecutive attempts without a
    frame end in `failed` (None: retry for ever, what a store open 24/7 wants). `seed` makes the
    jitter repeatable."""

    initial_s: float = 0.5
    max_s: float = 30.0
    factor: float = 2.0
    jitter: float = 0.2
    max_attempts: int | None = None
    seed: int | None = None

    def __post_init__(self) -> None:
        where = "backoff"
        _check_number(where, "initial_s", self.initial_s, lambda v: v > 0, "a number > 0")
        _check_number(where, "max_s", self.max_s, lambda v: v >= self.initial_s, "a number >= initial_s")
        # An upper bound keeps initial_s * factor ** 60 finite for any attempt number.
        _check_number(where, "factor", self.factor, lambda v: 1 <= v <= 10, "a number from 1 to 10")
        _check_number(where, "jitter", self.jitter, lambda v: 0 <= v <= 1, "a number from 0 to 1")
        if self.max_attempts is not None:
            _check_int(where, "max_attempts", self.max_attempts, 1)
        if self.seed is not None:
            _check_int(where, "seed", self.seed, None)

    def delay(self, failures: int, u: float) -> float:
        """Seconds to wait after `failures` (>= 1) consecutive failures; `u` in [0, 1) draws the jitter."""
        base = min(self.max_s, self.initial_s * self.factor ** min(failures - 1, 60))
        return base * (1.0 - self.jitter * u)


@dataclass(frozen=True)
class SourceConfig:
    """Where one camera's frames come from.

    `uri`: for `file` a path to an existing video; for `rtsp` an `rtsp://` or `rtsps://` URL; for
    `device` a camera index (`"0"`) or a `/dev/videoN` path; for `http` an `http://` or `https://` URL
    of an MJPEG stream (`multipart/x-mixed-replace`, what many IP cameras serve besides RTSP). `fps`
    overrides a file's container rate (required for raw MJPEG, which states none). `live`: files
    replay by default and may be read as if live (paced at their rate, wall-clock times, dropping when
    the consumer lags); RTSP, HTTP and devices are live only. `start` is the clock time of frame 0 in
    replay (the scenario's start, Unix seconds). `queue_size` bounds a live source's queue.
    `stall_after_s`: a live source that delivers no frame for this long is `stalled` (None: a few
    frame intervals, see `stall_threshold`).
    """

    kind: SourceKind
    uri: str | Path
    camera: str
    fps: float | None = None
    live: bool | None = None
    start: float = 0.0
    queue_size: int = 8
    backoff: Backoff = field(default_factory=Backoff)
    stall_after_s: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.camera, str) or not self.camera.strip():
            raise SourceConfigError(f"source: camera: expected a non-empty camera id, got {self.camera!r}")
        where = f"source {self.camera!r}"
        if self.kind not in KINDS:
            raise SourceConfigError(f"{where}: kind: expected one of {', '.join(KINDS)}, got {self.kind!r}")
        _check_uri(where, self.kind, self.uri)
        if self.fps is not None:
            _check_number(where, "fps", self.fps, lambda v: 0 < v <= 1000, "a number > 0 (frames per second)")
        if self.live is not None and not isinstance(self.live, bool):
            raise SourceConfigError(f"{where}: live: expected true or false, got {self.live!r}")
        if self.live is False and self.kind != "file":
            raise SourceConfigError(f"{where}: live: expected true ({self.kind} sources are live only), got False")
        _check_number(where, "start", self.start, lambda v: True, "a number of seconds")
        _check_int(where, "queue_size", self.queue_size, 1)
        if not isinstance(self.backoff, Backoff):
            raise SourceConfigError(f"{where}: backoff: expected a Backoff, got {type(self.backoff).__name__}")
        if self.stall_after_s is not None:
            _check_number(where, "stall_after_s", self.stall_after_s, lambda v: 0 < v <= 3600,
                          "a number of seconds from 0 (exclusive) to 3600")

    @property
    def is_live(self) -> bool:
        return self.kind != "file" if self.live is None else self.live

    @property
    def path(self) -> Path:
        return Path(self.uri)

    @property
    def display_uri(self) -> str:
        """The uri without a password, for messages and health reports that operators read."""
        return _without_password(str(self.uri))


def _check_number(where: str, name: str, value: object, ok: Callable[[float], bool], expected: str) -> None:
    # bool is an int to Python, and `fps: true` in a config is a slip, not 1 fps.
    good = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not good or not ok(float(value)):
        raise SourceConfigError(f"{where}: {name}: expected {expected}, got {value!r}")


def _check_int(where: str, name: str, value: object, minimum: int | None) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or (minimum is not None and value < minimum):
        expected = "an integer" if minimum is None else f"an integer >= {minimum}"
        raise SourceConfigError(f"{where}: {name}: expected {expected}, got {value!r}")


def _check_uri(where: str, kind: str, uri: object) -> None:
    if kind == "file":
        if not isinstance(uri, str | Path) or not str(uri):
            raise SourceConfigError(f"{where}: uri: expected the path of a video file, got {uri!r}")
        if not Path(uri).is_file():
            raise SourceConfigError(f"{where}: uri: expected an existing video file, got {str(uri)!r} (not found)")
        return
    if not isinstance(uri, str):
        raise SourceConfigError(f"{where}: uri: expected a string for a {kind} source, got {uri!r}")
    if kind in ("rtsp", "http"):
        schemes = ("rtsp", "rtsps") if kind == "rtsp" else ("http", "https")
        parts = urlsplit(uri)
        if parts.scheme.lower() not in schemes or not parts.hostname:
            raise SourceConfigError(f"{where}: uri: expected an {schemes[0]}:// or {schemes[1]}:// URL with a host, "
                                    f"got {_without_password(uri)!r}")
    elif not re.fullmatch(r"\d{1,3}|/dev/video\d{1,3}", uri):
        raise SourceConfigError(f"{where}: uri: expected a camera index such as '0' or a /dev/videoN path, got {uri!r}")


def _without_password(uri: str) -> str:
    parts = urlsplit(uri)
    if not parts.password:
        return uri
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


# --------------------------------------------------------------------------- what a source reports


@dataclass(frozen=True, slots=True)
class VideoInfo:
    """A file's frame size, rate (after any override) and frame count (None when the container does
    not say), known before the first frame is read."""

    width: int
    height: int
    fps: float
    frames: int | None


@dataclass(frozen=True, slots=True)
class SourceHealth:
    """One snapshot of a source's health. `frames_read` counts frames taken from the camera or file,
    `frames_dropped` those the queue dropped because the consumer lagged, `reconnects` the times a
    stream was lost after it had delivered frames; `last_frame_t` is the newest frame's `t`.

    Live sources only: `outage_since` is the time (on the source's clock) since which the camera has
    delivered nothing while it is stalled, reconnecting, failed or still connecting: the newest
    frame's time, or when the source started if it never delivered one (None while frames flow);
    `stall_after_s` is the stall threshold in force."""

    camera: str
    state: SourceState
    frames_read: int
    frames_dropped: int
    reconnects: int
    last_error: str | None
    last_frame_t: float | None
    outage_since: float | None = None
    stall_after_s: float | None = None


class Source(Protocol):
    """What the camera node reads: iterate for frames; `health()` at any time; close when done."""

    camera: str

    def __iter__(self) -> Iterator[Frame]: ...
    def health(self) -> SourceHealth: ...
    def close(self) -> None: ...
    def __enter__(self) -> Self: ...
    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None: ...


class Capture(Protocol):
    """The part of `cv2.VideoCapture` a live source uses; tests give fakes of the same shape."""

    def isOpened(self) -> bool: ...  # noqa: N802 - OpenCV's name
    def read(self) -> tuple[bool, np.ndarray | None]: ...
    def release(self) -> None: ...


Opener = Callable[[], Capture]


# --------------------------------------------------------------------------- decoding files


@dataclass(frozen=True)
class _Damage:
    reason: str
    pts: int | None  # presentation time of the first packet not decoded; frames from it on are not yielded


class _FileDecoder:
    """Decodes one file with PyAV and stops at the first damage, after every intact frame before it."""

    def __init__(self, path: Path, fps: float | None) -> None:
        import av  # heavy: imported when a file is opened, not when vision is imported

        self.path = path
        try:
            self._container: av.container.InputContainer = av.open(str(path))
        except (av.FFmpegError, OSError) as err:
            raise SourceError(f"{path}: frame 0: cannot open as a video ({_reason(err)})") from None
        if not self._container.streams.video:
            self._container.close()
            raise SourceError(f"{path}: frame 0: no video stream in the file")
        self._stream: av.stream.Stream = self._container.streams.video[0]
        if self._stream.codec_context is None:  # a stream FFmpeg found no decoder for: a header cut or damaged
            self._container.close()
            raise SourceError(f"{path}: frame 0: the video stream's codec is unknown (a damaged header, "
                              f"or a codec FFmpeg lacks)")
        # FFmpeg conceals decoding errors by default and returns a damaged picture without a word;
        # "explode" turns them into exceptions so that a damaged recording is an error, not bad data.
        self._stream.codec_context.options = {"err_detect": "explode"}
        self.info = self._info(fps)
        self.count = 0
        self._last_pts: int | None = None

    def _info(self, fps: float | None) -> VideoInfo:
        ctx, fmt = self._stream.codec_context, self._container.format.name
        if fps is None and fmt in RATELESS_FORMATS:
            self.close()
            raise SourceError(f"{self.path}: frame 0: a {fmt} file states no frame rate; set fps in the source config")
        rate = fps if fps is not None else self._stream.average_rate
        if not rate or not ctx.width or not ctx.height:
            self.close()
            raise SourceError(f"{self.path}: frame 0: the file states no frame rate or size "
                              f"(rate {rate}, size {ctx.width}x{ctx.height})")
        return VideoInfo(ctx.width, ctx.height, float(rate), self._stream.frames or None)

    def images(self) -> Iterator[np.ndarray]:
        damage = None
        for packet in self._packets():
            if isinstance(packet, _Damage):
                damage = packet
                break
            try:
                decoded = self._stream.decode(packet)
            except Exception as err:  # av.FFmpegError; av is imported lazily
                damage = _Damage(f"cannot decode it ({_reason(err)})", packet.pts)
                break
            yield from (self._image(frame) for frame in decoded)
        if damage is not None:
            yield from (self._image(frame) for frame in self._flushed(damage.pts))
            raise SourceError(f"{self.path}: frame {self.count}: the file is damaged or cut short here: "
                              f"{damage.reason}; the {self.count} frames before it were read")
        declared = self.info.frames
        if declared is not None and self.count < declared:
            raise SourceError(f"{self.path}: frame {self.count}: the file ends after {self.count} of the {declared} "
                              f"frames its header declares (cut short?)")

    def _packets(self) -> Iterator[Any]:
        """The stream's packets, then a `_Damage` in place of the first one that is cut short or unreadable."""
        demux = self._container.demux(self._stream)
        while True:
            try:
                packet = next(demux)
            except StopIteration:
                return
            except Exception as err:  # av.FFmpegError
                yield _Damage(f"cannot read the next packet ({_reason(err)})", None)
                return
            if packet.is_corrupt:  # the demuxer found fewer bytes than the index promised
                yield _Damage(f"the packet at byte {packet.pos} is incomplete or damaged", packet.pts)
                return
            yield packet

    def _flushed(self, stop_pts: int | None) -> list[av.video.frame.VideoFrame]:
        """Frames the decoder still holds (H.264 keeps some back to reorder them) that come before the
        damage: earlier than the damaged packet and with no frame missing in between."""
        try:
            frames = self._stream.codec_context.decode(None)
        except Exception:  # av.FFmpegError: nothing more to get out
            return []
        step = self._pts_step()
        kept, last = [], self._last_pts
        for frame in frames:
            if frame.pts is None or (stop_pts is not None and frame.pts >= stop_pts):
                break
            if last is not None and step is not None and frame.pts - last > 1.5 * step:
                break  # a frame between them is lost: what follows would be shifted on the clock
            kept.append(frame)
            last = frame.pts
        return kept

    def _pts_step(self) -> float | None:
        rate, base = self._stream.average_rate, self._stream.time_base
        return float(1 / (rate * base)) if rate and base else None

    def _image(self, frame: av.video.frame.VideoFrame) -> np.ndarray:
        if (frame.width, frame.height) != (self.info.width, self.info.height):
            raise SourceError(f"{self.path}: frame {self.count}: size {frame.width}x{frame.height} differs from the "
                              f"file's {self.info.width}x{self.info.height}")
        self.count += 1
        self._last_pts = frame.pts
        return frame.to_ndarray(format="bgr24")

    def close(self) -> None:
        self._container.close()


def _reason(err: BaseException) -> str:
    return getattr(err, "strerror", None) or str(err) or type(err).__name__


def probe_video(path: Path, fps: float | None = None) -> VideoInfo:
    """Size, rate and frame count of a video file without decoding it (`fps` overrides the rate)."""
    decoder = _FileDecoder(Path(path), fps)
    decoder.close()
    return decoder.info


class FileSource:
    """A recorded file replayed in the caller's thread on the scenario clock; read once.

    `info` (size, rate, frame count) is known as soon as it is opened: the node and the private video
    writer need them before the first frame. Damage ends the iteration with a `SourceError` that
    names the file and the frame, after every intact frame before it was yielded.
    """

    def __init__(self, config: SourceConfig) -> None:
        if config.kind != "file":
            raise SourceConfigError(f"source {config.camera!r}: kind: a FileSource reads files, got {config.kind!r}")
        self.config = config
        self.camera = config.camera
        self._decoder = _FileDecoder(config.path, config.fps)
        self.info = self._decoder.info
        self._state, self._error, self._last_t = SourceState.CONNECTING, None, None
        self._started = False

    def __iter__(self) -> Iterator[Frame]:
        if self._started:
            raise RuntimeError(f"{self.config.path}: a file source is read once; open a new one to read it again")
        self._started = True
        return self._frames()

    def _frames(self) -> Iterator[Frame]:
        start, fps = self.config.start, self.info.fps
        try:
            for index, image in enumerate(self._decoder.images()):
                t = start + index / fps  # SPEC section 2: the scenario clock, not the container's timestamps
                self._state, self._last_t = SourceState.STREAMING, t
                yield Frame(self.camera, index, t, image)
        except SourceError as err:
            self._state, self._error = SourceState.FAILED, str(err)
            raise
        finally:
            self._decoder.close()
        self._state = SourceState.ENDED

    def health(self) -> SourceHealth:
        return SourceHealth(self.camera, self._state, self._decoder.count, 0, 0, self._error, self._last_t)

    def close(self) -> None:
        self._decoder.close()
        if self._state is not SourceState.FAILED:
            self._state = SourceState.ENDED

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


# --------------------------------------------------------------------------- live sources


class _FileCapture:
    """A file behind the `Capture` shape, for files read as if live; damage raises `SourceError`."""

    def __init__(self, path: Path, fps: float | None) -> None:
        self._decoder = _FileDecoder(path, fps)
        self._images = self._decoder.images()

    def isOpened(self) -> bool:  # noqa: N802 - OpenCV's name
        return True

    def read(self) -> tuple[bool, np.ndarray | None]:
        image = next(self._images, None)
        return image is not None, image

    def release(self) -> None:
        self._decoder.close()


def stall_threshold(config: SourceConfig, fps: float | None, interval_s: float | None) -> float:
    """Seconds without a frame after which a live source is stalled: `config.stall_after_s` if set,
    else `STALL_INTERVALS` frame intervals (from `fps` — the config's or the file's — or else
    `interval_s`, the interval measured between the camera's frames), at least `MIN_STALL_S`;
    `DEFAULT_STALL_S` while neither is known."""
    if config.stall_after_s is not None:
        return float(config.stall_after_s)
    rate = config.fps or fps
    interval = 1.0 / rate if rate else interval_s
    if interval is None:
        return DEFAULT_STALL_S
    return max(MIN_STALL_S, STALL_INTERVALS * interval)


def default_opener(config: SourceConfig) -> Opener:
    """How a live source opens its camera: OpenCV for RTSP, HTTP and devices, PyAV for a file read as if live."""
    if config.kind == "file":
        return lambda: _FileCapture(config.path, config.fps)

    def open_capture() -> Capture:
        import cv2  # heavy: only a live node needs it

        uri = str(config.uri)
        if config.kind in ("rtsp", "http"):
            # The read timeout is what turns a stream that went silent for good into a lost one
            # (reconnect); a shorter silence is a stall, seen by the consumer's side (health()).
            params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, RTSP_TIMEOUT_MS, cv2.CAP_PROP_READ_TIMEOUT_MSEC, RTSP_TIMEOUT_MS]
            return cv2.VideoCapture(uri, cv2.CAP_FFMPEG, params)
        return cv2.VideoCapture(int(uri)) if uri.isdigit() else cv2.VideoCapture(uri, cv2.CAP_V4L2)

    return open_capture


class LiveSource:
    """A camera read by its own thread into a bounded queue that drops the oldest frame when full.

    Frames carry the wall-clock time (`clock`) at which they were read and a running index across
    reconnections. When the stream is lost the reader waits (`Backoff`) and reopens it; a file read
    as if live is paced at its rate and ends at its end. A stream that stays open but sends nothing
    for the stall threshold is reported `stalled` by `health()`, which looks at the clock when asked
    (the reader itself may be blocked in the capture's read). `clock`, `sleep` and `jitter` (draws in
    [0, 1)) can be injected so that tests run fast and repeatably; the default `sleep` wakes up at
    once on `close()`.
    """

    def __init__(self, config: SourceConfig, opener: Opener | None = None, *, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], object] | None = None, jitter: Callable[[], float] | None = None) -> None:
        self.config = config
        self.camera = config.camera
        self.info = probe_video(config.path, config.fps) if config.kind == "file" else None
        self._open = opener or default_opener(config)
        self._clock = clock
        self._stop = threading.Event()
        self._sleep = sleep or self._stop.wait
        self._jitter = jitter or random.Random(config.backoff.seed).random
        self._cond = threading.Condition()
        self._queue: deque[Frame] = deque()
        self._thread: threading.Thread | None = None
        self._state, self._error, self._last_t = SourceState.CONNECTING, None, None
        self._read = self._dropped = self._reconnects = 0
        self._started_t: float | None = None
        self._interval: float | None = None  # a running mean of the time between frames

    # -- the consumer's side

    def start(self) -> Self:
        if self._thread is None:
            self._started_t = self._clock()
            self._thread = threading.Thread(target=self._run, name=f"source-{self.camera}", daemon=True)
            self._thread.start()
        return self

    def read(self, timeout: float | None = None) -> Frame | None:
        """The oldest queued frame; None when the source has ended or nothing came within `timeout`.
        Raises `SourceError` once the queue is empty and the source has failed."""
        if self._thread is None:
            raise RuntimeError(f"source {self.camera!r}: call start() (or use `with`) before reading")
        with self._cond:
            self._cond.wait_for(lambda: self._queue or self._done(), timeout)
            if self._queue:
                return self._queue.popleft()
            if self._state is SourceState.FAILED:
                raise SourceError(f"source {self.camera!r} ({self.config.display_uri}): {self._error}")
            return None

    def __iter__(self) -> Iterator[Frame]:
        while (frame := self.read()) is not None:
            yield frame

    def health(self) -> SourceHealth:
        now = self._clock()
        with self._cond:
            threshold = stall_threshold(self.config, self.info.fps if self.info else None, self._interval)
            state, since = self._state, None
            if state is SourceState.STREAMING and self._last_t is not None and now - self._last_t > threshold:
                state = SourceState.STALLED
            if state in (SourceState.STALLED, SourceState.RECONNECTING, SourceState.FAILED, SourceState.CONNECTING):
                since = self._last_t if self._last_t is not None else self._started_t
            return SourceHealth(self.camera, state, self._read, self._dropped, self._reconnects,
                                self._error, self._last_t, since, threshold)

    def close(self, timeout: float = 5.0) -> None:
        self._stop.set()
        with self._cond:
            if not self._done():
                self._state = SourceState.ENDED
            self._cond.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _done(self) -> bool:
        return self._state in (SourceState.ENDED, SourceState.FAILED)

    # -- the reader thread

    def _run(self) -> None:
        try:
            self._reconnect_loop()
        except SourceError as err:  # a file read as if live is damaged: its message names file and frame
            self._finish(SourceState.FAILED, str(err))
        except Exception as err:  # a reader thread that dies silently would look like a quiet camera
            self._finish(SourceState.FAILED, f"reader stopped: {_reason(err)}")

    def _reconnect_loop(self) -> None:
        failures = 0  # consecutive attempts that gave no frame
        while not self._stop.is_set():
            got = self._session()
            if got is None:  # the file ended, or close() was called
                self._finish(SourceState.ENDED, None)
                return
            failures = 0 if got else failures + 1
            if self.config.backoff.max_attempts is not None and failures >= self.config.backoff.max_attempts:
                self._finish(SourceState.FAILED, f"gave up after {failures} attempts without a frame: {self._error}")
                return
            self._sleep(self.config.backoff.delay(max(failures, 1), self._jitter()))
        self._finish(SourceState.ENDED, None)

    def _session(self) -> int | None:
        """Opens the camera and reads until the stream is lost: the frames read, or None when the source
        is over (end of a file read as if live, or closed)."""
        try:
            capture = self._open()
        except SourceError:
            raise  # a damaged file does not heal by reopening it
        except Exception as err:
            self._set_error(f"cannot open {self.config.display_uri}: {_reason(err)}")
            return 0
        try:
            if not capture.isOpened():
                self._set_error(f"cannot open {self.config.display_uri}")
                return 0
            return self._stream(capture)
        finally:
            capture.release()

    def _stream(self, capture: Capture) -> int | None:
        got, paced_from = 0, self._clock()
        while not self._stop.is_set():
            if self.info is not None:  # a file read as if live: one frame every 1/fps seconds
                wait = paced_from + got / self.info.fps - self._clock()
                if wait > 0:
                    self._sleep(wait)
            image = self._read_one(capture, got)
            if image is None:
                return None if self.config.kind == "file" else got
            self._push(image)
            got += 1
        return None

    def _read_one(self, capture: Capture, got: int) -> np.ndarray | None:
        """The next image, or None when the stream is lost (recorded as the last error and, after
        frames, as a reconnection)."""
        try:
            ok, image = capture.read()
        except SourceError:
            raise  # a damaged file does not heal by reopening it
        except Exception as err:
            ok, image, error = False, None, f"read failed: {_reason(err)}"
        else:
            error = f"the stream stopped after {got} frames" if got else "opened, but no frame arrived"
        if ok and image is not None:
            return image
        if self.config.kind != "file":
            with self._cond:
                self._error = error
                if got:
                    self._reconnects += 1
                    self._state = SourceState.RECONNECTING
        return None

    def _push(self, image: np.ndarray) -> None:
        t = self._clock()
        with self._cond:
            if self._done():
                return  # closed while this frame was being read
            frame = Frame(self.camera, self._read, t, image)
            if len(self._queue) >= self.config.queue_size:
                self._queue.popleft()  # live: the newest frame matters more than a late old one
                self._dropped += 1
            self._queue.append(frame)
            self._read += 1
            if self._state is SourceState.STREAMING and self._last_t is not None:
                self._learn_interval(t - self._last_t)
            self._state, self._last_t = SourceState.STREAMING, t
            self._cond.notify_all()

    def _learn_interval(self, gap: float) -> None:
        """The camera's frame interval, for the default stall threshold: a running mean that a gap
        longer than the threshold (a stall itself) does not move."""
        threshold = stall_threshold(self.config, self.info.fps if self.info else None, self._interval)
        if 0 < gap <= threshold:
            self._interval = gap if self._interval is None else 0.9 * self._interval + 0.1 * gap

    def _set_error(self, message: str) -> None:
        with self._cond:
            self._error = message

    def _finish(self, state: SourceState, error: str | None) -> None:
        with self._cond:
            if not self._done():
                self._state = state
            if error is not None:
                self._error = error
            self._cond.notify_all()


def open_source(config: SourceConfig, opener: Opener | None = None, *, clock: Callable[[], float] = time.time,
                sleep: Callable[[float], object] | None = None) -> FileSource | LiveSource:
    """The source for `config`: a `FileSource` for a replayed file, else a `LiveSource` (not started
    yet: use it in a `with` block or call `start()`). `opener`, `clock` and `sleep` are for live sources."""
    if not config.is_live:
        return FileSource(config)
    return LiveSource(config, opener, clock=clock, sleep=sleep)
