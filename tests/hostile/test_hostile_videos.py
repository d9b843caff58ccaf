"""Damaged, cut and fake videos through `walkout replay`, `walkout blur` and `walkout codes` (SPEC
sections 5 and 8): one line naming the file, and the frame where the damage is inside a video, exit
code 2, no traceback, and what an earlier run wrote left exactly as it was.

A replay into a folder that held an earlier replay used to stop at the damaged frame with the
private videos already replaced by partial ones and the earlier receipts.json kept: a folder of two
runs. And `walkout codes` said "after frame 40" where `walkout blur` said "frame 41" for the same
file; both now name the first frame not read, counted from 0 as SPEC's "frame" fields are.

The videos are one tiny clip (64x48, 10 frames, no B-frames, so packet k is frame k) encoded here and
damaged at known packets; a replay needs a scenario, so one is written around it: a store with one
gate camera, a one-product catalog.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from paths import SAMPLES

from store_runtime.cli import main
from store_runtime.replay import STAGING_PREFIX

FRAMES, SIZE, FPS = 10, (64, 48), 10
GTIN = "2088972807856"  # a product of the samples' catalogs


def encode(path: Path) -> Path:
    """The tiny clip: moving noise, the index first (a cut keeps it readable), a keyframe every 4."""
    base = np.random.default_rng(7).integers(0, 255, (SIZE[1], SIZE[0], 3), dtype=np.uint8)
    with av.open(str(path), mode="w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height = SIZE
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "30", "preset": "ultrafast", "threads": "1", "bframes": "0", "g": "4"}
        for i in range(FRAMES):
            frame = av.VideoFrame.from_ndarray(np.roll(base, 3 * i, axis=1), format="bgr24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def no_frames(path: Path) -> bytes:
    """An MP4 with a video stream and not one frame in it."""
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height = SIZE
        stream.pix_fmt = "yuv420p"
        container.start_encoding()
    return path.read_bytes()


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, list[tuple[int, int]]]:
    """The clip's bytes and, frame by frame, its packet's (byte offset, size)."""
    path = encode(tmp_path_factory.mktemp("clip") / "clip.mp4")
    with av.open(str(path)) as container:
        packets = [(p.pos, p.size) for p in container.demux(video=0) if p.size]
    assert len(packets) == FRAMES
    return path.read_bytes(), packets


def overwrite(data: bytes, at: int, fill: bytes) -> bytes:
    return data[:at] + fill + data[at + len(fill):]


Damage = Callable[[bytes, list[tuple[int, int]]], bytes]
# name -> (the damage, the first frame that cannot be read: where the error must say it is)
DAMAGED: dict[str, tuple[Damage, int]] = {
    "cut inside frame 6": (lambda d, p: d[:p[6][0] + 10], 6),
    "cut where frame 6 begins": (lambda d, p: d[:p[6][0]], 6),
    "cut inside frame 9, the last": (lambda d, p: d[:p[9][0] + p[9][1] // 2], 9),
    "cut inside frame 0": (lambda d, p: d[:p[0][0] + 100], 0),
    "zeros over frame 5": (lambda d, p: overwrite(d, p[5][0], bytes(p[5][1])), 5),
    "random bytes over frame 3": (lambda d, p: overwrite(
        d, p[3][0], np.random.default_rng(3).integers(0, 256, p[3][1], dtype=np.uint8).tobytes()), 3),
    "a NAL length past the packet in frame 1": (lambda d, p: overwrite(d, p[1][0], b"\xff" * 4), 1),
}
# name -> (file name, what it holds); none of them is a video that opens
NOT_VIDEOS: dict[str, tuple[str, Callable[[bytes, Path], bytes]]] = {
    "zero length": ("empty.mp4", lambda d, tmp: b""),
    "text renamed .mp4": ("notes.mp4", lambda d, tmp: b"hello, this is not a video\n" * 20),
    "the index cut off": ("headless.mp4", lambda d, tmp: d[:400]),
    "random bytes over the index": ("scrambled.mp4", lambda d, tmp: overwrite(
        d, 40, np.random.default_rng(9).integers(0, 256, 600, dtype=np.uint8).tobytes())),
    "no frame at all": ("zero-frames.mp4", lambda d, tmp: no_frames(tmp / "zero-frames-source.mp4")),
}


def one_line(err: str, command: str, path: Path) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"walkout {command}: ") and str(path) in lines[0], err
    assert "Traceback" not in err
    return lines[0]


def frame_named(line: str) -> int:
    found = re.findall(r"frame (\d+)", line)
    assert len(found) == 1, line
    return int(found[0])


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under `folder`, by relative path, with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------------------------------- codes, blur


@pytest.mark.parametrize("name", DAMAGED)
def test_codes_and_blur_name_the_file_and_the_same_frame(tmp_path: Path, clip, name: str,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    data, packets = clip
    damage, frame = DAMAGED[name]
    bad = tmp_path / "damaged.mp4"
    bad.write_bytes(damage(data, packets))
    good = tmp_path / "still.png"
    cv2.imwrite(str(good), np.full((48, 64, 3), 128, np.uint8))

    assert main(["codes", str(bad), str(good), "--json"]) == 2  # the bad file is named, the good one still read
    captured = capsys.readouterr()
    assert frame_named(one_line(captured.err, "codes", bad)) == frame
    assert captured.out.count('"file"') == 1 and str(good) in captured.out

    previous = tmp_path / "blurred.mp4"
    previous.write_bytes(b"an earlier blurred copy")
    assert main(["blur", str(bad), "--out", str(previous)]) == 2
    assert frame_named(one_line(capsys.readouterr().err, "blur", bad)) == frame
    assert previous.read_bytes() == b"an earlier blurred copy"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blurred.mp4", "damaged.mp4", "still.png"]


@pytest.mark.parametrize("name", NOT_VIDEOS)
def test_files_that_are_no_video_are_named_by_codes_and_blur(tmp_path: Path, clip, name: str,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    file_name, make = NOT_VIDEOS[name]
    bad = tmp_path / file_name
    bad.write_bytes(make(clip[0], tmp_path))
    assert main(["codes", str(bad)]) == 2
    one_line(capsys.readouterr().err, "codes", bad)
    previous = tmp_path / "blurred.mp4"
    previous.write_bytes(b"an earlier blurred copy")
    assert main(["blur", str(bad), "--out", str(previous)]) == 2
    one_line(capsys.readouterr().err, "blur", bad)
    assert previous.read_bytes() == b"an earlier blurred copy" and not list(tmp_path.glob(".*"))


def test_a_wrong_extension_is_judged_by_what_the_file_holds(tmp_path: Path, clip,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """`codes` reads by content; `blur` writes a copy of the kind the input's name says, so a name
    that says neither image nor video, or says image over a video, is refused before any work."""
    video_as_text = tmp_path / "clip.txt"
    video_as_text.write_bytes(clip[0])
    video_as_png = tmp_path / "clip.png"
    video_as_png.write_bytes(clip[0])
    assert main(["codes", str(video_as_text), str(video_as_png), "--json"]) == 0
    assert capsys.readouterr().out.count('"codes": []') == 2  # both read as the videos they are
    assert main(["blur", str(video_as_text), "--out", str(tmp_path / "out.mp4")]) == 2
    assert "unsupported file type .txt" in one_line(capsys.readouterr().err, "blur", video_as_text)
    assert main(["blur", str(video_as_png), "--out", str(tmp_path / "out.png")]) == 2
    assert "cannot decode the image" in one_line(capsys.readouterr().err, "blur", video_as_png)
    assert not (tmp_path / "out.mp4").exists() and not (tmp_path / "out.png").exists()


# ------------------------------------------------------------------------------------------------ replay


def scenario(folder: Path, video: bytes, name: str = "gate.mp4") -> Path:
    """A scenario whose one camera, at the entry gate, recorded `video`."""
    (folder / "cameras").mkdir(parents=True)
    (folder / "cameras" / name).write_bytes(video)
    cv2.imwrite(str(folder / "product.png"), np.full((8, 8, 3), 200, np.uint8))
    (folder / "catalog.csv").write_text(f"gtin,name,price_cents,image\n{GTIN},Oat milk,359,product.png\n")
    store = (SAMPLES / "02-pick-put" / "store.yaml").read_text().split("\ncameras:")[0]
    (folder / "store.yaml").write_text(store + "\ncameras:\n  gate:\n    role: gate\n    gate: entry-1\n"
                                       f"    size: [{SIZE[0]}, {SIZE[1]}]\n    fps: {FPS}\n")
    (folder / "scenario.yaml").write_text("version: 1\nstore: store.yaml\nstart: '2026-11-22T09:00:00Z'\n"
                                          f"cameras:\n  gate: {{video: cameras/{name}}}\n")
    return folder


@pytest.fixture(scope="module")
def earlier(tmp_path_factory: pytest.TempPathFactory, clip) -> Path:
    """The output of a replay of the intact clip, as a user's earlier run left it."""
    root = tmp_path_factory.mktemp("earlier")
    out = root / "out"
    assert main(["replay", str(scenario(root / "scenario", clip[0])), "--out", str(out)]) == 0
    assert sorted(tree(out)) == ["events.jsonl", "private/gate.mp4", "receipts.json", "report.html"]
    return out


