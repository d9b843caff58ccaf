"""Every way a picture leaves a camera node: the private video, snapshots, image files, review clips.

Each sink takes a `RedactedFrame` and nothing else, checked at run time as well as by the type
checker: a raw `Frame` or a bare array is a `TypeError` that names what was passed. Code that
wants to let a picture out goes through here; tests/vision/test_privacy.py fails when another
module starts writing images or video on its own.

Review clips are written late (a shelf event is decided seconds after the product moved), so the
node keeps the recent redacted pictures as small JPEGs: `clip_frame` makes a `ClipFrame` of a
`RedactedFrame` (the only way to make one), and `ClipWriter` writes only `ClipFrame`s, as WebM
(VP8, which Chromium plays natively; no proprietary codec).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import cv2
import numpy as np

from vision.privacy import RedactedFrame
from vision.video import VideoWriter

IMAGE_FORMATS = {".jpg": ".jpg", ".jpeg": ".jpg", ".png": ".png"}


def require_redacted(picture: object, sink: str) -> RedactedFrame:
    """`picture` if it is a RedactedFrame, else a TypeError naming the sink and what it got."""
    if not isinstance(picture, RedactedFrame):
        raise TypeError(f"{sink} takes only a RedactedFrame (made by vision.privacy.Redactor), got "
                        f"{type(picture).__name__}: raw pictures never leave the camera node")
    return picture


# A node writes every frame of its camera, so its encoder's motion search is the quickest x264 has (diamond,
# one sub-pixel refinement): on a sample aisle camera (720p) a quarter less time than veryfast's own, for
# 9 % more bytes and 0.45 dB less PSNR.
PRIVATE_X264 = "me=dia:subme=1"


class PrivateRecorder:
    """A camera's private video (SPEC section 5: `private/<camera>.mp4`): H.264 in MP4 with the index
    first, the input's size and rate, one frame written for each frame read."""

    def __init__(self, path: Path, size: tuple[int, int], fps: int | float | Fraction, crf: int = 26) -> None:
        self.path = Path(path)
        # The index first where the container has one to move (MP4, QuickTime): a browser plays it at once.
        faststart = self.path.suffix.lower() in (".mp4", ".mov", ".m4v")
        self._writer = VideoWriter(self.path, size, fps, crf=crf, faststart=faststart, x264_params=PRIVATE_X264)

    @property
    def frames(self) -> int:
        return self._writer.frames

    def write(self, frame: RedactedFrame) -> None:
        self._writer.write(require_redacted(frame, "PrivateRecorder.write").image)

    def close(self) -> None:
        self._writer.close()

    def __enter__(self) -> PrivateRecorder:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def snapshot_jpeg(frame: RedactedFrame, quality: int = 85,
                  draw: Callable[[np.ndarray], np.ndarray] | None = None) -> bytes:
    """JPEG bytes of a redacted frame, for the live view. `draw` (vision.overlay) gets the redacted
    picture, read-only, and returns a copy with marks drawn on it: only what the redactor let out."""
    image = require_redacted(frame, "snapshot_jpeg").image
    if not 1 <= quality <= 100:
        raise ValueError(f"snapshot_jpeg: quality must be 1 to 100, got {quality}")
    if draw is not None:
        drawn = draw(image)
        if not isinstance(drawn, np.ndarray) or drawn.shape != image.shape or drawn.dtype != np.uint8:
            raise ValueError(f"snapshot_jpeg: draw must return a uint8 picture of shape {image.shape}")
        image = drawn
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError(f"snapshot_jpeg: cannot encode frame {frame.camera}#{frame.index}")
    return data.tobytes()


def write_image(frame: RedactedFrame, path: Path) -> None:
    """A redacted frame as a JPEG or PNG file (by the suffix of `path`)."""
    image = require_redacted(frame, "write_image").image
    path = Path(path)
    suffix = IMAGE_FORMATS.get(path.suffix.lower())
    if suffix is None:
        raise ValueError(f"{path}: cannot write an image of type {path.suffix or '(none)'}; "
                         f"expected one of {', '.join(IMAGE_FORMATS)}")
    ok, data = cv2.imencode(suffix, image)
    if not ok:
        raise ValueError(f"{path}: cannot encode the image")
    path.write_bytes(data.tobytes())


# The only key to ClipFrame's constructor: clip_frame below, which takes a RedactedFrame.
_CLIP_KEY = object()


