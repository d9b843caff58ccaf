"""Barcodes and QR codes behind one interface: zxing-cpp, pyzbar, and a reader that combines them.

`read(image, rois=None) -> Codes` is the one verb. Every backend reads a grayscale copy of the
frame, only the formats asked for, in the whole frame or in regions of interest, optionally
upscaled for small codes, and returns `Code`s in frame pixels with SPEC section 8's format names.

Payloads are untrusted input: a code's text can hold anything its maker wanted (control
characters, terminal escapes, 3 kB of text, bytes that are not UTF-8). Readers never raise on what
an image contains: a decoder error is caught and reads as "no code", text that is not UTF-8 is kept
byte for byte as Latin-1, and text longer than `max_text` is dropped (a truncated code would be
another code). Only a malformed array (wrong dtype or shape) is a `ValueError`: that is a bug in
the caller, not something a picture can cause.

UPC-A is EAN-13 with a leading 0: the same bars, so no decoder can tell them apart. We report such
a symbol as `UPCA` with its 12 digits when UPCA is wanted (SPEC section 8), and as a 13-digit
`EAN13` when only EAN13 is; `Code.gtin13` gives the catalog's 13-digit key either way.

The decoders are imported when a reader is built, not when this module is: `walkout --help` and
everything that never reads a code stay fast, and a missing libzbar only affects pyzbar.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

__all__ = [
    "BACKENDS",
    "DEFAULT_FORMATS",
    "FORMATS",
    "Code",
    "Codes",
    "CodesUnavailable",
    "CombinedReader",
    "Debouncer",
    "PyzbarReader",
    "ReaderOptions",
    "ZxingReader",
    "open_reader",
]

Box = tuple[int, int, int, int]

# Our format name -> (zxing-cpp BarcodeFormat name, zbar ZBarSymbol name or None where zbar cannot read it).
FORMATS: dict[str, tuple[str, str | None]] = {
    "EAN13": ("EAN13", "EAN13"),
    "EAN8": ("EAN8", "EAN8"),
    "UPCA": ("UPCA", "UPCA"),
    "UPCE": ("UPCE", "UPCE"),
    "Code128": ("Code128", "CODE128"),
    "Code39": ("Code39", "CODE39"),
    "Code93": ("Code93", "CODE93"),
    "Codabar": ("Codabar", "CODABAR"),
    "ITF": ("ITF", "I25"),
    "QRCode": ("QRCode", "QRCODE"),
    "DataMatrix": ("DataMatrix", None),
    "PDF417": ("PDF417", None),
    "Aztec": ("Aztec", None),
}
# What a store needs: shelf labels and packages (EAN-13/8, UPC-A), cases and pallets (Code 128), entry
# codes (QR). Every extra linear format is one more way for noise to read as a code, so others are opt-in.
DEFAULT_FORMATS: tuple[str, ...] = ("EAN13", "EAN8", "UPCA", "Code128", "QRCode")
# Above the capacity of the largest QR code (7,089 digits): a longer text is a decoder gone wrong.
MAX_TEXT_CHARS = 8192
MAX_CODES = 256  # per read: bounds the work a frame tiled with codes can cause downstream
MAX_UPSCALED_PIXELS = 16_000_000  # an upscaled region never exceeds this (memory, time)
# The combined reader's retry: a symbol located but not decoded is upscaled up to this length (an
# EAN-13 of 400 px has 4 px modules: enlarging it more only costs time), and one shorter than
# MIN_SYMBOL_PX cannot hold a code.
RETRY_SIDE_PX = 400
MIN_SYMBOL_PX = 8
# zxing-cpp's variant names -> the family name we report (QR model 1/2, Code 39 standard/extended, ...).
_ZXING_FAMILIES = (("QRCode", "QRCode"), ("MicroQRCode", None), ("Code39", "Code39"), ("EAN13", "EAN13"),
                   ("EAN8", "EAN8"), ("UPCA", "UPCA"), ("UPCE", "UPCE"), ("ITF", "ITF"))
_ZBAR_NAMES = {zbar: ours for ours, (_, zbar) in FORMATS.items() if zbar is not None}
_LINEAR = frozenset({"EAN13", "EAN8", "UPCA", "UPCE", "Code128", "Code39", "Code93", "Codabar", "ITF"})


class CodesUnavailable(RuntimeError):
    """A backend whose decoder library cannot be loaded; the message says what to install."""


@dataclass(frozen=True)
class Code:
    """One code read in one frame: SPEC section 8 format name, text exactly as encoded, box xyxy in frame pixels."""

    format: str
    text: str
    box: Box
    source: str = ""  # the backend that read it: for benchmarks and debugging, not for decisions

    @property
    def key(self) -> tuple[str, str]:
        return (self.format, self.text)

    @property
    def gtin13(self) -> str | None:
        """The 13-digit GTIN of an EAN-13 or UPC-A (catalog.csv's key), else None."""
        if self.format == "EAN13":
            return self.text
        return "0" + self.text if self.format == "UPCA" else None

    def as_dict(self) -> dict[str, object]:
        return {"format": self.format, "text": self.text, "box": list(self.box)}


Codes = tuple[Code, ...]


@dataclass(frozen=True)
class ReaderOptions:
    """What to look for and how hard: formats (names of `FORMATS`), upscaling, payload limits."""

    formats: tuple[str, ...] = DEFAULT_FORMATS
    upscale: float = 1.0  # each region is enlarged this much before decoding: codes with modules under ~1.5 px
    max_text: int = MAX_TEXT_CHARS
    max_codes: int = MAX_CODES

    def __post_init__(self) -> None:
        unknown = [f for f in self.formats if f not in FORMATS]
        if unknown or not self.formats:
            raise ValueError(f"ReaderOptions.formats: unknown format(s) {unknown}; expected some of {list(FORMATS)}")
        if not 1.0 <= self.upscale <= 4.0:
            raise ValueError(f"ReaderOptions.upscale: expected a factor from 1 to 4, got {self.upscale}")
        if self.max_text < 1 or self.max_codes < 1:
            raise ValueError(f"ReaderOptions: max_text and max_codes must be positive, got {self.max_text}, "
                             f"{self.max_codes}")


class CodeReader(Protocol):
    name: str

    def read(self, image: np.ndarray, rois: Sequence[Sequence[float]] | None = None) -> Codes: ...


# ------------------------------------------------------------------------------------------ helpers


@dataclass(frozen=True)
class _Raw:
    """What a decoder said, before normalisation: its own format name, text, box in region pixels."""

    format: str | None
    text: str
    box: tuple[float, float, float, float]
    quality: int = 0


def to_gray(image: np.ndarray) -> np.ndarray:
    """A contiguous uint8 grayscale view or copy of a gray, BGR or BGRA frame."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or not (
        image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (1, 3, 4))
    ):
        got = f"{getattr(image, 'dtype', type(image).__name__)} {getattr(image, 'shape', '')}"
        raise ValueError(f"codes: expected a uint8 image (H, W), (H, W, 3) BGR or (H, W, 4) BGRA, got {got}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 3:
        import cv2

        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY if image.shape[2] == 3 else cv2.COLOR_BGRA2GRAY)
    return np.ascontiguousarray(image)


def text_from_bytes(data: bytes) -> str:
    """Decoder bytes as text: UTF-8 when they are UTF-8, else Latin-1, which keeps every byte (never raises)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _normalise(fmt: str | None, text: str, wanted: frozenset[str]) -> tuple[str, str] | None:
    """Our (format, text) for a decoder's read, or None when the format was not asked for."""
    if fmt in ("EAN13", "UPCA"):
        digits = text[1:] if len(text) == 13 and text.startswith("0") else text
        if len(digits) == 12 and digits.isascii() and digits.isdigit():  # the UPC-A compatible case
            if "UPCA" in wanted:
                return "UPCA", digits
            return ("EAN13", "0" + digits) if "EAN13" in wanted else None
        return ("EAN13", text) if fmt == "EAN13" and "EAN13" in wanted else None
    return (fmt, text) if fmt in wanted else None


def _regions(shape: tuple[int, ...], rois: Sequence[Sequence[float]] | None) -> list[Box]:
    """Regions of interest clipped to the frame, as whole pixels; the whole frame when none are given."""
    h, w = shape[:2]
    if rois is None:
        return [(0, 0, w, h)] if w and h else []
    regions = []
    for roi in rois:
        if len(roi) != 4 or not all(math.isfinite(v) for v in roi):
            raise ValueError(f"codes: a region of interest is [x1, y1, x2, y2] in frame pixels, got {list(roi)}")
        x1, y1 = max(0, math.floor(roi[0])), max(0, math.floor(roi[1]))
        x2, y2 = min(w, math.ceil(roi[2])), min(h, math.ceil(roi[3]))
        if x2 > x1 and y2 > y1:
            regions.append((x1, y1, x2, y2))
    return regions


def _fat(box: Sequence[float]) -> tuple[float, float, float, float]:
    """The box grown so its short side is at least half its long side.

    A linear code's box is often one scan line (1 px high): two reads of the same symbol on
    different lines would otherwise never overlap, while two identical labels side by side still don't.
    """
    x1, y1, x2, y2 = box
    side = max(x2 - x1, y2 - y1, 1.0) / 2
    gx, gy = max(0.0, side - (x2 - x1)) / 2, max(0.0, side - (y2 - y1)) / 2
    return x1 - gx, y1 - gy, x2 + gx, y2 + gy


def _intersect(a: Sequence[float], b: Sequence[float]) -> bool:
    return min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1])


