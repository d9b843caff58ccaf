"""`walkout codes FILE...`: every barcode and QR code in image and video files (SPEC section 8).

An image gives the codes read in it. A video gives each distinct code (format and text) once,
with the first frame where it was read; `stride` reads every n-th frame only, and `min_reads`
keeps a code only when it was read in that many frames (one-frame misreads of a moving label
go). A file that is missing or is neither an image nor a video is a `FileError` naming it; the
command reports it and goes on with the other files. A video damaged or cut short part way is a
`FileError` too, naming the first frame that could not be read (as `walkout blur` names it).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vision.codes import Code, CodeReader

FRAME_RATE = 25.0  # any rate: a video's frames are read in order, never on a clock
MAX_DISTINCT = 10_000  # distinct codes kept per video: a hostile video cannot grow memory without bound
TABLE_TEXT = 60  # characters of text shown in the table; --json has it all


class FileError(Exception):
    """A file that cannot be read as an image or a video; the message names it."""


@dataclass(frozen=True)
class FileCodes:
    file: str
    codes: tuple[Code, ...]
    frames: tuple[int, ...] | None = None  # for a video: the first frame where each code was read

    def as_dict(self) -> dict[str, object]:
        codes = [c.as_dict() for c in self.codes]
        for entry, frame in zip(codes, self.frames or (), strict=False):
            entry["frame"] = frame
        return {"file": self.file, "codes": codes}


def read_file(path: Path, reader: CodeReader, stride: int = 1, min_reads: int = 1) -> FileCodes:
    if stride < 1 or min_reads < 1:
        raise ValueError(f"stride and min_reads must be at least 1, got {stride}, {min_reads}")
    if not path.exists():
        raise FileError(f"{path}: no such file")
    if path.is_dir():
        raise FileError(f"{path}: is a directory, expected an image or a video")
    if path.stat().st_size == 0:
        raise FileError(f"{path}: neither an image nor a video (the file is empty: 0 bytes)")
    image = _load_image(path)
    if image is not None:
        return FileCodes(str(path), reader.read(image))
    return _read_video(path, reader, stride, min_reads)


def _load_image(path: Path) -> np.ndarray | None:
    import cv2

    try:
        return cv2.imread(str(path), cv2.IMREAD_COLOR)  # None when it is not an image OpenCV decodes
    except cv2.error as exc:  # e.g. more pixels than OpenCV's limit: a decompression bomb
        raise FileError(f"{path}: cannot decode the image: {str(exc).strip().splitlines()[-1]}") from exc


def _read_video(path: Path, reader: CodeReader, stride: int, min_reads: int) -> FileCodes:
    first: dict[tuple[str, str], tuple[Code, int]] = {}
    reads: dict[tuple[str, str], int] = {}
    frames = 0
    for index, frame in _video_frames(path):
        frames += 1
        if index % stride:
            continue
        for code in reader.read(frame):
            if code.key not in first and len(first) >= MAX_DISTINCT:
                continue
            first.setdefault(code.key, (code, index))
            reads[code.key] = reads.get(code.key, 0) + 1
    if not frames:
        raise FileError(f"{path}: a video without a single decodable frame")
    kept = sorted((v for k, v in first.items() if reads[k] >= min_reads), key=lambda v: v[1])
    return FileCodes(str(path), tuple(c for c, _ in kept), tuple(i for _, i in kept))


def _video_frames(path: Path) -> Iterator[tuple[int, np.ndarray]]:
    """The frames of a video, through the camera nodes' own file source: damage is found the same
    way, and named the same way as `walkout blur` and `walkout replay` name it (the first frame not
    read, counted from 0 as the JSON's "frame" is)."""
    from vision.sources import FileSource, SourceConfig, SourceError

    try:
        # A rate only matters on a clock; giving one lets a raw stream that states none be read too.
        video = FileSource(SourceConfig(kind="file", uri=path, camera="file", fps=FRAME_RATE))
    except SourceError as exc:
        raise FileError(f"{path}: neither an image nor a video that can be decoded ({_detail(exc, path)})") from exc
    frames = 0
    try:
        with video:
            for frame in video:
                frames += 1
                yield frame.index, frame.image
    except SourceError as exc:
        if frames == 0:  # FFmpeg opens anything whose name looks like a picture; decoding tells the truth
            raise FileError(f"{path}: neither an image nor a video that can be decoded "
                            f"({_detail(exc, path)})") from exc
        raise FileError(str(exc)) from exc


def _detail(exc: Exception, path: Path) -> str:
    """A source error's message without the file name the FileError already starts with."""
    return str(exc).removeprefix(f"{path}: ")


def printable(text: str, limit: int = TABLE_TEXT) -> str:
    """Text safe for a terminal: control characters escaped (a QR may carry ANSI escapes), long text cut."""
    safe = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)
    return safe if len(safe) <= limit else safe[: limit - 1] + "…"


def format_table(results: Sequence[FileCodes]) -> str:
    rows = [("file", "frame", "format", "text", "box")]
    for result in results:
        if not result.codes:
            rows.append((printable(result.file, 200), "", "", "(no code)", ""))
        frames = result.frames or ("",) * len(result.codes)
        for code, frame in zip(result.codes, frames, strict=True):
            rows.append((printable(result.file, 200), str(frame), code.format, printable(code.text),
                         " ".join(str(v) for v in code.box)))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows)
