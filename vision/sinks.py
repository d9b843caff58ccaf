"""Every way a picture leaves a camera node: the private video, snapshots, image files.

Each sink takes a `RedactedFrame` and nothing else, checked at run time as well as by the type
checker: a raw `Frame` or a bare array is a `TypeError` that names what was passed. Code that
wants to let a picture out goes through here; tests/vision/test_privacy.py fails when another
module starts writing images or video on its own.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from types import TracebackType

import cv2

from vision.privacy import RedactedFrame
from vision.video import VideoWriter

IMAGE_FORMATS = {".jpg": ".jpg", ".jpeg": ".jpg", ".png": ".png"}


def require_redacted(picture: object, sink: str) -> RedactedFrame:
    """`picture` if it is a RedactedFrame, else a TypeError naming the sink and what it got."""
    if not isinstance(picture, RedactedFrame):
        raise TypeError(f"{sink} takes only a RedactedFrame (made by vision.privacy.Redactor), got "
                        f"{type(picture).__name__}: raw pictures never leave the camera node")
    return picture


class PrivateRecorder:
    """A camera's private video (SPEC section 5: `private/<camera>.mp4`): H.264 in MP4 with the index
    first, the input's size and rate, one frame written for each frame read."""

    def __init__(self, path: Path, size: tuple[int, int], fps: int | float | Fraction, crf: int = 26) -> None:
        self.path = Path(path)
        # The index first where the container has one to move (MP4, QuickTime): a browser plays it at once.
        faststart = self.path.suffix.lower() in (".mp4", ".mov", ".m4v")
        self._writer = VideoWriter(self.path, size, fps, crf=crf, faststart=faststart)

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


def snapshot_jpeg(frame: RedactedFrame, quality: int = 85) -> bytes:
    """JPEG bytes of a redacted frame, for the live view and the review queue's clips."""
    image = require_redacted(frame, "snapshot_jpeg").image
    if not 1 <= quality <= 100:
        raise ValueError(f"snapshot_jpeg: quality must be 1 to 100, got {quality}")
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