def _overlaps(a: Sequence[float], b: Sequence[float]) -> bool:
    return _intersect(_fat(a), _fat(b))


def dedupe(codes: Iterable[Code]) -> Codes:
    """First of each set of reads with the same format and text whose boxes overlap; identical codes
    in different places (two labels of one product) both stay."""
    kept: list[Code] = []
    for code in codes:
        if not any(k.key == code.key and _overlaps(k.box, code.box) for k in kept):
            kept.append(code)
    return tuple(kept)


# ------------------------------------------------------------------------------------------ backends


class _Backend:
    """Regions, upscaling, normalisation and the safety net, shared by the decoders."""

    name = ""

    def __init__(self, options: ReaderOptions | None) -> None:
        self.options = options or ReaderOptions()
        self._wanted = frozenset(self.options.formats)

    def read(self, image: np.ndarray, rois: Sequence[Sequence[float]] | None = None) -> Codes:
        gray = to_gray(image)
        codes: list[Code] = []
        for region in _regions(gray.shape, rois):
            codes.extend(self.read_region(gray, region, self.options.upscale))
        return dedupe(codes)[: self.options.max_codes]

    def read_region(self, gray: np.ndarray, region: Box, scale: float) -> list[Code]:
        """Codes in one region of a grayscale frame, decoded at `scale`, boxes in frame pixels."""
        return [c for c, _ in self._read_raw(gray, region, scale, errors=False)]

    def _read_raw(self, gray: np.ndarray, region: Box, scale: float, errors: bool) -> list[tuple[Code, bool]]:
        x0, y0, x1, y1 = region
        crop = gray[y0:y1, x0:x1]
        scale = min(scale, math.sqrt(MAX_UPSCALED_PIXELS / max(1, crop.size)))
        if scale > 1.0:
            import cv2

            crop = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
        else:
            scale = 1.0
        try:
            raws = self._decode(np.ascontiguousarray(crop), errors)
        except Exception:  # a decoder choking on pixels means "no code here", never a crash
            return []
        out = []
        for raw, ok in raws:
            # A symbol located but not decoded keeps only its box: its "text" is a wrong guess.
            named = _normalise(raw.format, raw.text, self._wanted) if ok else ("", "")
            if named is None or len(named[1]) > self.options.max_text:
                continue
            bx1, by1, bx2, by2 = raw.box
            box = (max(x0, math.floor(x0 + bx1 / scale)), max(y0, math.floor(y0 + by1 / scale)),
                   min(x1, math.ceil(x0 + bx2 / scale)), min(y1, math.ceil(y0 + by2 / scale)))
            out.append((Code(named[0], named[1], box, self.name), ok))
        return out

    def _decode(self, gray: np.ndarray, errors: bool) -> list[tuple[_Raw, bool]]:
        """(read, decoded) pairs; decoded is False for a symbol found but not decoded (errors=True only)."""
        raise NotImplementedError


