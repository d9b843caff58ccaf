"""Code reading: exact text and SPEC format names from every backend, UPC-A as 12 digits, debounce,
and payloads as hostile input that never makes a reader raise."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import segno

from vision import codes as codes_mod
from vision.codes import (
    Code,
    CodesUnavailable,
    CombinedReader,
    Debouncer,
    PyzbarReader,
    ReaderOptions,
    ZxingReader,
    dedupe,
    open_reader,
    text_from_bytes,
)
from vision.synth.assets import render_ean13, render_qr

REPO = Path(__file__).resolve().parents[2]
BACKENDS = ["zxing-cpp", "pyzbar", "combined"]
ENTRY = "WO1.eyJjaWQiOiJjLTAwMDEiLCJqdGkiOiI4YzFmIn0.c2lnbmF0dXJlLW5vdC1jaGVja2VkLWhlcmU"


def _reader(backend: str, **options: object):
    return open_reader(backend, ReaderOptions(**options) if options else None)


def _canvas(*items: tuple[np.ndarray, int, int], size: tuple[int, int] = (640, 480)) -> np.ndarray:
    """A BGR frame, light grey, with grayscale code pictures pasted at (x, y)."""
    w, h = size
    frame = np.full((h, w, 3), 235, np.uint8)
    for picture, x, y in items:
        frame[y : y + picture.shape[0], x : x + picture.shape[1]] = picture[..., None]
    return frame


def _qr_bytes(data: bytes, module_px: int = 4) -> np.ndarray:
    qr = segno.make_qr(data, error="m")
    dark = np.array([list(row) for row in qr.matrix_iter(scale=module_px, border=4)], dtype=bool)
    return np.where(dark, 0, 255).astype(np.uint8)


def _inside(box: tuple[int, int, int, int], region: tuple[int, int, int, int], slack: int = 3) -> bool:
    return (box[0] >= region[0] - slack and box[1] >= region[1] - slack
            and box[2] <= region[2] + slack and box[3] <= region[3] + slack and box[2] > box[0])


# --- reading and naming ---------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("gtin", "fmt", "text"), [
    ("3017620422003", "EAN13", "3017620422003"),
    ("5901234123457", "EAN13", "5901234123457"),
    ("0012345678905", "UPCA", "012345678905"),  # EAN-13 with a leading 0 is a UPC-A: its 12 digits
    ("0036000291452", "UPCA", "036000291452"),
])
def test_linear_codes_read_with_spec_names_and_upca_as_12_digits(backend, gtin, fmt, text):
    frame = _canvas((render_ean13(gtin, module_px=2, bar_height_px=60), 100, 150))
    found = _reader(backend).read(frame)
    assert [(c.format, c.text) for c in found] == [(fmt, text)]
    assert found[0].gtin13 == gtin  # the catalog's key, whichever way the symbol is named
    label = (100, 150, 100 + 117 * 2, 150 + 90)
    assert _inside(found[0].box, label), (found[0].box, label)


@pytest.mark.parametrize("backend", BACKENDS)
def test_upca_is_a_13_digit_ean13_when_only_ean13_is_wanted(backend):
    frame = _canvas((render_ean13("0012345678905", module_px=2), 100, 150))
    found = _reader(backend, formats=("EAN13",)).read(frame)
    assert [(c.format, c.text) for c in found] == [("EAN13", "0012345678905")]


@pytest.mark.parametrize(("fmt", "text", "wanted", "expected"), [
    ("EAN13", "0012345678905", {"UPCA", "EAN13"}, ("UPCA", "012345678905")),
    ("EAN13", "0012345678905", {"EAN13"}, ("EAN13", "0012345678905")),
    ("UPCA", "012345678905", {"EAN13"}, ("EAN13", "0012345678905")),
    ("UPCA", "0012345678905", {"UPCA"}, ("UPCA", "012345678905")),  # a decoder that pads: still 12 digits
    ("EAN13", "3017620422003", {"UPCA"}, None),  # not a UPC-A and EAN13 not wanted
    ("EAN13", "3017620422003", {"EAN13", "UPCA"}, ("EAN13", "3017620422003")),
    ("QRCode", "0123", {"QRCode"}, ("QRCode", "0123")),
    ("Code39", "ABC", {"QRCode"}, None),
    (None, "x", {"QRCode"}, None),  # a format we have no name for is never reported
])
def test_normalise(fmt, text, wanted, expected):
    assert codes_mod._normalise(fmt, text, frozenset(wanted)) == expected


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("text", [ENTRY, "https://example.org/?q=1&r=2", "Pâte à tartiner 400 g"])
def test_qr_text_exact_and_box_in_frame_pixels(backend, text):
    picture = render_qr(text, module_px=4)
    frame = _canvas((picture, 300, 100))
    found = _reader(backend).read(frame)
    assert [(c.format, c.text) for c in found] == [("QRCode", text)]
    assert _inside(found[0].box, (300, 100, 300 + picture.shape[1], 100 + picture.shape[0]))


@pytest.mark.parametrize("backend", BACKENDS)
def test_formats_restrict_what_is_read(backend):
    frame = _canvas((render_qr(ENTRY, 3), 20, 20), (render_ean13("3017620422003", 2), 320, 300))
    assert {c.format for c in _reader(backend).read(frame)} == {"QRCode", "EAN13"}
    assert [c.format for c in _reader(backend, formats=("QRCode",)).read(frame)] == ["QRCode"]
    assert [c.format for c in _reader(backend, formats=("EAN13",)).read(frame)] == ["EAN13"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_regions_of_interest_read_only_inside_and_report_frame_pixels(backend):
    left, right = render_qr("left", 4), render_qr("right", 4)
    frame = _canvas((left, 20, 40), (right, 400, 200))
    reader = _reader(backend)
    assert {c.text for c in reader.read(frame)} == {"left", "right"}
    roi = (380, 180, 640, 480)
    found = reader.read(frame, rois=[roi])
    assert [c.text for c in found] == ["right"]
    assert _inside(found[0].box, (400, 200, 400 + right.shape[1], 200 + right.shape[0]))
    assert reader.read(frame, rois=[(2000, 2000, 3000, 3000)]) == ()  # outside the frame: nothing, no error


def test_upscale_reads_a_code_with_modules_too_small_for_the_plain_pass():
    # 1.5 px modules with grey edges, as on a shelf label a few metres away.
    small = cv2.resize(render_ean13("5901234123457", module_px=2, bar_height_px=60), None, fx=0.75, fy=0.75,
                       interpolation=cv2.INTER_AREA)
    frame = _canvas((small, 40, 50), size=(300, 200))
    found = ZxingReader(ReaderOptions(upscale=2)).read(frame)
    assert [(c.format, c.text) for c in found] == [("EAN13", "5901234123457")]
    assert _inside(found[0].box, (40, 50, 40 + small.shape[1], 50 + small.shape[0]))


@pytest.mark.parametrize("gtin", ["5901234123457", "3017620422003"])
def test_fallback_on_empty_lets_pyzbar_read_small_linear_codes(gtin):
    # 1.4 px modules, smoothed: pyzbar reads these where zxing-cpp finds nothing at all (not even a
    # symbol to retry), which is why the option exists for label crops.
    small = cv2.resize(render_ean13(gtin, module_px=2, bar_height_px=60), None, fx=0.7, fy=0.7,
                       interpolation=cv2.INTER_AREA)
    frame = _canvas((small, 40, 50), size=(300, 200))
    found = CombinedReader(fallback_on_empty=True).read(frame)
    assert [(c.format, c.text) for c in found] == [("EAN13", gtin)]
    assert _inside(found[0].box, (40, 50, 40 + small.shape[1], 50 + small.shape[0]))
    label = [(40, 50, 40 + small.shape[1], 50 + small.shape[0])]
    assert CombinedReader(fallback_on_empty=True).read(frame, rois=label) == found


@pytest.mark.parametrize("bad", [
    {"formats": ("EAN13", "QR")},
    {"formats": ()},
    {"upscale": 0.5},
    {"upscale": 10},
    {"max_text": 0},
])
def test_reader_options_refuse_nonsense(bad):
    with pytest.raises(ValueError, match="ReaderOptions"):
        ReaderOptions(**bad)


def test_unknown_backend_is_named():
    with pytest.raises(ValueError, match="unknown code reader 'zbar'"):
        open_reader("zbar")


# --- untrusted payloads and hostile images --------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("data", [
    bytes(range(256)),  # every byte, NUL and controls included
    b"\xff\xfe\x00\x80\x1b[31mRED\x1b[0m",  # not UTF-8, with a terminal escape sequence
])
def test_binary_payloads_keep_every_byte_as_latin1(backend, data):
    found = _reader(backend).read(_canvas((_qr_bytes(data, 3), 40, 40)))
    assert [(c.format, c.text) for c in found] == [("QRCode", data.decode("latin-1"))]


@pytest.mark.parametrize("backend", BACKENDS)
def test_text_longer_than_the_limit_is_dropped_not_truncated(backend):
    text = "A" * 1500
    frame = _canvas((render_qr(text, 2), 10, 10), size=(400, 400))
    assert [c.text for c in _reader(backend).read(frame)] == [text]
    assert _reader(backend, max_text=1000).read(frame) == ()


@pytest.mark.parametrize(("data", "text"), [
    (b"plain", "plain"),
    ("Pâte".encode(), "Pâte"),
    (b"\xff\xfe\x80", "ÿþ\x80"),  # not UTF-8: Latin-1, one character a byte
    (b"\xc3", "Ã"),  # a cut UTF-8 sequence
    (b"", ""),
])
def test_text_from_bytes_never_raises(data, text):
    assert text_from_bytes(data) == text


def _noise(seed: int, shape: tuple[int, ...]) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("image", [
    np.zeros((0, 0), np.uint8),
    np.zeros((1, 1, 3), np.uint8),
    np.zeros((480, 640, 3), np.uint8),
    np.full((480, 640), 255, np.uint8),
    _noise(1, (480, 640, 3)),
    _noise(2, (300, 200, 4)),  # BGRA
    _noise(3, (50, 2000, 1)),
    np.tile(np.array([0, 255], np.uint8).repeat(2), (200, 160)),  # bars everywhere, no code
], ids=["empty", "1px", "black", "white", "noise", "bgra", "strip", "stripes"])
def test_hostile_images_give_no_code_and_no_exception(backend, image):
    assert _reader(backend).read(image) == ()


@pytest.mark.parametrize("backend", BACKENDS)
def test_many_codes_in_one_frame_are_capped(backend):
    tile = render_qr("x", 2)
    frame = np.full((tile.shape[0] * 3, tile.shape[1] * 4, 3), 255, np.uint8)
    for i in range(3):
        for j in range(4):
            frame[i * tile.shape[0] : (i + 1) * tile.shape[0], j * tile.shape[1] : (j + 1) * tile.shape[1]] = \
                tile[..., None]
    assert len(_reader(backend).read(frame)) == 12  # identical codes in different places all count
    assert len(_reader(backend, max_codes=5).read(frame)) == 5


def test_a_decoder_that_raises_reads_as_no_code(monkeypatch):
    reader = ZxingReader()

    def boom(gray, errors):
        raise RuntimeError("decoder bug triggered by a crafted image")

    monkeypatch.setattr(reader, "_decode", boom)
    assert reader.read(_canvas((render_qr("x"), 10, 10))) == ()


@pytest.mark.parametrize("image", [np.zeros((10, 10), np.float32), np.zeros((2, 10, 10, 3), np.uint8),
                                   np.zeros((10, 10, 2), np.uint8), [[0, 255]]])
def test_a_malformed_array_is_a_clear_value_error(image):
    with pytest.raises(ValueError, match="expected a uint8 image"):
        ZxingReader().read(image)


# --- combined reader -----------------------------------------------------------------------------


def test_combined_retries_where_zxing_failed_and_takes_pyzbar_read_there(monkeypatch):
    reader = CombinedReader()
    frame = _canvas()
    failed_at = (100, 100, 200, 101)  # zxing located a symbol on one scan line but could not decode it
    monkeypatch.setattr(reader._zxing, "read_with_failures", lambda gray, region: ([], [failed_at]))
    asked: list[tuple[int, int, int, int]] = []
    monkeypatch.setattr(reader._zxing, "read_region", lambda gray, region, scale: asked.append(region) or [])
    zbar_code = Code("EAN13", "3017620422003", (105, 60, 195, 140), "pyzbar")
    monkeypatch.setattr(reader._zbar, "read_region", lambda gray, region, scale: [zbar_code])
    assert reader.read(frame) == (zbar_code,)
    x1, y1, x2, y2 = asked[0]  # the retry region takes the bars above and below the failed line
    assert x1 < 100 and x2 > 200 and y1 <= 50 and y2 >= 150


def test_combined_skips_retries_on_codes_already_read_and_trusts_only_ascii_zbar_qr(monkeypatch):
    reader = CombinedReader()
    read = Code("QRCode", "ok", (10, 10, 90, 90), "zxing-cpp")
    monkeypatch.setattr(reader._zxing, "read_with_failures",
                        lambda gray, region: ([read], [(20, 20, 80, 80), (300, 300, 340, 340)]))
    monkeypatch.setattr(reader._zxing, "read_region", lambda gray, region, scale: [])
    retried: list[tuple[int, int, int, int]] = []

    def zbar(gray, region, scale):
        retried.append(region)
        return [Code("QRCode", "蹬靼", (300, 300, 340, 340), "pyzbar")]  # zbar's guess at Shift-JIS

    monkeypatch.setattr(reader._zbar, "read_region", zbar)
    assert reader.read(_canvas()) == (read,)
    assert len(retried) == 1 and retried[0][0] < 300  # only around the symbol nobody read


def test_combined_without_libzbar_degrades_and_says_so(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyzbar", None)  # what a machine without libzbar0 looks like to Python
    with pytest.raises(CodesUnavailable, match="libzbar0"):
        PyzbarReader()
    reader = CombinedReader()
    assert reader.degraded and "libzbar0" in reader.degraded and "zxing-cpp only" in reader.degraded
    assert [c.text for c in reader.read(_canvas((render_qr(ENTRY), 10, 10)))] == [ENTRY]
    with pytest.raises(CodesUnavailable):
        CombinedReader(require_pyzbar=True)


@pytest.mark.parametrize(("boxes", "kept"), [
    ([(0, 0, 100, 100), (5, 5, 100, 100)], 1),
    ([(0, 50, 140, 51), (2, 64, 138, 78)], 1),  # two scan lines of one linear code
    ([(0, 0, 100, 20), (300, 0, 400, 20)], 2),  # two labels of one product, side by side
    ([(0, 0, 100, 20), (0, 200, 100, 220)], 2),  # ... or on two shelves
])
def test_dedupe_merges_reads_of_one_symbol_only(boxes, kept):
    assert len(dedupe(Code("EAN13", "3017620422003", b) for b in boxes)) == kept


def test_importing_codes_loads_no_decoder():
    code = ("import sys, vision.codes; heavy = {'zxingcpp', 'pyzbar', 'cv2'} & set(sys.modules); "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


# --- debounce -------------------------------------------------------------------------------------


def _frames(spec: str) -> list[list[Code]]:
    """'AB,A,,A' -> frames holding codes A and B, then A, then nothing, then A."""
    return [[Code("QRCode", t, (0, 0, 1, 1)) for t in frame] for frame in spec.split(",")]


@pytest.mark.parametrize(("reads", "max_gap", "spec", "expected"), [
    (3, 0, "A,A,A", ",,A"),
    (3, 0, "A,A,,A,A,A", ",,,,,A"),  # a miss breaks the streak when no gap is allowed
    (3, 1, "A,A,,A", ",,,A"),  # one missed frame is tolerated
    (3, 1, "A,,,A,A", ",,,,"),  # two are not: A starts again
    (2, 0, "A,A,A,A,A", ",A,,,"),  # reported once while it stays in sight
    (2, 1, "A,A,,,A,A", ",A,,,,A"),  # and again after it was gone for longer than max_gap
    (1, 0, "AB,B", "AB,"),
    (2, 0, "AA,", ","),  # the same code twice in one frame is one read
    (2, 2, "AB,B,A,", ",B,A,"),
])
def test_debounce_counts_a_code_after_k_reads(reads, max_gap, spec, expected):
    debouncer = Debouncer(reads=reads, max_gap=max_gap)
    got = ["".join(c.text for c in debouncer.update(frame)) for frame in _frames(spec)]
    assert got == expected.split(",")


def test_debounce_memory_is_bounded():
    debouncer = Debouncer(reads=3, max_gap=4, max_entries=50)
    for i in range(5000):  # a new code every frame (a hostile or noisy camera)
        debouncer.update([Code("QRCode", f"c{i}", (0, 0, 1, 1))])
        assert debouncer.tracked <= 5
    debouncer.update([Code("QRCode", f"burst{i}", (0, 0, 1, 1)) for i in range(1000)])
    assert debouncer.tracked == 50


@pytest.mark.parametrize("bad", [{"reads": 0}, {"max_gap": -1}, {"max_entries": 0}])
def test_debounce_refuses_nonsense(bad):
    with pytest.raises(ValueError, match="Debouncer"):
        Debouncer(**bad)
