"""`walkout blur INPUT --out OUTPUT`: a copy of an image or a video with every face anonymized (SPEC section 8).

The same `Redactor` as a camera node's, with the face model only (a file comes without person
tracks), and the same sinks: the output is written from `RedactedFrame`s, so nothing unblurred can
reach it. It is written next to OUTPUT under a temporary name and renamed when complete; a failure
part way removes it, so OUTPUT is either a whole blurred copy or absent. A still image is looked at
in full resolution (no later frame to wait for, no deadline); a video runs as on a camera, without
the time budget (a file has no deadline, and failing closed on time would only spoil the copy), and
upright, as a player shows it (a phone's video is stored sideways with a note to turn it, and the
face model misses many faces lying on their side).
Mistakes (missing, unreadable or unsupported input, an output of the wrong kind) are `BlurError`s
that name the file.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from vision.privacy import PrivacyConfig, Redactor
from vision.sinks import PrivateRecorder, write_image
from vision.sources import FileSource, SourceConfig, SourceError
from vision.types import Frame, Tracks

IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png")
VIDEO_SUFFIXES: tuple[str, ...] = (".mp4", ".avi", ".mkv", ".mov")
CAMERA = "file"  # the camera id the frames of a file carry


class BlurError(Exception):
    """An input or output that `walkout blur` cannot handle; the message names the file."""


@dataclass(frozen=True)
class BlurResult:
    input: str
    output: str
    kind: str  # "image" or "video"
    frames: int
    regions: int  # blurred regions, summed over frames
    failed_closed: int  # frames blurred whole because face detection failed

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


RedactorFactory = Callable[[PrivacyConfig], Redactor]


def blur_file(source: Path, out: Path, config: PrivacyConfig | None = None,
              make_redactor: RedactorFactory = Redactor.from_manifest) -> BlurResult:
    """Write `out`, a copy of the image or video `source` with its faces blurred."""
    source, out = Path(source), Path(out)
    kind = _kind(source, out)
    config = replace(config or PrivacyConfig(), budget_ms=None)
    partial = out.with_name(f".{out.stem}.partial{out.suffix}")  # the suffix tells the encoder the format
    try:
        if kind == "image":
            result = _blur_image(source, partial, lambda: make_redactor(replace(config, full_max_side=None,
                                                                                 lookahead=0)))
        else:
            result = _blur_video(source, partial, lambda: make_redactor(config))
        partial.replace(out)
    except BaseException:
        with contextlib.suppress(OSError):
            partial.unlink()
        raise
    return replace(result, output=str(out))


def _kind(source: Path, out: Path) -> str:
    if not source.exists():
        raise BlurError(f"{source}: no such file")
    if source.is_dir():
        raise BlurError(f"{source}: is a directory, expected an image or a video")
    if source.stat().st_size == 0:
        raise BlurError(f"{source}: the file is empty (0 bytes), expected an image or a video")
    suffix = source.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        kind, allowed = "image", IMAGE_SUFFIXES
    elif suffix in VIDEO_SUFFIXES:
        kind, allowed = "video", VIDEO_SUFFIXES
    else:
        raise BlurError(f"{source}: unsupported file type {source.suffix or '(none)'}; expected an image "
                        f"({', '.join(IMAGE_SUFFIXES)}) or a video ({', '.join(VIDEO_SUFFIXES)})")
    if out.suffix.lower() not in allowed:
        article = "an" if kind == "image" else "a"
        raise BlurError(f"{out}: the copy of {kind} {source.name} must be {article} {kind} too "
                        f"({', '.join(allowed)}), got {out.suffix or 'no suffix'}")
    if out.exists() and out.resolve() == source.resolve():
        raise BlurError(f"{out}: is the input itself; write the blurred copy to another file")
    if not out.parent.is_dir():
        raise BlurError(f"{out}: the folder {out.parent} does not exist")
    return kind


def _blur_image(source: Path, out: Path, make_redactor: Callable[[], Redactor]) -> BlurResult:
    try:
        image = cv2.imread(str(source), cv2.IMREAD_COLOR)
    except cv2.error as exc:  # e.g. more pixels than OpenCV allows: a decompression bomb
        raise BlurError(f"{source}: cannot decode the image: {str(exc).strip().splitlines()[-1]}") from exc
    if image is None:
        raise BlurError(f"{source}: cannot decode the image (damaged, or not a {source.suffix} file)")
    redactor = make_redactor()  # after the input is known to be good: a typo costs no model loading
    write_image(redactor.redact(Frame(CAMERA, 0, 0.0, image)), out)
    return _result(source, out, "image", redactor)


def _blur_video(source: Path, out: Path, make_redactor: Callable[[], Redactor]) -> BlurResult:
    try:
        video = FileSource(SourceConfig(kind="file", uri=source, camera=CAMERA))
    except SourceError as exc:
        raise BlurError(str(exc)) from exc
    with video:
        redactor = make_redactor()  # after the input is known to be a video: a typo costs no model loading
        try:
            frames = redact_video(video, out, redactor)
        except SourceError as exc:  # damaged or cut short: no half copy is left behind
            raise BlurError(str(exc)) from exc
    if frames == 0:
        raise BlurError(f"{source}: a video without a single decodable frame")
    return _result(source, out, "video", redactor)


def redact_video(video: FileSource, out: Path, redactor: Redactor, tracks: Sequence[Tracks | None] = ()) -> int:
    """Every frame of `video`, upright, through `redactor` into the private video `out`, as a camera node
    writes it (`tracks[i]`: frame i's person tracks, if any); returns the frames written."""
    turns = upright_turns(video.config.path)
    width, height = video.info.width, video.info.height
    with PrivateRecorder(out, (height, width) if turns % 2 else (width, height), video.info.fps) as recorder:
        for frame in video:
            if turns:
                frame = Frame(frame.camera, frame.index, frame.t, np.ascontiguousarray(np.rot90(frame.image, turns)))
            for redacted in redactor.push(frame, tracks[frame.index] if frame.index < len(tracks) else None):
                recorder.write(redacted)
        for redacted in redactor.flush():
            recorder.write(redacted)
        return recorder.frames


def upright_turns(path: Path) -> int:
    """Quarter turns counter-clockwise (`np.rot90`'s k) that show the video's frames as a player does,
    from the display matrix of its first frame: the decoder gives them as stored."""
    import av  # heavy: imported when a video is read

    try:
        with av.open(str(path)) as container:
            first = next(container.decode(video=0), None)
    except av.FFmpegError as exc:
        raise SourceError(f"{path}: frame 0: cannot decode it ({exc})") from exc
    return 0 if first is None else round(first.rotation / 90) % 4


def _result(source: Path, out: Path, kind: str, redactor: Redactor) -> BlurResult:
    stats = redactor.stats
    return BlurResult(str(source), str(out), kind, stats.frames, stats.regions, stats.failed_closed)
