"""`walkout bench codes`: what counts as read, as another read and as a false positive, the baseline
and the target, on a small made-up data folder and on a few images of the real one."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from store_runtime import bench_codes
from store_runtime.bench_codes import BenchResult, ReaderRow, Sample, load_samples, summarise
from store_runtime.cli import main
from vision.codes import Code
from vision.synth.assets import render_ean13, render_qr


def _picture(code: np.ndarray) -> np.ndarray:
    frame = np.full((code.shape[0] + 60, code.shape[1] + 60, 3), 240, np.uint8)
    frame[30 : 30 + code.shape[0], 30 : 30 + code.shape[1]] = code[..., None]
    return frame


@pytest.fixture()
def data(tmp_path: Path) -> Path:
    """Folders shaped like ../shared/data/barcodes: <format>-<n> with NAME.txt, and falsepositives-<n>."""
    root = tmp_path / "barcodes"
    items = {
        "qrcode-1/a.png": (render_qr("line one\r\nline two", 4), b"line one\r\nline two"),  # exact bytes, CRLF kept
        "qrcode-1/b.png": (render_qr("second", 4), b"second"),
        "qrcode-1/no-truth.png": (render_qr("unknown", 4), None),
        "upca-1/1.png": (render_ean13("0012345678905", 2, 50), b"0012345678905"),  # the data's 13-digit UPC-A
        "ean13-1/1.png": (render_ean13("3017620422003", 2, 50), b"3017620422003"),
    }
    for name, (code, text) in items.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), _picture(code))
        if text is not None:
            path.with_suffix(".txt").write_bytes(text)
    (root / "falsepositives-2").mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        cv2.imwrite(str(root / "falsepositives-2" / f"{i}.png"), rng.integers(0, 256, (120, 160, 3), np.uint8))
    (root / "unknown-1").mkdir()
    cv2.imwrite(str(root / "unknown-1" / "x.png"), _picture(render_qr("ignored", 4)))
    return root


def test_load_samples_reads_exact_truth_and_skips_what_it_cannot_judge(data):
    samples = load_samples(data)
    got = {(s.folder, s.path.name): (s.format, s.expected) for s in samples}
    assert got == {
        ("ean13-1", "1.png"): ("EAN13", "3017620422003"),
        ("falsepositives-2", "0.png"): (None, None),
        ("falsepositives-2", "1.png"): (None, None),
        ("qrcode-1", "a.png"): ("QRCode", "line one\r\nline two"),
        ("qrcode-1", "b.png"): ("QRCode", "second"),
        ("upca-1", "1.png"): ("UPCA", "012345678905"),
    }
    assert len(load_samples(data, limit=1)) == 4


def test_load_samples_without_data_is_a_clear_error(tmp_path):
    with pytest.raises(bench_codes.BenchError, match="no such directory"):
        load_samples(tmp_path / "nope")
    with pytest.raises(bench_codes.BenchError, match="no images"):
        load_samples(tmp_path)
    with pytest.raises(bench_codes.BenchError, match="at least 1"):
        load_samples(tmp_path, limit=0)


def _sample(folder: str, fmt: str | None, expected: str | None) -> Sample:
    return Sample(Path(f"{folder}/x.png"), folder, fmt, expected)


def _code(fmt: str, text: str) -> Code:
    return Code(fmt, text, (0, 0, 10, 10))


SAMPLES = [_sample("qrcode-1", "QRCode", "a"), _sample("qrcode-1", "QRCode", "b"),
           _sample("upca-1", "UPCA", "012345678905"), _sample("falsepositives-2", None, None)]


def test_summarise_counts_reads_others_and_false_positives():
    results = {
        # reads a, misreads b as c, reads the UPC-A as a 13-digit EAN-13 (not the folder's format), one FP
        "fast": [((_code("QRCode", "a"),), 0.001), ((_code("QRCode", "c"),), 0.001),
                 ((_code("EAN13", "0012345678905"),), 0.001), ((_code("EAN8", "12345670"),), 0.001)],
        # reads everything, slowly, and a second code beside a
        "slow": [((_code("QRCode", "a"), _code("QRCode", "z")), 0.004), ((_code("QRCode", "b"),), 0.004),
                 ((_code("UPCA", "012345678905"),), 0.004), ((), 0.004)],
        "combined": [((_code("QRCode", "a"),), 0.002), ((_code("QRCode", "b"),), 0.002),
                     ((_code("UPCA", "012345678905"),), 0.002), ((), 0.002)],
    }
    result = summarise(SAMPLES, results, "data", repeats=1)
    rows = {r.reader: r for r in result.readers}
    assert (rows["fast"].read, rows["fast"].other, rows["fast"].false_positives) == (1, 2, 1)
    assert (rows["slow"].read, rows["slow"].other, rows["slow"].false_positives) == (3, 1, 0)
    assert result.baseline == "slow"  # the single backend that reads the most, whatever its speed
    assert rows["combined"].time_ratio == 0.5 and rows["fast"].time_ratio == 0.25
    assert result.target_met() is True
    folder = {(r.reader, r.folder): r for r in result.folders}
    assert folder[("fast", "falsepositives-2")].other == 1 and folder[("slow", "qrcode-1")].ms_per_image == 4.0


@pytest.mark.parametrize(("read", "ratio", "false_positives", "met"), [
    (10, 1.0, 0, True),
    (10, 1.2, 0, True),
    (10, 1.21, 0, False),  # too slow
    (9, 1.0, 0, False),  # reads less than the baseline
    (12, 0.9, 1, False),  # a false positive
])
def test_target(read, ratio, false_positives, met):
    base = ReaderRow("zxing-cpp", 20, 10, 0, 0, 2.0, 1.0)
    combined = ReaderRow("combined", 20, read, 0, false_positives, 2.0 * ratio, ratio)
    assert BenchResult("d", 1, "zxing-cpp", readers=[base, combined]).target_met() is met


def test_bench_on_made_up_data_end_to_end(data):
    result = bench_codes.bench_codes(data, repeats=1)
    rows = {r.reader: r for r in result.readers}
    assert set(rows) == {"zxing-cpp", "pyzbar", "combined", "combined+empty"}
    assert all((r.images, r.read, r.other, r.false_positives) == (4, 4, 0, 0) for r in rows.values())
    assert isinstance(result.target_met(), bool)
    table = bench_codes.format_table(result)
    for word in ("qrcode-1", "upca-1", "falsepositives-2", "false positives", "target", "combined"):
        assert word in table


def test_cli_bench_codes_json_and_missing_data(data, capsys):
    assert main(["bench", "codes", "--data", str(data), "--repeats", "1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"data", "baseline", "folders", "readers", "target_met"} <= set(out)
    assert main(["bench", "codes", "--data", str(data / "nope")]) == 2
    assert "no such directory" in capsys.readouterr().err


@pytest.mark.data
def test_bench_on_real_photos(shared_data):
    result = bench_codes.bench_codes(shared_data / "barcodes", repeats=1, limit=3)
    rows = {r.reader: r for r in result.readers}
    assert all(r.false_positives == 0 for r in rows.values())
    assert rows["combined"].read >= max(rows["zxing-cpp"].read, rows["pyzbar"].read)
    assert rows["combined+empty"].read >= rows["combined"].read
    assert rows["combined"].read >= rows["combined"].images - 2  # the first photos of each folder are easy ones
    assert {r.folder for r in result.folders} >= {"ean13-1", "upca-2", "qrcode-2", "falsepositives-2"}