class ClipFrame:
    """One redacted picture kept for a review clip: JPEG bytes, scaled down, with its camera, frame
    index and time. Made only by `clip_frame` (of a RedactedFrame); `ClipWriter` takes nothing else."""

    __slots__ = ("camera", "index", "t", "jpeg", "size")
    camera: str
    index: int
    t: float
    jpeg: bytes
    size: tuple[int, int]  # (width, height)

    def __init__(self, camera: str, index: int, t: float, jpeg: bytes, size: tuple[int, int], *,
                 key: object = None) -> None:
        if key is not _CLIP_KEY:
            raise TypeError("ClipFrame is made only by vision.sinks.clip_frame, of a RedactedFrame")
        for name, value in (("camera", camera), ("index", index), ("t", t), ("jpeg", jpeg), ("size", size)):
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"ClipFrame is immutable: cannot set {name!r}")

    def __reduce__(self) -> tuple:
        raise TypeError("a ClipFrame is not pickled or copied (a forged pickle could carry any picture)")

    def __repr__(self) -> str:
        w, h = self.size
        return f"ClipFrame({self.camera}#{self.index}, t={self.t:.3f}, {w}x{h}, {len(self.jpeg)} B)"


def clip_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """(width, height) scaled so the longer side is at most `max_side`, both even (VP8 takes 4:2:0)."""
    scale = min(1.0, max_side / max(width, height))
    return max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)


def clip_frame(frame: RedactedFrame, max_side: int = 640, quality: int = 80) -> ClipFrame:
    """A redacted frame as a small JPEG for the node's clip buffer (a 720p picture at 640 px: ~40 kB)."""
    image = require_redacted(frame, "clip_frame").image
    if not 16 <= max_side <= 4096 or not 1 <= quality <= 100:
        raise ValueError(f"clip_frame: max_side must be 16 to 4096 and quality 1 to 100, got {max_side}, {quality}")
    size = clip_size(image.shape[1], image.shape[0], max_side)
    if size != (image.shape[1], image.shape[0]):
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError(f"clip_frame: cannot encode frame {frame.camera}#{frame.index}")
    return ClipFrame(frame.camera, frame.index, frame.t, data.tobytes(), size, key=_CLIP_KEY)


class ClipWriter:
    """A review clip: WebM with VP8, each frame stamped with its own time (milliseconds since the
    clip's first frame), so a clip kept at a reduced rate plays at the speed things happened.

    Deterministic: one encoder thread and the muxer's bit-exact mode (no random segment id, no
    date), so the same frames give the same bytes. `metadata` goes into the file's tags."""

    def __init__(self, path: Path, size: tuple[int, int], *, bitrate: int = 600_000,
                 metadata: Mapping[str, str] | None = None) -> None:
        import av  # heavy: imported when a clip is written, not when walkout starts

        self.path = Path(path)
        self.size = size
        self._container = av.open(str(self.path), mode="w", format="webm", options={"fflags": "+bitexact"})
        self._container.metadata.update(dict(metadata or {}))
        self._stream = self._container.add_stream("libvpx", rate=1000)
        self._stream.width, self._stream.height = size
        self._stream.pix_fmt = "yuv420p"
        self._stream.time_base = Fraction(1, 1000)
        self._stream.options = {"threads": "1", "deadline": "good", "cpu-used": "5", "b": str(bitrate),
                                "auto-alt-ref": "0", "lag-in-frames": "0"}
        self._frame_type = av.VideoFrame
        self._t0: float | None = None
        self._last_pts = -1
        self.frames = 0

    def write(self, frame: ClipFrame) -> None:
        if not isinstance(frame, ClipFrame):
            raise TypeError(f"ClipWriter.write takes only a ClipFrame (made by vision.sinks.clip_frame of a "
                            f"RedactedFrame), got {type(frame).__name__}: raw pictures never leave the camera node")
        if frame.size != self.size:
            raise ValueError(f"{self.path}: expected a {self.size[0]}x{self.size[1]} clip frame, got {frame.size}")
        image = cv2.imdecode(np.frombuffer(frame.jpeg, np.uint8), cv2.IMREAD_COLOR)
        if self._t0 is None:
            self._t0 = frame.t
        pts = max(round((frame.t - self._t0) * 1000), self._last_pts + 1)  # strictly increasing
        picture = self._frame_type.from_ndarray(image, format="bgr24")
        picture.pts, picture.time_base = pts, Fraction(1, 1000)
        for packet in self._stream.encode(picture):
            self._container.mux(packet)
        self._last_pts = pts
        self.frames += 1

    def close(self) -> None:
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()

    def __enter__(self) -> ClipWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
