"""`walkout codes FILE... [--json]` as SPEC section 8 defines it, on images and videos, and the clear
error a bad file gets while the other files are still read."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import segno

from store_runtime.cli import main
from store_runtime.codes_files import printable
from vision.synth.assets import render_ean13, render_qr
from vision.video import VideoWriter

GTIN = "3017620422003"


def _image(path: Path, *items: tuple[np.ndarray, int, int], size: tuple[int, int] = (480, 360)) -> Path:
    frame = np.full((size[1], size[0], 3), 230, np.uint8)
    for picture, x, y in items:
        frame[y : y + picture.shape[0], x : x + picture.shape[1]] = picture[..., None]
    cv2.imwrite(str(path), frame)
    return path


def _json_lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 frames: QR 'hello' from frame 5, an EAN-13 from frame 10, QR 'flash' on frame 15 only."""
    path = tmp_path_factory.mktemp("video") / "gate.mp4"
    hello, flash, ean = render_qr("hello", 5), render_qr("flash", 5), render_ean13(GTIN, 2, 60)
    with VideoWriter(path, (480, 360), fps=10, crf=12) as writer:
        for index in range(20):
            frame = np.full((360, 480, 3), 230, np.uint8)
            for picture, x, y, frames in ((hello, 10, 10, range(5, 20)), (flash, 330, 10, (15,)),
                                          (ean, 200, 250, range(10, 20))):
                if index in frames:
                    frame[y : y + picture.shape[0], x : x + picture.shape[1]] = picture[..., None]
            writer.write(frame)
    return path


def test_json_on_an_image_is_one_line_per_file_as_spec(tmp_path, capsys):
    qr = render_qr("WO1.abc.def", 4)
    path = _image(tmp_path / "shelf.png", (qr, 10, 10), (render_ean13(GTIN, 2, 60), 200, 250))
    empty = _image(tmp_path / "empty.jpg")
    assert main(["codes", str(path), str(empty), "--json"]) == 0
    lines = _json_lines(capsys.readouterr().out)
    assert [line["file"] for line in lines] == [str(path), str(empty)]
    assert all(set(line) == {"file", "codes"} for line in lines)
    assert lines[1]["codes"] == []
    codes = sorted(lines[0]["codes"], key=lambda c: c["format"])
    assert [(c["format"], c["text"]) for c in codes] == [("EAN13", GTIN), ("QRCode", "WO1.abc.def")]
    assert all(set(c) == {"format", "text", "box"} for c in codes)  # no "frame" on an image
    x1, y1, x2, y2 = codes[1]["box"]
    assert all(isinstance(v, int) for v in codes[1]["box"])
    assert 8 <= x1 < x2 <= 10 + qr.shape[1] + 2 and 8 <= y1 < y2 <= 10 + qr.shape[0] + 2


@pytest.mark.parametrize(("extra", "expected"), [
    ([], [("QRCode", "hello", 5), ("EAN13", GTIN, 10), ("QRCode", "flash", 15)]),
    (["--stride", "2"], [("QRCode", "hello", 6), ("EAN13", GTIN, 10)]),  # frame numbers stay the video's
    (["--min-reads", "2"], [("QRCode", "hello", 5), ("EAN13", GTIN, 10)]),  # a one-frame read is dropped
])
def test_json_on_a_video_reports_each_code_once_with_its_first_frame(video, extra, expected, capsys):
    assert main(["codes", str(video), "--json", *extra]) == 0
    (line,) = _json_lines(capsys.readouterr().out)
    assert line["file"] == str(video)
    assert [(c["format"], c["text"], c["frame"]) for c in line["codes"]] == expected
    assert all(set(c) == {"format", "text", "box", "frame"} for c in line["codes"])


@pytest.mark.parametrize("make_bad, message", [
    (lambda d: d / "missing.png", "no such file"),
    (lambda d: _write(d / "notes.png", b"not a picture at all"), "neither an image nor a video"),
    (lambda d: _write(d / "empty.mp4", b""), "neither an image nor a video"),
    (lambda d: d, "is a directory"),
])
def test_a_bad_file_is_named_exit_2_and_the_others_still_read(tmp_path, make_bad, message, capsys):
    good = _image(tmp_path / "good.png", (render_qr("still read", 4), 10, 10))
    bad = make_bad(tmp_path)
    assert main(["codes", str(bad), str(good), "--json"]) == 2
    captured = capsys.readouterr()
    assert f"{bad}: {message}" in captured.err and "Traceback" not in captured.err
    assert [line["file"] for line in _json_lines(captured.out)] == [str(good)]


def test_a_truncated_video_is_an_error_naming_it(tmp_path, video, capsys):
    cut = _write(tmp_path / "cut.mp4", video.read_bytes()[:600])
    assert main(["codes", str(cut)]) == 2
    assert str(cut) in capsys.readouterr().err


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_table_escapes_what_a_terminal_would_obey(tmp_path, capsys):
    hostile = "\x1b[2J\x1b[31mowned\x07"
    qr = np.where(np.array([list(r) for r in segno.make_qr(hostile).matrix_iter(scale=4, border=4)]), 0, 255)
    path = _image(tmp_path / "hostile.png", (qr.astype(np.uint8), 10, 10))
    assert main(["codes", str(path)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out
    assert "\\x1b[2J\\x1b[31mowned\\x07" in out and "QRCode" in out and "file" in out.splitlines()[0]
    assert main(["codes", str(path), "--json"]) == 0  # JSON keeps the text exactly, escaped
    out = capsys.readouterr().out
    assert "\x1b" not in out and _json_lines(out)[0]["codes"][0]["text"] == hostile


@pytest.mark.parametrize(("text", "shown"), [
    ("plain", "plain"),
    ("a\nb\tc", "a\\nb\\tc"),
    ("x" * 100, "x" * 59 + "…"),
    ("ﾃﾞｻﾞｲﾝQR", "ﾃﾞｻﾞｲﾝQR"),  # printable non-ASCII stays readable
])
def test_printable(text, shown):
    assert printable(text) == shown


def test_without_libzbar_the_pyzbar_backend_is_a_clear_error_and_combined_degrades(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "pyzbar", None)
    path = _image(tmp_path / "qr.png", (render_qr("x", 4), 10, 10))
    assert main(["codes", str(path), "--backend", "pyzbar"]) == 2
    assert "libzbar0" in capsys.readouterr().err
    assert main(["codes", str(path), "--json"]) == 0
    captured = capsys.readouterr()
    assert "zxing-cpp only" in captured.err and _json_lines(captured.out)[0]["codes"][0]["text"] == "x"


@pytest.mark.parametrize("option", ["--stride", "--min-reads"])
def test_counts_below_one_are_refused(tmp_path, option, capsys):
    path = _image(tmp_path / "qr.png", (render_qr("x", 4), 10, 10))
    assert main(["codes", str(path), option, "0"]) == 2
    err = capsys.readouterr().err
    assert "at least 1" in err and "Traceback" not in err


def test_codes_needs_a_file(capsys):
    with pytest.raises(SystemExit) as exit_info:  # argparse's own usage error
        main(["codes"])
    assert exit_info.value.code == 2
