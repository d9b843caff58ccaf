"""`walkout bench codes`: each code reader alone and the combined one, on real photos of codes.

The data is `../shared/data/barcodes` (zxing-cpp's test samples): folders named `<format>-<n>`
where every image `NAME.png|jpg` has its exact expected text in `NAME.txt` (`NAME.bin` for
binary payloads, compared as Latin-1, byte for byte), and `falsepositives-<n>` with no code at all.
What the figures mean:

- read: an image counts as read when one of its codes has the folder's format and exactly the
  expected text (UPC-A: the 12 digits; the data writes them with EAN-13's leading 0).
- other: codes read in a format folder that are not the expected one. Either a misread or a
  second code in the picture (a few hold two); the data lists one code an image, so these are
  shown, not called false positives.
- false positives: every code read on `falsepositives-*`, where there is none to read.
- ms per image: BGR image in, codes out (grayscale conversion included, file decoding not), the
  median over repeats of each image's time, averaged over all images. The readers take turns
  image by image, in an order that rotates, so a busy machine slows them alike; the time ratio
  is against the baseline, the single backend that reads the most (the faster on a tie).

The combined reader's target: at least the baseline's reads, at most 1.2x its time, no false positive.
A fourth row, `combined+empty`, is the combined reader that also asks pyzbar about every image
where nothing was read (`fallback_on_empty`): what those extra reads would cost.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from vision.codes import CodeReader, Codes, CodesUnavailable, CombinedReader, PyzbarReader, ZxingReader

FOLDER_FORMATS = {"ean13": "EAN13", "ean8": "EAN8", "upca": "UPCA", "upce": "UPCE", "code128": "Code128",
                  "code39": "Code39", "code93": "Code93", "codabar": "Codabar", "itf": "ITF", "qrcode": "QRCode"}
FALSE_POSITIVES = "falsepositives"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
TIME_TARGET = 1.2
EMPTY_TOO = "combined+empty"  # the combined reader with fallback_on_empty=True


class BenchError(Exception):
    """A benchmark that cannot run as asked (no data), said in one line."""


@dataclass(frozen=True)
class Sample:
    path: Path
    folder: str
    format: str | None  # None on a false-positive folder
    expected: str | None


@dataclass(frozen=True)
class FolderRow:
    reader: str
    folder: str
    format: str | None
    images: int
    read: int
    other: int  # on a false-positive folder: the false positives
    ms_per_image: float


@dataclass(frozen=True)
class ReaderRow:
    reader: str
    images: int  # images with a code to read
    read: int
    other: int
    false_positives: int  # codes read where there is none
    ms_per_image: float  # over every image, false-positive folders included
    time_ratio: float  # against the baseline


@dataclass
class BenchResult:
    data: str
    repeats: int
    baseline: str
    folders: list[FolderRow] = field(default_factory=list)
    readers: list[ReaderRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def target_met(self) -> bool | None:
        """Combined: at least the baseline's reads, at most 1.2x its time, no false positive (None: not run)."""
        rows = {r.reader: r for r in self.readers}
        if "combined" not in rows or self.baseline not in rows:
            return None
        combined, base = rows["combined"], rows[self.baseline]
        return (combined.read >= base.read and combined.time_ratio <= TIME_TARGET
                and combined.false_positives == 0)

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "target_met": self.target_met()}


# ---------------------------------------------------------------------------------------------- data


def load_samples(data_dir: Path, limit: int | None = None) -> list[Sample]:
    """Every image of the known folders with its expected text; `limit` images a folder at most."""
    if limit is not None and limit < 1:
        raise BenchError(f"--limit must be at least 1, got {limit}")
    if not data_dir.is_dir():
        raise BenchError(f"{data_dir}: no such directory (the barcodes folder of ../shared/data)")
    samples: list[Sample] = []
    for folder in sorted(p for p in data_dir.iterdir() if p.is_dir()):
        prefix = folder.name.rsplit("-", 1)[0]
        if prefix != FALSE_POSITIVES and prefix not in FOLDER_FORMATS:
            continue
        fmt = FOLDER_FORMATS.get(prefix)
        images = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        chosen = [s for s in (_sample(p, folder.name, fmt) for p in images) if s is not None]
        samples.extend(chosen[:limit])
    if not samples:
        raise BenchError(f"{data_dir}: no images in folders named <format>-<n> or falsepositives-<n>")
    return samples


def _sample(path: Path, folder: str, fmt: str | None) -> Sample | None:
    if fmt is None:
        return Sample(path, folder, None, None)
    text, binary = path.with_suffix(".txt"), path.with_suffix(".bin")
    if text.is_file():
        expected = text.read_bytes().decode("utf-8", errors="surrogateescape")  # exact: no newline translation
    elif binary.is_file():
        expected = binary.read_bytes().decode("latin-1")
    else:
        return None  # nothing to compare with: not counted rather than guessed
    if fmt == "UPCA" and len(expected) == 13 and expected.startswith("0"):
        expected = expected[1:]
    return Sample(path, folder, fmt, expected)


def load_image(path: Path) -> np.ndarray:
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise BenchError(f"{path}: cannot decode the image")
    return image


# ---------------------------------------------------------------------------------------------- running


def open_readers(log: Callable[[str], None] = lambda _: None) -> dict[str, CodeReader]:
    readers: dict[str, CodeReader] = {"zxing-cpp": ZxingReader()}
    try:
        readers["pyzbar"] = PyzbarReader()
    except CodesUnavailable as exc:
        log(f"pyzbar left out: {exc}")
    combined = CombinedReader()
    if combined.degraded:
        log(f"combined reader degraded: {combined.degraded}")
    readers["combined"] = combined
    if not combined.degraded:  # the trade-off of asking pyzbar about every empty image, shown, not targeted
        readers[EMPTY_TOO] = CombinedReader(fallback_on_empty=True)
    return readers