class ZxingReader(_Backend):
    """zxing-cpp: the fast one, and the better one on damaged, rotated and dense codes."""

    name = "zxing-cpp"

    def __init__(self, options: ReaderOptions | None = None) -> None:
        super().__init__(options)
        try:
            import zxingcpp
        except ImportError as exc:
            raise CodesUnavailable(f"zxing-cpp is not installed (pip install zxing-cpp): {exc}") from exc
        self._zx = zxingcpp
        names = {FORMATS[f][0] for f in self.options.formats}
        if names & {"EAN13", "UPCA"}:
            names |= {"EAN13", "UPCA"}  # one symbol: ask for both, _normalise reports what was wanted
        self._formats = tuple(getattr(zxingcpp.BarcodeFormat, n) for n in sorted(names))

    def read_with_failures(self, gray: np.ndarray, region: Box) -> tuple[list[Code], list[Box]]:
        """Codes decoded in `region`, and the boxes of symbols zxing located there but could not decode."""
        pairs = self._read_raw(gray, region, self.options.upscale, errors=True)
        return [c for c, ok in pairs if ok], [c.box for c, ok in pairs if not ok]

    def _decode(self, gray: np.ndarray, errors: bool) -> list[tuple[_Raw, bool]]:
        zx = self._zx
        results = zx.read_barcodes(gray, formats=self._formats, text_mode=zx.TextMode.Plain, return_errors=errors)
        out = []
        for r in results[: self.options.max_codes * 4]:
            try:
                text = r.text
            except UnicodeDecodeError:  # Plain mode passes bytes through; keep them all
                text = text_from_bytes(bytes(r.bytes))
            p = r.position
            xs = (p.top_left.x, p.top_right.x, p.bottom_left.x, p.bottom_right.x)
            ys = (p.top_left.y, p.top_right.y, p.bottom_left.y, p.bottom_right.y)
            out.append((_Raw(_zxing_family(r.format.name), text, (min(xs), min(ys), max(xs) + 1, max(ys) + 1)),
                        bool(r.valid)))
        return out


