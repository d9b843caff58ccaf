"""Sample scenarios through `walkout replay`, the way an evaluation runs it, scored by SPEC section 6.

These are the system's own acceptance figures: the real detector, tracker, shelf stage, redactor
and store runtime, end to end. A sample that does not reach the issue's target yet is marked with
the reason in KNOWN, strictly, so that fixing it shows up.

A replay costs about 70 CPU seconds a sample on a 2-core machine, so `make test` replays one
sample (picks and a put) and replays it again for determinism, to stay inside CI's time;
`make test-replays` (WALKOUT_REPLAY_SAMPLES=all) replays all eight, and the README's figures come
from it. Both replays write review clips (`--clips`): a second of encoding, checked here for
blurred faces and for the same clips of the same frames twice.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from paths import SAMPLES

from store_runtime.cli import main
from store_runtime.replay import ReplayOptions, replay

pytestmark = pytest.mark.slow

# Known shortfalls, by sample: (metric, why). Everything else must reach receipt accuracy 1.0,
# event F1 1.0, no charge error and the face recall target.
FACE_RECALL_TARGET = 0.995
# None today: every sample reaches every target with the detector in models/ (measured 2026-11-22).
KNOWN: dict[str, dict[str, str]] = {}


DEFAULT_SAMPLES = ("02-pick-put",)


def _samples() -> list[str]:
    every = sorted(p.name for p in SAMPLES.iterdir() if (p / "scenario.yaml").is_file())
    chosen = os.environ.get("WALKOUT_REPLAY_SAMPLES", ",".join(DEFAULT_SAMPLES))
    return every if chosen == "all" else [name for name in every if name in chosen.split(",")]


@pytest.fixture(scope="module")
def replays(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each sample replayed once for the whole module (a replay takes tens of seconds)."""
    out = tmp_path_factory.mktemp("replays")
    for name in _samples():
        replay(SAMPLES / name, out / name, ReplayOptions(truth=True, clips=out / name / "clips"))
    return {name: out / name for name in _samples()}


def _metric_cases() -> list:
    cases = []
    for name in _samples():
        for metric in ("receipt_accuracy", "event_f1", "charge_error_cents", "face_recall"):
            why = KNOWN.get(name, {}).get(metric)
            marks = [pytest.mark.xfail(reason=why, strict=True)] if why else []
            cases.append(pytest.param(name, metric, marks=marks, id=f"{name}-{metric}"))
    return cases


@pytest.mark.parametrize("name, metric", _metric_cases())
def test_sample_reaches_its_target(replays: dict[str, Path], name: str, metric: str) -> None:
    metrics = json.loads((replays[name] / "metrics.json").read_text())
    value = metrics[metric]
    details = metrics["details"]
    if metric == "face_recall":
        assert value >= FACE_RECALL_TARGET, details["faces"]
    elif metric == "charge_error_cents":
        assert value == 0, details["charges"]
    elif metric == "event_f1":
        assert value == 1.0, details["events"]
    else:
        assert value == 1.0, details["receipts"]


@pytest.mark.parametrize("name", _samples())
def test_outputs_follow_spec_section_5(replays: dict[str, Path], name: str) -> None:
    out = replays[name]
    receipts = json.loads((out / "receipts.json").read_text())["receipts"]
    truth = json.loads((SAMPLES / name / "truth.json").read_text())
    admitted = [c for c in truth["customers"] if c.get("token")]
    assert len(receipts) <= len(admitted) + 1
    for r in receipts:
        assert set(r) >= {"customer", "session", "entered_t", "exited_t", "lines", "total_cents", "status"}
        assert r["status"] in {"charged", "review", "open"}
        assert r["total_cents"] == sum(line["qty"] * line["unit_cents"] for line in r["lines"])
    times = [json.loads(line)["t"] for line in (out / "events.jsonl").read_text().splitlines()]
    assert times == sorted(times)
    for camera in ("gate", "aisle"):
        assert (out / "private" / f"{camera}.mp4").stat().st_size > 0
    assert "<h1>Replay of" in (out / "report.html").read_text()


def test_a_second_replay_gives_the_same_receipts_and_events(replays: dict[str, Path], tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    # Through the command a user types, which must agree with the library call the fixture made.
    name = "02-pick-put"
    assert main(["replay", str(SAMPLES / name), "--out", str(tmp_path / "again"), "--clips",
                 str(tmp_path / "again" / "clips")]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["receipts"] == 1 and summary["clips"]["aisle"]["written"] == 3
    # Byte for byte, the private videos and clips too: cameras and their face blurring run in threads of
    # their own, and a replay has no wall-clock budget to blur a late frame whole, so nothing in the
    # outputs depends on which thread was faster.
    for file in ("receipts.json", "events.jsonl", "private/gate.mp4", "private/aisle.mp4"):
        assert (tmp_path / "again" / file).read_bytes() == (replays[name] / file).read_bytes(), file
    clips = sorted((replays[name] / "clips").iterdir())
    assert [c.name for c in clips] == sorted(c.name for c in (tmp_path / "again" / "clips").iterdir())
    for clip in clips:
        assert clip.read_bytes() == (tmp_path / "again" / "clips" / clip.name).read_bytes(), clip.name


@pytest.mark.parametrize("name", _samples())
def test_each_shelf_event_has_a_playable_clip_with_every_face_blurred(replays: dict[str, Path], name: str) -> None:
    import av
    import cv2

    from store_runtime.scoring import frame_face_recall, read_faces
    from vision.sources import FileSource, SourceConfig

    clips = sorted((replays[name] / "clips").glob("*.webm"))
    events = (replays[name] / "events.jsonl").read_text().splitlines()
    assert len(clips) == len(events), "one clip per shelf event, in a basket or in review"
    faces = read_faces(SAMPLES / name / "faces" / "aisle.jsonl")
    wanted: dict[int, list] = {}
    for clip in clips:
        with av.open(str(clip)) as container:
            assert container.streams.video[0].codec_context.name == "vp8"
            frames = [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]
            kept = [int(i) for i in container.metadata["WALKOUT_FRAMES"].split(",")]
        assert len(frames) == len(kept) >= 15 and frames[0].shape == (360, 640, 3), clip.name  # 4 s at 5 fps
        for index, picture in zip(kept, frames, strict=True):
            wanted.setdefault(index, []).append(picture)
    anonymized = total = 0
    with FileSource(SourceConfig(kind="file", uri=SAMPLES / name / "cameras" / "aisle.mp4", camera="aisle")) as src:
        for frame in src:
            for picture in wanted.get(frame.index, []):
                original = cv2.resize(frame.image, (640, 360), interpolation=cv2.INTER_AREA)
                boxes = [tuple(v / 2 for v in box) for box in faces.get(frame.index, [])]
                recall = frame_face_recall(original, picture, boxes)
                anonymized, total = anonymized + recall.anonymized, total + recall.total
    assert total > 0, "the clips show the shopper's face: the check has something to check"
    assert anonymized / total >= FACE_RECALL_TARGET, (anonymized, total)


def test_a_bad_scenario_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "scenario.yaml").write_text("version: 1\nstore: store.yaml\n")
    assert main(["replay", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "scenario.yaml" in err and "Traceback" not in err


def test_a_cut_recording_is_a_clear_error_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    scenario = Path(shutil.copytree(SAMPLES / "01-single", tmp_path / "cut"))
    video = scenario / "cameras" / "gate.mp4"
    video.write_bytes(video.read_bytes()[: video.stat().st_size // 3])
    assert main(["replay", str(scenario), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "gate.mp4" in err and "Traceback" not in err