def time_readers(images: Sequence[np.ndarray], readers: Mapping[str, CodeReader],
                 repeats: int) -> dict[str, list[tuple[Codes, float]]]:
    """Each reader's codes and median seconds for every image, readers taking turns in a rotating order."""
    if repeats < 1:
        raise BenchError(f"--repeats must be at least 1, got {repeats}")
    names = list(readers)
    for name in names:  # the first read loads libraries and warms caches
        readers[name].read(images[0])
    times: dict[str, list[list[float]]] = {n: [[] for _ in images] for n in names}
    codes: dict[str, list[Codes]] = {n: [()] * len(images) for n in names}
    for repeat in range(repeats):
        for i, image in enumerate(images):
            shift = (i + repeat) % len(names)
            for name in names[shift:] + names[:shift]:
                start = time.perf_counter()
                codes[name][i] = readers[name].read(image)
                times[name][i].append(time.perf_counter() - start)
    return {n: [(codes[n][i], statistics.median(times[n][i])) for i in range(len(images))] for n in names}


def summarise(samples: Sequence[Sample], results: Mapping[str, list[tuple[Codes, float]]], data: str,
              repeats: int) -> BenchResult:
    folders = sorted({s.folder for s in samples})
    rows: list[FolderRow] = []
    for name, per_image in results.items():
        for folder in folders:
            idx = [i for i, s in enumerate(samples) if s.folder == folder]
            read = sum(_is_read(samples[i], per_image[i][0]) for i in idx)
            other = sum(len(per_image[i][0]) - _is_read(samples[i], per_image[i][0]) for i in idx)
            ms = 1000 * sum(per_image[i][1] for i in idx) / len(idx)
            rows.append(FolderRow(name, folder, samples[idx[0]].format, len(idx), read, other, round(ms, 2)))
    totals = {name: _totals(name, [r for r in rows if r.reader == name]) for name in results}
    singles = [t for n, t in totals.items() if not n.startswith("combined")] or list(totals.values())
    baseline = max(singles, key=lambda t: (t.read, -t.ms_per_image))
    readers = [ReaderRow(**{**asdict(t), "time_ratio": round(t.ms_per_image / baseline.ms_per_image, 2)})
               for t in totals.values()]
    return BenchResult(data, repeats, baseline.reader, rows, readers)


def _is_read(sample: Sample, codes: Codes) -> bool:
    return sample.format is not None and any(c.format == sample.format and c.text == sample.expected for c in codes)


def _totals(name: str, rows: Sequence[FolderRow]) -> ReaderRow:
    coded = [r for r in rows if r.format is not None]
    all_images = sum(r.images for r in rows)
    ms = sum(r.ms_per_image * r.images for r in rows) / all_images
    return ReaderRow(name, sum(r.images for r in coded), sum(r.read for r in coded), sum(r.other for r in coded),
                     sum(r.other for r in rows if r.format is None), round(ms, 2), 1.0)


def bench_codes(data_dir: Path, repeats: int = 3, limit: int | None = None,
                log: Callable[[str], None] = lambda _: None) -> BenchResult:
    samples = load_samples(data_dir, limit)
    images = [load_image(s.path) for s in samples]
    readers = open_readers(log)
    log(f"{len(samples)} images, {len(readers)} readers, {repeats} repeats")
    result = summarise(samples, time_readers(images, readers, repeats), str(data_dir), repeats)
    result.notes.extend(_notes(readers))
    return result


def _notes(readers: Mapping[str, CodeReader]) -> list[str]:
    combined = readers.get("combined")
    degraded = getattr(combined, "degraded", None)
    return [f"combined reader degraded: {degraded}"] if degraded else []


# ---------------------------------------------------------------------------------------------- table


def format_table(result: BenchResult) -> str:
    names = [r.reader for r in result.readers]
    head = ["folder", "format", "images"] + [f"{n} read/other/ms" for n in names]
    lines = [head]
    for folder in dict.fromkeys(r.folder for r in result.folders):
        cells = [r for r in result.folders if r.folder == folder]
        fp = cells[0].format is None
        lines.append([folder, cells[0].format or "(none)", str(cells[0].images)]
                     + [f"{'-' if fp else c.read} / {c.other} / {c.ms_per_image:.1f}" for c in cells])
    lines.append(["all codes", "", str(result.readers[0].images)]
                 + [f"{r.read} / {r.other} / -" for r in result.readers])
    lines.append(["false positives", "", ""] + [str(r.false_positives) for r in result.readers])
    lines.append(["ms per image, all", "", str(_image_count(result))]
                 + [f"{r.ms_per_image:.2f} ({r.time_ratio:.2f}x)" for r in result.readers])
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    text = "\n".join("  ".join(v.rjust(w) if i > 1 else v.ljust(w) for i, (v, w) in enumerate(zip(line, widths,
                                                                                                  strict=True)))
                     for line in lines)
    met = result.target_met()
    verdict = "not run" if met is None else ("met" if met else "NOT met")
    footer = [f"read / other / ms per image; time ratio against the baseline, {result.baseline}; "
              f"median of {result.repeats} repeats",
              f"target (combined: reads >= {result.baseline}, time <= {TIME_TARGET}x, no false positive): {verdict}"]
    return "\n".join([text, *footer, *result.notes])


def _image_count(result: BenchResult) -> int:
    first = result.folders[0].reader
    return sum(r.images for r in result.folders if r.reader == first)