def _zxing_family(name: str) -> str | None:
    if name in FORMATS:
        return name
    for prefix, family in _ZXING_FAMILIES:
        if name.startswith(prefix):
            return family
    return None


class PyzbarReader(_Backend):
    """pyzbar over libzbar: slower, and blind to some damage zxing-cpp reads, but it finds a few others.

    `min_quality`: zbar's quality of a linear code counts the scan lines that decoded it; a read on
    one line is what its misreads look like, so the combined reader asks for 2.
    """

    name = "pyzbar"

    def __init__(self, options: ReaderOptions | None = None, min_quality: int = 1) -> None:
        super().__init__(options)
        try:
            from pyzbar import pyzbar
            from pyzbar.wrapper import ZBarSymbol
        except (ImportError, OSError) as exc:  # pyzbar raises ImportError when libzbar.so is missing
            raise CodesUnavailable(
                f"pyzbar cannot load the zbar library (Debian: apt-get install libzbar0): {exc}") from exc
        self._pyzbar = pyzbar
        names = {FORMATS[f][1] for f in self.options.formats} - {None}
        if names & {"EAN13", "UPCA"}:
            names |= {"EAN13", "UPCA"}
        self._symbols = [ZBarSymbol[n] for n in sorted(names)]  # type: ignore[index]
        self.min_quality = min_quality

    def _decode(self, gray: np.ndarray, errors: bool) -> list[tuple[_Raw, bool]]:
        if not self._symbols:  # only formats zbar cannot read were asked for; decode(symbols=[]) means "all"
            return []
        out = []
        for r in self._pyzbar.decode(gray, symbols=self._symbols)[: self.options.max_codes * 4]:
            fmt = _ZBAR_NAMES.get(r.type)
            if fmt in _LINEAR and r.quality < self.min_quality:
                continue
            left, top, width, height = r.rect
            out.append((_Raw(fmt, text_from_bytes(r.data), (left, top, left + width + 1, top + height + 1),
                             r.quality), True))
        return out


