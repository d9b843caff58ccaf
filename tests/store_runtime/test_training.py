"""The detector recipe: strict parsing, and a smoke run that renders, trains one epoch and exports.

The smoke run keeps `walkout train-detector` alive in CI: an ultralytics upgrade that breaks our
offline settings, the dataset layout or the export shows up here, not months later in a retrain.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import yaml

from store_runtime.training import RECIPE, Recipe, TrainingError

HAS_ULTRALYTICS = importlib.util.find_spec("ultralytics") is not None


def test_the_committed_recipe_parses() -> None:
    recipe = Recipe.load(RECIPE)
    assert {j.role for j in recipe.data} == {"train", "heldout"}
    # The model card's claims rest on held-out seeds that training never saw.
    train_seeds = {(j.seed, j.preset) for j in recipe.data if j.role == "train"}
    assert all((j.seed, j.preset) not in train_seeds and j.preset == "heldout"
               for j in recipe.data if j.role == "heldout")


@pytest.mark.parametrize("change, field", [
    ({"imgsz": 300}, "imgsz"),  # not a multiple of the 32-px stride
    ({"epochs": 0}, "epochs"),
    ({"architecture": {"base": "yolo11", "depth": 0.33, "width": 0.125, "max_channels": 1024, "extra": 1}},
     "extra"),
    ({"data": [{"name": "x", "preset": "train", "seed": 1, "scenarios": 1, "every": 0, "role": "train"}]}, "every"),
    ({"optimiser": "sgd"}, "optimiser"),  # a typo of a key must not pass silently
])
def test_bad_recipes_name_the_field(tmp_path: Path, change: dict, field: str) -> None:
    raw = yaml.safe_load(RECIPE.read_text()) | change
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(TrainingError, match=field):
        Recipe.load(path)


@pytest.mark.slow
@pytest.mark.skipif(not HAS_ULTRALYTICS, reason="needs the train extra (ultralytics, torch)")
def test_smoke_run_renders_trains_exports_and_evaluates(tmp_path: Path, shared_data: Path) -> None:
    from store_runtime.training import train_detector
    from vision.inference.runtime import RuntimeOptions, load_model
    from vision.inference.yolo import YoloDetector

    result = train_detector(RECIPE, tmp_path / "work", data_dir=shared_data, smoke=True, log=lambda _m: None)
    model = YoloDetector(load_model(Path(result["model"]), RuntimeOptions(intra_op_threads=1)))
    assert model.names == ("person", "hand", "product", "phone")
    assert model.batches, "exported without a dynamic batch axis: cameras could not share a run"
    assert set(result["map50_per_class"]) <= set(model.names)
    assert 0.0 <= result["map50"] <= 1.0
