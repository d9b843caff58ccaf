"""The detector recipe: strict parsing, and a smoke run that renders, trains one epoch and exports.

The smoke run keeps `walkout train-detector` alive in CI: an ultralytics upgrade that breaks our
offline settings, the dataset layout or the export shows up here, not months later in a retrain.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from store_runtime.training import (
    RECIPE,
    Architecture,
    Recipe,
    Tiles,
    TrainingError,
    _matches,
    architecture_yaml,
    offline_ultralytics,
    tile_split,
    training_seconds,
)
from vision.synth.scenario import KINDS, goes_to_val

HAS_ULTRALYTICS = importlib.util.find_spec("ultralytics") is not None


RECIPES = sorted(RECIPE.parent.glob("*.recipe.yaml"))


@pytest.mark.parametrize("path", RECIPES, ids=[p.name for p in RECIPES])
def test_the_committed_recipes_parse(path: Path) -> None:
    recipe = Recipe.load(path)
    assert path.name == f"{recipe.name}.recipe.yaml"  # the model, card and manifest entry take its name
    assert {j.role for j in recipe.data} == {"train", "heldout"}
    # The model card's claims rest on held-out seeds that training never saw.
    train_seeds = {(j.seed, j.preset) for j in recipe.data if j.role == "train"}
    assert all((j.seed, j.preset) not in train_seeds and j.preset == "heldout"
               for j in recipe.data if j.role == "heldout")
    # Every training job sends some scenarios to validation.
    for job in recipe.data:
        if job.role == "train":
            seeds = [job.seed + n // len(KINDS) for n in range(job.scenarios)]
            kinds = [KINDS[n % len(KINDS)] for n in range(job.scenarios)]
            assert any(goes_to_val(k, s, recipe.val_every) for s, k in zip(seeds, kinds, strict=True)), job.name


def test_the_smoke_recipe_keeps_one_job_of_each_role_and_no_time_budget() -> None:
    recipe = Recipe.load(RECIPE).scaled(scenarios=1, epochs=1)
    assert [(j.name, j.role, j.scenarios) for j in recipe.data] == [("train-a", "train", 1), ("heldout", "heldout", 1)]
    assert recipe.epochs == 1 and recipe.hours is None


def test_a_detection_counts_once_per_box_of_its_class_at_each_iou_threshold() -> None:
    thresholds = np.linspace(0.5, 0.95, 10)
    true = np.array([0, 1])  # a person and a hand
    predicted = np.array([0, 0, 1, 0])  # in descending confidence: the person twice, the hand, a stray person
    iou = np.array([[0.8, 0.8, 0.0, 0.0],
                    [0.0, 0.0, 0.6, 0.9]])  # the stray "person" lies on the hand: another class, no match
    correct = _matches(predicted, true, iou, thresholds)
    assert correct[0].tolist() == (thresholds <= 0.8).tolist()
    assert not correct[1].any()  # the second box on the person: the person is claimed already
    assert correct[2].tolist() == (thresholds <= 0.6).tolist()
    assert not correct[3].any()


@pytest.mark.parametrize("change, field", [
    ({"imgsz": 300}, "imgsz"),  # not a multiple of the 32-px stride
    ({"epochs": 0}, "epochs"),
    ({"architecture": {"base": "yolo11", "depth": 0.33, "width": 0.125, "max_channels": 1024, "reg_max": 0}},
     "reg_max"),
    ({"architecture": {"base": "yolo11", "depth": 0.33, "width": 0.125, "max_channels": 1024, "extra": 1}},
     "extra"),
    ({"data": [{"name": "x", "preset": "train", "seed": 1, "scenarios": 1, "every": 0, "role": "train"}]}, "every"),
    ({"optimiser": "sgd"}, "optimiser"),  # a typo of a key must not pass silently
    ({"input": [384, 630]}, "input"),
    ({"tiles": {"scale": 0.5, "size": 320, "per_image": 1, "whole": 2.0}}, "whole"),
])
def test_bad_recipes_name_the_field(tmp_path: Path, change: dict, field: str) -> None:
    raw = yaml.safe_load(RECIPE.read_text()) | change
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(TrainingError, match=field):
        Recipe.load(path)


def _one_frame_dataset(root: Path) -> None:
    """A 1280x720 frame with a person (300x500 px) and a 40-px hand at its right edge, YOLO labels."""
    (root / "images" / "train").mkdir(parents=True)
    (root / "labels" / "train").mkdir(parents=True)
    image = np.full((720, 1280, 3), 90, np.uint8)
    cv2.rectangle(image, (800, 150), (1100, 650), (40, 120, 200), -1)
    cv2.circle(image, (1120, 300), 20, (150, 180, 220), -1)
    cv2.imwrite(str(root / "images" / "train" / "f-aisle-00000.jpg"), image)
    (root / "labels" / "train" / "f-aisle-00000.txt").write_text(
        f"0 {950 / 1280} {400 / 720} {300 / 1280} {500 / 720}\n1 {1120 / 1280} {300 / 720} {40 / 1280} {40 / 720}\n")


def _labels_in_pixels(path: Path, size: tuple[int, int]) -> list[tuple[int, tuple[float, ...]]]:
    w, h = size
    out = []
    for line in path.read_text().splitlines():
        c, cx, cy, bw, bh = map(float, line.split())
        out.append((int(c), (cx * w - bw * w / 2, cy * h - bh * h / 2, cx * w + bw * w / 2, cy * h + bh * h / 2)))
    return out


def test_training_time_adds_up_the_sessions_of_a_resumed_run() -> None:
    # results.csv's time restarts in each session that resumed: 12 epochs in 8,199 s, then 2 in 1,155 s.
    assert training_seconds([1469.0, 8199.1, 434.5, 1154.8]) == 9353.9
    assert training_seconds([100.0, 200.0]) == 200.0 and training_seconds([]) is None


def test_tiles_are_cut_at_the_deployed_scale_around_the_hand(tmp_path: Path) -> None:
    _one_frame_dataset(tmp_path / "src")
    tiles = Tiles(scale=0.5, size=320, per_image=2, whole=1.0)
    assert tile_split(tmp_path / "src", tmp_path / "out", "train", tiles, seed=0) == 3
    names = sorted(p.stem for p in (tmp_path / "out" / "images" / "train").glob("*.jpg"))
    assert names == ["f-aisle-00000-t0", "f-aisle-00000-t1", "f-aisle-00000-t2"]
    for name in names[:2]:
        window = cv2.imread(str(tmp_path / "out" / "images" / "train" / f"{name}.jpg"))
        assert window.shape == (320, 320, 3)
        labels = _labels_in_pixels(tmp_path / "out" / "labels" / "train" / f"{name}.txt", (320, 320))
        hands = [box for c, box in labels if c == 1]
        # The hand is 40 px in the frame, 20 px at the deployed scale, and whole in every window.
        assert len(hands) == 1 and all(abs((x2 - x1) - 20) < 1.5 for x1, _, x2, _ in hands)
    whole = cv2.imread(str(tmp_path / "out" / "images" / "train" / "f-aisle-00000-t2.jpg"))
    assert whole.shape == (360, 640, 3)
    again = tmp_path / "again"
    tile_split(tmp_path / "src", again, "train", tiles, seed=0)
    assert all((again / "labels" / "train" / f"{n}.txt").read_text() ==
               (tmp_path / "out" / "labels" / "train" / f"{n}.txt").read_text() for n in names)


def test_frames_of_an_empty_store_are_kept_only_at_the_empty_share(tmp_path: Path) -> None:
    _one_frame_dataset(tmp_path / "src")
    src = tmp_path / "src"
    for i in range(40):
        cv2.imwrite(str(src / "images" / "train" / f"e-aisle-{i:05d}.jpg"), np.zeros((720, 1280, 3), np.uint8))
        (src / "labels" / "train" / f"e-aisle-{i:05d}.txt").write_text("")
    tiles = Tiles(scale=0.5, size=320, per_image=1, whole=0.0, empty=0.25)
    tile_split(tmp_path / "src", tmp_path / "out", "train", tiles, seed=0)
    kept = {p.stem.split("-")[0] for p in (tmp_path / "out" / "images" / "train").glob("*.jpg")}
    empties = len(list((tmp_path / "out" / "images" / "train").glob("e-*.jpg")))
    assert "f" in kept and 3 <= empties <= 18  # the shopper frame always; about a quarter of 40 empty ones


def test_a_box_mostly_cut_off_by_a_window_is_not_labelled(tmp_path: Path) -> None:
    from store_runtime.training import _window_labels

    boxes = np.array([[0, 0, 100, 100], [90, 0, 190, 100]], float)
    text = _window_labels(np.array([0, 1]), boxes, (0, 0, 100, 100), keep_area=0.3)
    assert [line.split()[0] for line in text.splitlines()] == ["0"]  # 10 % of the second box is inside


@pytest.mark.skipif(not HAS_ULTRALYTICS, reason="needs the train extra (ultralytics, torch)")
@pytest.mark.parametrize("reg_max, box_channels", [(16, 64), (1, 16)])
def test_the_box_head_is_as_wide_as_reg_max_needs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   reg_max: int, box_channels: int) -> None:
    for key in ("YOLO_OFFLINE", "YOLO_AUTOINSTALL", "YOLO_CONFIG_DIR"):  # given back after the test
        monkeypatch.setenv(key, "")
    offline_ultralytics(tmp_path / "ultralytics")
    from ultralytics import YOLO

    architecture = Architecture(depth=0.33, width=0.125, max_channels=1024, reg_max=reg_max)
    recipe = Recipe.load(RECIPE).model_copy(update={"architecture": architecture})
    head = YOLO(str(architecture_yaml(recipe, tmp_path / "model.yaml"))).model.model[-1]
    assert head.reg_max == reg_max
    assert {branch[0].conv.out_channels for branch in head.cv2} == {box_channels}


@pytest.mark.slow
@pytest.mark.skipif(not HAS_ULTRALYTICS, reason="needs the train extra (ultralytics, torch)")
def test_smoke_run_renders_trains_exports_and_evaluates(tmp_path: Path, shared_data: Path) -> None:
    from store_runtime.training import train_detector
    from vision.inference.runtime import RuntimeOptions, load_model
    from vision.inference.yolo import YoloDetector

    # Two jobs at once: the smoke recipe's train and held-out jobs render in processes of their own.
    result = train_detector(RECIPE, tmp_path / "work", data_dir=shared_data, smoke=True, jobs=2, log=lambda _m: None)
    model = YoloDetector(load_model(Path(result["model"]), RuntimeOptions(intra_op_threads=1)))
    assert model.names == ("person", "hand", "product", "phone")
    assert model.batches, "exported without a dynamic batch axis: cameras could not share a run"
    assert set(result["map50_per_class"]) <= set(model.names)
    assert 0.0 <= result["map50"] <= 1.0
    assert result["train_epochs"] == 1 and result["trained_on"].startswith("CPU (")
    assert {p.name for p in (tmp_path / "work" / "data").iterdir()} == {"train-a", "heldout"}