class CombinedReader:
    """zxing-cpp everywhere, then a second look only where zxing-cpp located a symbol it could not decode.

    That region (padded) is decoded again by zxing-cpp, upscaled up to `retry_scale` times when the
    symbol is small, then, if still unread, by pyzbar. Frames without codes, the common case, cost
    one zxing-cpp pass and nothing more; running pyzbar on every frame zxing-cpp finds empty would
    double or triple the time.

    `fallback_on_empty=True` also asks pyzbar about every region where nothing was read. pyzbar
    reads some small linear codes (modules of about 1.5 px, as on a shelf-edge label a few metres
    away) that zxing-cpp neither reads nor locates; on whole frames that costs pyzbar's full time
    on every empty frame, on small regions of interest (label crops) little.

    Without libzbar the reader still works, with zxing-cpp and its upscaled retry only; `degraded`
    then says why (the CLI prints it), and `require_pyzbar=True` makes that an error instead.

    pyzbar's QR text is trusted only when it is ASCII: zbar guesses the character set of byte
    segments (Shift-JIS comes out as Chinese), so other text would not be "exactly as encoded".
    """

    name = "combined"

    def __init__(self, options: ReaderOptions | None = None, retry_scale: float = 2.0, max_retries: int = 4,
                 fallback_on_empty: bool = False, require_pyzbar: bool = False) -> None:
        self.options = options or ReaderOptions()
        self._zxing = ZxingReader(self.options)
        self.retry_scale, self.max_retries, self.fallback_on_empty = retry_scale, max_retries, fallback_on_empty
        self.degraded: str | None = None
        try:
            self._zbar: PyzbarReader | None = PyzbarReader(self.options, min_quality=2)
        except CodesUnavailable as exc:
            if require_pyzbar:
                raise
            self._zbar, self.degraded = None, f"{exc}; reading with zxing-cpp only"

    def read(self, image: np.ndarray, rois: Sequence[Sequence[float]] | None = None) -> Codes:
        gray = to_gray(image)
        found: list[Code] = []
        failed: list[Box] = []
        regions = _regions(gray.shape, rois)
        for region in regions:
            codes, misses = self._zxing.read_with_failures(gray, region)
            found += codes
            failed += misses
        for region, side in _retry_regions(failed, found, gray.shape)[: self.max_retries]:
            # Upscaling helps small modules only: a symbol already RETRY_SIDE_PX long is retried as it is.
            scale = min(self.retry_scale, max(1.0, RETRY_SIDE_PX / side))
            found += self._zxing.read_region(gray, region, scale) or self._zbar_read(gray, region, scale)
        if self.fallback_on_empty:
            for region in [r for r in regions if not any(_intersect(c.box, r) for c in found)]:
                found += self._zbar_read(gray, region, self.options.upscale)
        return dedupe(found)[: self.options.max_codes]

    def _zbar_read(self, gray: np.ndarray, region: Box, scale: float) -> list[Code]:
        if self._zbar is None:
            return []
        return [c for c in self._zbar.read_region(gray, region, scale) if c.format != "QRCode" or c.text.isascii()]


