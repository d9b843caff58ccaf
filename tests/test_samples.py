"""The sample scenarios in git are what every later test and evaluation replays: they must follow SPEC
sections 2 and 6 exactly, cover every scenario kind, and stay small."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import pytest
from paths import SAMPLES, sample_dirs

from store_runtime.config import load_scenario
from store_runtime.scoring import score_replay
from vision.synth.scenario import KINDS, SynthOptions, plan_scenario
from vision.video import VideoWriter

SAMPLE_DIRS = sample_dirs()


def test_samples_cover_every_kind_within_the_size_budget() -> None:
    kinds = {json.loads((d / "truth.json").read_text())["kind"] for d in SAMPLE_DIRS}
    assert len(SAMPLE_DIRS) >= 6 and kinds == set(KINDS)
    total = sum(f.stat().st_size for f in SAMPLES.rglob("*") if f.is_file())
    assert total <= 25 * 2**20, f"sample_videos/ is {total / 2**20:.1f} MB"


@pytest.mark.parametrize("scenario_dir", SAMPLE_DIRS, ids=lambda p: p.name)
def test_sample_is_valid_and_its_face_truth_has_a_line_per_frame(scenario_dir: Path) -> None:
    scenario = load_scenario(scenario_dir)
    truth = json.loads(scenario.truth_path.read_text())
    assert truth["version"] == 1 and set(truth["faces"]) == set(scenario.video_paths)
    for camera, video in scenario.video_paths.items():
        cap = cv2.VideoCapture(str(video))
        frames, fps = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), cap.get(cv2.CAP_PROP_FPS)
        cap.release()
        assert frames / fps <= 30.0
        lines = (scenario_dir / truth["faces"][camera]).read_text().splitlines()
        assert len(lines) == frames, f"{camera}: {len(lines)} face lines for {frames} frames"
    catalog = scenario.store.catalog.products
    assert all(b["gtin"] in catalog for c in truth["customers"] for b in c["basket"])


@pytest.mark.parametrize("scenario_dir", SAMPLE_DIRS, ids=lambda p: p.name)
def test_sample_truth_is_what_the_current_renderer_makes(scenario_dir: Path, shared_data: Path) -> None:
    """`walkout synth --samples` must reproduce the samples in git byte for byte: a change to the world
    that shifts a random draw silently detaches the samples from the code that claims to make them."""
    truth_bytes = (scenario_dir / "truth.json").read_bytes()
    truth = json.loads(truth_bytes)
    refusal = truth["refused"][0]["reason"] if truth["refused"] else None
    plan = plan_scenario(SynthOptions(kind=truth["kind"], seed=truth["seed"], data_dir=shared_data, refusal=refusal))
    assert plan.truth_json().encode() == truth_bytes


def _blur_truth_faces(src: Path, faces: Path, dst: Path) -> None:
    """A private video made by blurring exactly the true face boxes: what a perfect redactor lets out."""
    boxes = [json.loads(line)["boxes"] for line in faces.read_text().splitlines()]
    cap = cv2.VideoCapture(str(src))
    size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    with VideoWriter(dst, size, round(cap.get(cv2.CAP_PROP_FPS))) as out:
        for frame_boxes in boxes:
            ok, frame = cap.read()
            assert ok
            for x1, y1, x2, y2 in frame_boxes:
                x1, y1, x2, y2 = int(x1), int(y1), int(x2 + 1), int(y2 + 1)
                frame[y1:y2, x1:x2] = cv2.GaussianBlur(frame[y1:y2, x1:x2], (0, 0), 8)
            out.write(frame)
    cap.release()


@pytest.mark.slow
def test_truth_replayed_as_output_scores_perfectly(tmp_path: Path) -> None:
    """Scoring and samples agree: the truth as output scores 1.0, and blurring the true face boxes
    anonymises every one of them (so each box really covers a face with detail to hide)."""
    scenario_dir = next(d for d in SAMPLE_DIRS if json.loads((d / "truth.json").read_text())["kind"] == "family")
    scenario = load_scenario(scenario_dir)
    truth = json.loads(scenario.truth_path.read_text())
    prices = {g: p.price_cents for g, p in scenario.store.catalog.products.items()}
    receipts = [{"customer": c["customer"], "session": f"s-{i}", "entered_t": c["entered_t"],
                 "exited_t": c["exited_t"], "status": "charged",
                 "lines": [{"gtin": b["gtin"], "qty": b["qty"], "unit_cents": prices[b["gtin"]]} for b in c["basket"]],
                 "total_cents": sum(b["qty"] * prices[b["gtin"]] for b in c["basket"])}
                for i, c in enumerate(truth["customers"])]
    (tmp_path / "private").mkdir()
    (tmp_path / "receipts.json").write_text(json.dumps({"receipts": receipts}))
    (tmp_path / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in truth["events"]))
    for camera, video in scenario.video_paths.items():
        _blur_truth_faces(video, scenario_dir / truth["faces"][camera], tmp_path / "private" / f"{camera}.mp4")
    metrics = score_replay(scenario_dir, tmp_path, prices=prices, camera_videos=scenario.video_paths,
                           wall_seconds=None, recorded_seconds=None)
    assert (metrics["receipt_accuracy"], metrics["event_f1"], metrics["charge_error_cents"]) == (1.0, 1.0, 0)
    assert metrics["face_recall"] >= 0.99, metrics["details"]["faces"]
    # And the unblurred recording itself anonymises nothing: the boxes are not on empty wall.
    for camera, video in scenario.video_paths.items():
        shutil.copy(video, tmp_path / "private" / f"{camera}.mp4")
    raw = score_replay(scenario_dir, tmp_path, prices=prices, camera_videos=scenario.video_paths,
                       wall_seconds=None, recorded_seconds=None)
    assert raw["face_recall"] <= 0.05