REPLAYED = {**{name: (damage, frame) for name, (damage, frame) in DAMAGED.items()
               if name in ("cut inside frame 6", "zeros over frame 5", "cut inside frame 0")},
            **{name: (lambda d, p, make=make: make(d, Path("/nonexistent")), None)
               for name, (_, make) in NOT_VIDEOS.items() if name != "no frame at all"}}


@pytest.mark.parametrize("name", REPLAYED)
def test_a_failed_replay_leaves_the_earlier_output_whole(tmp_path: Path, clip, earlier: Path, name: str,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    damage, frame = REPLAYED[name]
    sdir = scenario(tmp_path / "scenario", damage(*clip))
    out = tmp_path / "out"
    shutil.copytree(earlier, out)
    before = tree(out)
    capsys.readouterr()
    assert main(["replay", str(sdir), "--out", str(out)]) == 2
    line = one_line(capsys.readouterr().err, "replay", sdir / "cameras" / "gate.mp4")
    if frame is not None:
        assert frame_named(line) == frame
    assert tree(out) == before
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in earlier.iterdir())
    assert not list(out.glob(STAGING_PREFIX + "*"))  # the failed run's hidden folder went with it


def test_a_replay_with_no_frame_fails_and_makes_no_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sdir = scenario(tmp_path / "scenario", no_frames(tmp_path / "zero.mp4"))
    out = tmp_path / "new" / "out"
    assert main(["replay", str(sdir), "--out", str(out)]) == 2
    one_line(capsys.readouterr().err, "replay", sdir / "cameras" / "gate.mp4")
    assert not out.exists()