def _retry_regions(failed: Iterable[Box], found: Sequence[Code], shape: tuple[int, ...]) -> list[tuple[Box, int]]:
    """Padded regions around located-but-undecoded symbols that no decoded code covers, overlapping ones
    merged, each with the longest side of the symbols it holds."""
    h, w = shape[:2]
    regions: list[tuple[list[int], int]] = []
    for box in failed:
        x1, y1, x2, y2 = box
        side = max(x2 - x1, y2 - y1)
        if side < MIN_SYMBOL_PX or any(_intersect(box, c.box) for c in found):
            continue  # too small to hold a code, or another scan line of a symbol that was decoded
        # Only a plain intersection above: a linear code's scan lines a few pixels apart are not the same
        # read, and zxing-cpp sometimes decodes a wrong but valid code on one edge line of a symbol it
        # fails on elsewhere; a retry that reads the same code again costs little and is deduped.
        pad = side // 2 + 8  # a linear code's failed read is one line across it: take the bars above and below
        region = [max(0, x1 - pad), max(0, y1 - pad), min(w, x2 + pad), min(h, y2 + pad)]
        for other, other_side in [r for r in regions if _overlaps(r[0], region)]:
            regions.remove((other, other_side))
            side = max(side, other_side)
            region = [min(region[0], other[0]), min(region[1], other[1]),
                      max(region[2], other[2]), max(region[3], other[3])]
        regions.append((region, side))
    return [((r[0], r[1], r[2], r[3]), side) for r, side in regions]


BACKENDS = ("combined", "zxing-cpp", "pyzbar")


def open_reader(backend: str = "combined", options: ReaderOptions | None = None) -> CodeReader:
    """A reader by name (`BACKENDS`); raises CodesUnavailable when its library is missing."""
    if backend == "combined":
        return CombinedReader(options)
    if backend == "zxing-cpp":
        return ZxingReader(options)
    if backend == "pyzbar":
        return PyzbarReader(options)
    raise ValueError(f"unknown code reader {backend!r}; expected one of {', '.join(BACKENDS)}")


# ------------------------------------------------------------------------------------------ debounce


@dataclass
class _Streak:
    reads: int
    last: int
    code: Code


@dataclass
class Debouncer:
    """A code counts once it has been read in `reads` frames with at most `max_gap` frames missed in between.

    `update(codes)` is called once a frame and returns the codes confirmed on that frame, each once
    per streak: a code shown for a minute is reported once, and again only after it has been out of
    sight for more than `max_gap` frames. Memory is bounded for a camera that runs for months: a code
    not seen for `max_gap` frames is forgotten, and at most `max_entries` are tracked (the stalest go).
    """

    reads: int = 3
    max_gap: int = 5
    max_entries: int = 256
    _frame: int = field(default=0, init=False, repr=False)
    _streaks: dict[tuple[str, str], _Streak] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.reads < 1 or self.max_gap < 0 or self.max_entries < 1:
            raise ValueError(f"Debouncer: reads >= 1, max_gap >= 0 and max_entries >= 1 expected, got "
                             f"{self.reads}, {self.max_gap}, {self.max_entries}")

    @property
    def tracked(self) -> int:
        return len(self._streaks)

    def update(self, codes: Iterable[Code]) -> Codes:
        self._frame += 1
        confirmed: list[Code] = []
        firsts: dict[tuple[str, str], Code] = {}
        for code in codes:
            firsts.setdefault(code.key, code)  # a code seen twice in one frame is one read
        for code in firsts.values():
            # _prune has forgotten every streak with a longer gap, so an existing one continues.
            streak = self._streaks.setdefault(code.key, _Streak(0, self._frame, code))
            streak.reads, streak.last, streak.code = streak.reads + 1, self._frame, code
            if streak.reads == self.reads:
                confirmed.append(code)
        self._prune()
        return tuple(confirmed)

    def _prune(self) -> None:
        for key in [k for k, s in self._streaks.items() if self._frame - s.last > self.max_gap]:
            del self._streaks[key]
        if len(self._streaks) > self.max_entries:
            stalest = sorted(self._streaks, key=lambda k: self._streaks[k].last)
            for key in stalest[: len(self._streaks) - self.max_entries]:
                del self._streaks[key]