def test_a_replay_that_succeeds_replaces_every_output_of_the_earlier_run(tmp_path: Path, clip, earlier: Path,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """Into a folder holding another run's outputs (metrics.json of a --truth run, a camera no longer
    in the scenario) and a file of the user's: the new run's outputs, byte for byte those of a replay
    into an empty folder, none of the old run's, and the user's file kept."""
    out = tmp_path / "out"
    (out / "private").mkdir(parents=True)
    (out / "private" / "aisle.mp4").write_bytes(b"a camera of another scenario")
    (out / "metrics.json").write_text('{"receipt_accuracy": 1.0}')
    (out / "receipts.json").write_text('{"receipts": ["another run"]}')
    (out / "notes.txt").write_text("mine")
    assert main(["replay", str(scenario(tmp_path / "scenario", clip[0])), "--out", str(out)]) == 0
    capsys.readouterr()
    after = tree(out)
    assert after.pop("notes.txt") == b"mine"
    expected = tree(earlier)
    assert after.pop("report.html").startswith(b"<") and expected.pop("report.html")  # times measured differ
    assert after == expected


def test_replay_into_a_file_is_one_line(tmp_path: Path, clip, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    out.write_text("not a folder")
    assert main(["replay", str(scenario(tmp_path / "scenario", clip[0])), "--out", str(out)]) == 2
    one_line(capsys.readouterr().err, "replay", out)
    assert out.read_text() == "not a folder"
