"""`walkout train-detector`: render data, train, export, evaluate and document our detector.

Each step leaves its result in the work folder and is skipped when that result is already there,
so an interrupted run picks up where it stopped (training itself resumes from its last
checkpoint). Needs the `train` extra (ultralytics, torch); runs offline.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from vision.inference.manifest import MANIFEST, MODELS_DIR, sha256_of
from vision.synth.dataset import CLASSES

RECIPE = MODELS_DIR / "walkout-det.recipe.yaml"


class TrainingError(Exception):
    """A recipe or environment problem that stops training, said in one line."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Architecture(_Strict):
    base: Literal["yolo11"] = "yolo11"
    depth: float = Field(gt=0, le=1.0)
    width: float = Field(gt=0, le=1.5)
    max_channels: int = Field(ge=64, le=2048)
    # Box sides as a distribution over reg_max bins (DFL, YOLO11's 16), or regressed directly at 1 (as
    # YOLO26 does). The box head is max(16, 4 x reg_max) channels wide at every stride, whatever the
    # width: at width 0.125 and reg_max 16 it was a third of the model's cost.
    reg_max: int = Field(default=16, ge=1, le=32)


class DataJob(_Strict):
    name: str = Field(pattern=r"^[a-z0-9-]{1,40}$")
    preset: Literal["sample", "train", "heldout"]
    seed: int = Field(ge=0)
    scenarios: int = Field(ge=1, le=10_000)
    every: int = Field(ge=1)
    role: Literal["train", "heldout"]


class Tiles(_Strict):
    """Training windows cut from the rendered frames at the deployed scale.

    The camera node runs the detector on the whole frame at `Recipe.input`; what limits it is the
    smallest object (a hand is about 40 px in a 1280 px aisle frame). Training on whole frames at
    that input size costs pixels the hands do not need, so each frame is scaled as the node will
    scale it and cut into `per_image` windows of `size` px, each centred near a hand or another
    small object, plus the whole scaled frame for a share `whole` of frames (people at the gate are
    bigger than any window). Most rendered frames show an empty store (before the first shopper,
    after the last); only a share `empty` of those is kept, so epochs are spent on shoppers.
    """

    scale: float = Field(gt=0, le=1)
    size: int = Field(ge=64, le=1280, multiple_of=32)
    per_image: int = Field(ge=1, le=8)
    whole: float = Field(default=0.3, ge=0, le=1)
    empty: float = Field(default=1.0, ge=0, le=1)
    keep_area: float = Field(default=0.3, gt=0, le=1)  # a cut box stays labelled if this much of it remains


class Recipe(_Strict):
    name: str = Field(pattern=r"^[a-z0-9-]{1,40}$")
    architecture: Architecture
    imgsz: int = Field(ge=64, le=1280, multiple_of=32)
    # What the exported model takes, [height, width]: the node letterboxes whole frames to it.
    input: tuple[int, int] | None = None
    tiles: Tiles | None = None
    epochs: int = Field(ge=1)
    # A time budget instead: ultralytics times the first epoch and re-plans the epochs (and the
    # learning-rate schedule) to end within it; the model card gives the epochs it came to.
    hours: float | None = Field(default=None, gt=0, le=240)
    batch: int = Field(ge=1)
    seed: int = 0
    data: tuple[DataJob, ...]
    val_every: int = Field(ge=2)
    train_args: dict[str, float | int | str | bool] = Field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> Recipe:
        try:
            return cls.model_validate(yaml.safe_load(Path(path).read_text(encoding="utf-8")))
        except FileNotFoundError as exc:
            raise TrainingError(f"{path}: recipe not found") from exc
        except (yaml.YAMLError, ValidationError) as exc:
            raise TrainingError(f"{path}: not a valid training recipe: {exc}") from exc

    @field_validator("input")
    @classmethod
    def _input_multiple_of_32(cls, value: tuple[int, int] | None) -> tuple[int, int] | None:
        if value is not None and any(v < 64 or v > 2048 or v % 32 for v in value):
            raise ValueError(f"input must be [height, width], multiples of 32 from 64 to 2048, got {list(value)}")
        return value

    @property
    def model_input(self) -> tuple[int, int]:
        return self.input or (self.imgsz, self.imgsz)

    def scaled(self, scenarios: int, epochs: int) -> Recipe:
        """The same recipe on the first job of each role, fewer scenarios and fewer epochs, with no time
        budget (the smoke test's)."""
        firsts = [job for n, job in enumerate(self.data) if job.role not in {j.role for j in self.data[:n]}]
        data = tuple(job.model_copy(update={"scenarios": min(job.scenarios, scenarios)}) for job in firsts)
        return self.model_copy(update={"data": data, "epochs": epochs, "hours": None})


@dataclass(frozen=True)
class Workspace:
    root: Path

    def job(self, job: DataJob) -> Path:
        return self.root / "data" / job.name

    def tiles(self, job: DataJob) -> Path:
        return self.root / "tiles" / job.name

    @property
    def run(self) -> Path:
        return self.root / "train"

    @property
    def last(self) -> Path:
        return self.run / "weights" / "last.pt"

    @property
    def best(self) -> Path:
        return self.run / "weights" / "best.pt"


def offline_ultralytics(config_dir: Path) -> None:
    """Settings that keep ultralytics from reaching the network; set before it is imported.

    It wants a font for its plots under YOLO_CONFIG_DIR and would download Arial otherwise: any
    TTF will do, and matplotlib (one of its dependencies) ships DejaVu Sans.
    """
    font = config_dir / "Ultralytics" / "Arial.ttf"
    if not font.exists():
        import matplotlib

        font.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf", font)
    os.environ.update(YOLO_OFFLINE="1", YOLO_AUTOINSTALL="0", YOLO_CONFIG_DIR=str(config_dir))


def architecture_yaml(recipe: Recipe, path: Path) -> Path:
    """Write the model yaml: ultralytics' YOLO11 layer list at the recipe's compound scale."""
    from ultralytics.utils import ROOT

    base = yaml.safe_load((ROOT / "cfg" / "models" / "11" / "yolo11.yaml").read_text())
    a = recipe.architecture
    base.update(nc=len(CLASSES), scales={"w": [a.depth, a.width, a.max_channels]}, scale="w", reg_max=a.reg_max)
    path.write_text(yaml.safe_dump(base, sort_keys=False))
    return path


def render_data(recipe: Recipe, ws: Workspace, data_dir: Path | None, log=print, jobs: int = 1) -> None:
    """Render every data job not rendered yet, `jobs` of them at a time (each in a process of its own:
    a job's frames depend only on its seed, so they are the same however many run at once)."""
    todo = [job for job in recipe.data if not (ws.job(job) / "done.json").exists()]
    calls = [(job, (recipe, job, ws.job(job), data_dir)) for job in todo]
    for job, done in _each_in_processes(_render_job, calls, jobs):
        log(f"rendered {job.name}: {done}")


def _render_job(recipe: Recipe, job: DataJob, target: Path, data_dir: Path | None) -> dict[str, Any]:
    from vision.synth.dataset import DatasetWriter
    from vision.synth.scenario import KINDS, render_many

    if target.exists():
        shutil.rmtree(target)  # a job interrupted mid-scenario: its frames are incomplete
    writer = DatasetWriter(target / "dataset", every=job.every)
    val_every = recipe.val_every if job.role == "train" else 10**9  # held-out frames all in one split
    started = time.perf_counter()
    for summary in render_many(target, kinds=KINDS, seed=job.seed, scenarios=job.scenarios, preset=job.preset,
                               data_dir=data_dir, dataset=writer, val_every=val_every, videos=False):
        shutil.rmtree(summary["dir"])  # the dataset keeps the frames
    writer.finish()
    done = {"images": writer.counts, "seconds": round(time.perf_counter() - started, 1)}
    (target / "done.json").write_text(json.dumps(done))
    return done


def tile_data(recipe: Recipe, ws: Workspace, log=print, jobs: int = 1) -> None:
    """Cut the training jobs' frames into windows at the deployed scale (see `Tiles`)."""
    if recipe.tiles is None:
        return
    todo = [job for job in recipe.data if job.role == "train" and not (ws.tiles(job) / "done.json").exists()]
    calls = [(job, (recipe, ws.job(job), ws.tiles(job))) for job in todo]
    for job, counts in _each_in_processes(_tile_job, calls, jobs):
        log(f"tiled {job.name}: {counts}")


def _tile_job(recipe: Recipe, source: Path, target: Path) -> dict[str, int]:
    assert recipe.tiles is not None
    if target.exists():
        shutil.rmtree(target)
    counts = {split: tile_split(source / "dataset", target, split, recipe.tiles, recipe.seed)
              for split in ("train", "val")}
    (target / "done.json").write_text(json.dumps({"images": counts}))
    return counts


def _each_in_processes(work, calls: list[tuple[DataJob, tuple]], jobs: int):
    """Yield (job, work(*args)) for each (job, args) of `calls`, in order; with jobs > 1 in that many
    processes, each limited to one OpenCV thread so they do not crowd each other."""
    if jobs <= 1 or len(calls) <= 1:
        for job, args in calls:
            yield job, work(*args)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    context = multiprocessing.get_context("spawn")  # no fork of a process that may hold threads
    with ProcessPoolExecutor(min(jobs, len(calls)), mp_context=context, initializer=_one_cv_thread) as pool:
        futures = [pool.submit(work, *args) for _job, args in calls]
        for (job, _args), future in zip(calls, futures, strict=True):
            yield job, future.result()


def _one_cv_thread() -> None:
    import cv2

    cv2.setNumThreads(1)


def tile_split(source: Path, target: Path, split: str, tiles: Tiles, seed: int) -> int:
    import zlib

    import cv2

    (target / "images" / split).mkdir(parents=True, exist_ok=True)
    (target / "labels" / split).mkdir(parents=True, exist_ok=True)
    written = 0
    for image_path in sorted((source / "images" / split).glob("*.jpg")):
        image = cv2.imread(str(image_path))
        h, w = image.shape[:2]
        image = cv2.resize(image, (round(w * tiles.scale), round(h * tiles.scale)), interpolation=cv2.INTER_AREA)
        h, w = image.shape[:2]
        labels = np.loadtxt(source / "labels" / split / f"{image_path.stem}.txt", ndmin=2).reshape(-1, 5)
        cls, boxes = labels[:, 0].astype(int), _xyxy(labels[:, 1:], w, h)
        # Seeded by the frame's name, so a resumed or repeated run cuts the same windows.
        rng = np.random.default_rng([seed, zlib.crc32(image_path.stem.encode())])
        if not len(cls) and rng.random() >= tiles.empty:
            continue
        windows = [_window(rng, cls, boxes, w, h, tiles.size) for _ in range(tiles.per_image)]
        windows += [(0, 0, w, h)] if rng.random() < tiles.whole else []
        for i, (x, y, ww, wh) in enumerate(windows):
            name = f"{image_path.stem}-t{i}"
            cv2.imwrite(str(target / "images" / split / f"{name}.jpg"), image[y:y + wh, x:x + ww],
                        [cv2.IMWRITE_JPEG_QUALITY, 92])
            (target / "labels" / split / f"{name}.txt").write_text(
                _window_labels(cls, boxes, (x, y, ww, wh), tiles.keep_area))
            written += 1
    return written


def _xyxy(cxcywh: np.ndarray, w: int, h: int) -> np.ndarray:
    cx, cy, bw, bh = (cxcywh * [w, h, w, h]).T
    return np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1)


def _window(rng: np.random.Generator, cls: np.ndarray, boxes: np.ndarray, w: int, h: int, size: int
            ) -> tuple[int, int, int, int]:
    """A size x size window (or the whole side when the frame is smaller) around a random small object:
    hands first, then products and phones, else anywhere."""
    ww, wh = min(size, w), min(size, h)
    small = np.flatnonzero(cls == CLASSES.index("hand"))
    if not len(small):
        small = np.flatnonzero(cls != CLASSES.index("person"))
    if len(small):
        x1, y1, x2, y2 = boxes[rng.choice(small)]
        cx, cy = (x1 + x2) / 2 + rng.uniform(-0.35, 0.35) * ww, (y1 + y2) / 2 + rng.uniform(-0.35, 0.35) * wh
    else:
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
    x = int(np.clip(round(cx - ww / 2), 0, w - ww))
    y = int(np.clip(round(cy - wh / 2), 0, h - wh))
    return x, y, ww, wh


def _window_labels(cls: np.ndarray, boxes: np.ndarray, window: tuple[int, int, int, int], keep_area: float) -> str:
    x, y, ww, wh = window
    lines = []
    for c, (x1, y1, x2, y2) in zip(cls, boxes, strict=True):
        cx1, cy1, cx2, cy2 = max(x1, x), max(y1, y), min(x2, x + ww), min(y2, y + wh)
        area = (x2 - x1) * (y2 - y1)
        if cx2 - cx1 < 2 or cy2 - cy1 < 2 or (cx2 - cx1) * (cy2 - cy1) < keep_area * area:
            continue
        lines.append(f"{c} {((cx1 + cx2) / 2 - x) / ww:.6f} {((cy1 + cy2) / 2 - y) / wh:.6f} "
                     f"{(cx2 - cx1) / ww:.6f} {(cy2 - cy1) / wh:.6f}\n")
    return "".join(lines)


def data_yaml(recipe: Recipe, ws: Workspace, role: Literal["train", "heldout"]) -> Path:
    if role == "train" and recipe.tiles is not None:
        jobs = [ws.tiles(j) for j in recipe.data if j.role == role]
    else:
        jobs = [ws.job(j) / "dataset" for j in recipe.data if j.role == role]
    def having_images(split: str) -> list[str]:
        return [str(j / "images" / split) for j in jobs if any((j / "images" / split).glob("*.jpg"))]

    if role == "train":
        # A smoke run's one scenario per job may send none to val: then validate on the training frames.
        spec = {"train": having_images("train"), "val": having_images("val") or having_images("train")}
    else:
        frames = having_images("train") + having_images("val")
        spec = {"train": frames, "val": frames}  # ultralytics insists on a train key, even only to validate
    spec["names"] = dict(enumerate(CLASSES))
    path = ws.root / f"{role}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def train(recipe: Recipe, ws: Workspace, log=print, device: str = "cpu", workers: int = 2) -> Path:
    """Train (or resume) until the recipe's epochs are done; returns best.pt."""
    from ultralytics import YOLO

    state = ws.run / "finished.json"
    if state.exists():
        return ws.best
    if ws.last.exists():
        log(f"resuming from {ws.last}")
        YOLO(str(ws.last)).train(resume=True, device=device, workers=workers)
    else:
        model = YOLO(str(architecture_yaml(recipe, ws.root / "architecture.yaml")))
        budget = {"time": recipe.hours} if recipe.hours else {}
        model.train(data=str(data_yaml(recipe, ws, "train")), epochs=recipe.epochs, imgsz=recipe.imgsz,
                    batch=recipe.batch, seed=recipe.seed, deterministic=True, device=device, amp=False,
                    workers=workers, cache="ram", pretrained=False, plots=False, project=str(ws.root), name="train",
                    exist_ok=True, verbose=False, **budget, **recipe.train_args)
    state.write_text(json.dumps({"trained_on": describe_device(device)}))
    return ws.best


def describe_device(device: str) -> str:
    """What the model card says the training ran on: the GPU's name, or the CPU and its cores."""
    if device != "cpu":
        import torch

        # ultralytics narrows CUDA_VISIBLE_DEVICES to the device it was given: it is index 0 now.
        return f"{torch.cuda.get_device_name(0)} (GPU)"
    return f"CPU ({os.cpu_count()} cores)"


def export(recipe: Recipe, best: Path, target: Path) -> Path:
    """ONNX with a dynamic batch axis (several cameras in one run) at the recipe's input size."""
    from ultralytics import YOLO

    onnx_path = Path(YOLO(str(best)).export(format="onnx", imgsz=list(recipe.model_input), dynamic=True,
                                            simplify=False,
                                            opset=17, device="cpu"))
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(onnx_path, target)
    return target


def evaluate(recipe: Recipe, ws: Workspace, model_path: Path) -> dict[str, Any]:
    """mAP50 and mAP50-95 per class on the held-out set, measured on the exported ONNX file the way the
    camera node runs it: walkout's detector (vision/inference/yolo.py) letterboxes each frame into the
    model's input and runs its NMS, and ultralytics' `ap_per_class` scores the boxes.

    Not ultralytics' validator: it letterboxes every frame into a square of the input's longer side,
    so a 640x480 gate frame reaches the model at scale 1.0 where the node feeds it at 0.8 (into
    384x640). It scored the fourth recipe's model person 0.763 (gate frames 0.006) on frames where
    the node's own path scores 0.954.
    """
    import cv2
    from ultralytics.utils.metrics import ap_per_class

    from vision.inference.boxes import box_iou
    from vision.inference.runtime import RuntimeOptions
    from vision.inference.yolo import DetectorOptions, load_yolo

    detector = load_yolo(model_path, RuntimeOptions(),
                         DetectorOptions(confidence=0.001, iou=0.7, max_detections=300))  # ultralytics' val settings
    thresholds = np.linspace(0.5, 0.95, 10)
    correct, confidence, predicted, true = [], [], [], []
    images = [path for job in recipe.data if job.role == "heldout"
              for path in sorted((ws.job(job) / "dataset" / "images").glob("*/*.jpg"))]
    for image_path in images:
        image = cv2.imread(str(image_path))
        h, w = image.shape[:2]
        label_path = image_path.parents[2] / "labels" / image_path.parent.name / f"{image_path.stem}.txt"
        labels = np.loadtxt(label_path, ndmin=2).reshape(-1, 5) if label_path.stat().st_size else np.zeros((0, 5))
        found = detector.detect(image)
        order = np.argsort(-found.confidence, kind="stable")
        cls = labels[:, 0].astype(int)
        iou = box_iou(_xyxy(labels[:, 1:], w, h), found.xyxy[order].astype(np.float64))
        correct.append(_matches(found.class_id[order], cls, iou, thresholds))
        confidence.append(found.confidence[order])
        predicted.append(found.class_id[order])
        true.append(cls)
    _, _, _, _, _, ap, classes, *_ = ap_per_class(np.concatenate(correct), np.concatenate(confidence),
                                                  np.concatenate(predicted), np.concatenate(true))
    per_class = {CLASSES[c]: round(float(ap[i, 0]), 4) for i, c in enumerate(classes)}
    return {"map50": round(float(ap[:, 0].mean()), 4), "map50_95": round(float(ap.mean()), 4),
            "map50_per_class": per_class, "heldout_images": len(images)}


def _matches(predicted: np.ndarray, true: np.ndarray, iou: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """(detections, thresholds): whether each detection, in descending confidence, claims a box of its
    class not claimed yet at that IoU threshold (ultralytics' greedy matching)."""
    correct = np.zeros((len(predicted), len(thresholds)), dtype=bool)
    iou = iou * (true[:, None] == predicted[None, :])
    claimed = np.zeros((len(true), len(thresholds)), dtype=bool)
    columns = range(len(thresholds))
    for j in np.flatnonzero((iou >= thresholds.min()).any(0)):
        available = np.where(claimed, 0.0, iou[:, j, None])
        best = available.argmax(0)
        correct[j] = available[best, columns] >= thresholds
        claimed[best, columns] |= correct[j]
    return correct


def train_detector(recipe_path: Path, work: Path, *, data_dir: Path | None, out: Path | None = None,
                   smoke: bool = False, device: str = "cpu", workers: int = 2, jobs: int = 1,
                   log=print) -> dict[str, Any]:
    """The whole recipe. `smoke` renders one scenario per job and trains one epoch, to keep it alive.
    `device` is ultralytics' ("cpu", "0" for the first GPU), `workers` its data loaders, and `jobs`
    how many data jobs are rendered at once."""
    recipe = Recipe.load(recipe_path)
    if smoke:
        recipe = recipe.scaled(scenarios=1, epochs=1)
    ws = Workspace(Path(work).resolve())
    ws.root.mkdir(parents=True, exist_ok=True)
    offline_ultralytics(ws.root / "ultralytics")
    started = time.perf_counter()
    render_data(recipe, ws, data_dir, log, jobs)
    tile_data(recipe, ws, log, jobs)
    best = train(recipe, ws, log, device, workers)
    target = out or (ws.root / f"{recipe.name}.onnx" if smoke else MODELS_DIR / f"{recipe.name}.onnx")
    export(recipe, best, target)
    result = {"model": str(target), "sha256": sha256_of(target), "size_bytes": target.stat().st_size,
              **evaluate(recipe, ws, target), **_training_log(ws), "seconds": round(time.perf_counter() - started, 1)}
    log(json.dumps(result))
    return result


def _training_log(ws: Workspace) -> dict[str, Any]:
    """Epochs and wall time of the training as ultralytics logged them (results.csv), and where it ran."""
    import csv

    try:
        with open(ws.run / "results.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        epochs, seconds = int(float(rows[-1]["epoch"])), training_seconds([float(row["time"]) for row in rows])
    except (OSError, KeyError, ValueError, IndexError):
        epochs, seconds = None, None
    try:
        trained_on = json.loads((ws.run / "finished.json").read_text()).get("trained_on")
    except (OSError, ValueError, AttributeError):
        trained_on = None
    return {"train_epochs": epochs, "train_seconds": seconds, "trained_on": trained_on}


def training_seconds(times: list[float]) -> float | None:
    """The training's wall time from results.csv's `time` column, which counts from 0 again in each
    session that resumed the run: the last time of every session, added up."""
    if not times:
        return None
    return round(sum(a for a, b in zip(times, times[1:], strict=False) if b < a) + times[-1], 1)


def manifest_entry(recipe: Recipe, result: dict[str, Any], recipe_file: str) -> dict[str, Any]:
    return {
        "file": Path(result["model"]).name, "sha256": result["sha256"], "task": "detect",
        "input": list(recipe.model_input), "classes": list(CLASSES),
        "source": "trained by walkout from scratch on rendered scenarios (walkout train-detector)",
        "licence": "AGPL-3.0 (trained and exported with Ultralytics, whose licence covers derived models)",
        "recipe": recipe_file, "card": f"{recipe.name}.md",
        "metrics": {"heldout_map50": result["map50"], "heldout_map50_95": result["map50_95"],
                    "heldout_map50_per_class": result["map50_per_class"]},
    }


def record(recipe: Recipe, result: dict[str, Any], recipe_file: str, manifest: Path = MANIFEST) -> None:
    """Write our model's entry into the manifest, keeping the other entries as they are."""
    text = manifest.read_text(encoding="utf-8")
    header = "".join(line + "\n" for line in text.splitlines() if line.startswith("#"))
    data = yaml.safe_load(text) or {"models": {}}
    data["models"] = data.get("models") or {}
    data["models"][recipe.name] = manifest_entry(recipe, result, recipe_file)
    manifest.write_text(header + yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def write_card(recipe: Recipe, result: dict[str, Any], path: Path) -> None:
    """The model card: what the model is for, how it was made, and how well it does on held-out data."""
    a = recipe.architecture
    rows = "".join(f"| {name} | {result['map50_per_class'].get(name, float('nan')):.3f} |\n" for name in CLASSES)
    jobs = "".join(f"| {j.name} | {j.role} | {j.preset} | {j.seed}.. | {j.scenarios} | 1 frame in {j.every} |\n"
                   for j in recipe.data)
    digest = result["sha256"][:16]
    box_head = ("box sides regressed directly (reg_max 1, as YOLO26)" if a.reg_max == 1
                else f"box sides as distributions over {a.reg_max} bins (DFL)")
    layers = f"YOLO11 layers at depth {a.depth}, width {a.width}, {box_head}"
    h_in, w_in = recipe.model_input
    windows = (f"on {t.size} px windows cut from frames scaled by {t.scale} (plus {t.whole:.0%} of frames whole)"
               if (t := recipe.tiles) else f"on whole frames at {recipe.imgsz} px")
    took = f"{result['train_seconds'] / 3600:.2f} h" if result.get("train_seconds") else "see the training log"
    epochs = result.get("train_epochs") or recipe.epochs
    where = result.get("trained_on") or "see the training log"
    frames = result.get("heldout_images") or "the"
    command = f"walkout train-detector --recipe models/{recipe.name}.recipe.yaml"
    cpu_note = ""
    if "GPU" in where:
        command += " --device 0 --workers 14 --jobs 16"
        cpu_note = ("\nWithout `--device` it trains on the CPU, where the recipe's time budget buys far fewer\n"
                    "epochs: set `hours` or `epochs` in the recipe to what the machine can do.")
    path.write_text(f"""# {recipe.name}: walkout's store detector

Detects **{', '.join(CLASSES)}** in store camera frames (aisle and gate). It is the camera node's
first stage: tracks, shelf interactions and gate events are built on its boxes. It is trained only
on frames rendered by walkout's synthetic store world, so it knows our rendered shoppers, not yet
real people: on real cameras, fine-tune it on the store's own labelled frames, or use a
COCO-pretrained export mapped to our classes (README, "Deploying on real cameras").

| | |
|---|---|
| file | `models/{Path(result['model']).name}` ({result['size_bytes'] / 1e6:.1f} MB, sha256 `{digest}…`) |
| architecture | {layers} ({recipe.name}.recipe.yaml), trained from scratch |
| input | {h_in}×{w_in} (height × width) RGB, whole frames letterboxed; dynamic batch axis |
| output | ultralytics classic layout (batch, 4 + {len(CLASSES)}, anchors); NMS in `vision/inference/yolo.py` |
| training | {epochs} epochs, batch {recipe.batch}, {windows}, {where}, {took} |
| licence | AGPL-3.0: trained and exported with Ultralytics, whose licence covers derived models |

## Held-out accuracy

Measured by `walkout train-detector` on the exported ONNX file as the camera node runs it (its
letterbox into {h_in}×{w_in}, shrunk to the smallest multiple of the stride that holds the frame,
and its NMS, `vision/inference/yolo.py`), scored with ultralytics' `ap_per_class`, on the held-out
set: {frames} frames of scenarios rendered from other seeds and with the wider `heldout`
randomisation ranges (stronger perspective, lighting, blur, noise and compression than training).

| class | mAP50 |
|---|---|
{rows}
mAP50 over all classes {result['map50']:.3f}, mAP50-95 {result['map50_95']:.3f}.

## Data

| job | role | preset | seeds | scenarios | frames |
|---|---|---|---|---|---|
{jobs}
Each scenario cycles through the eight kinds (single, pick_put, two_shoppers, adjacent,
misplaced, family, refused, several); one in {recipe.val_every} training scenarios is held back whole
for validation during training. Faces are real crops (dlib examples) and products are real grocery
photos (GroceryStoreDataset) from `../shared/data`.

## Reproduce

```
pip install -e '.[train]'
{command}
```

It renders, trains (resuming if interrupted), exports, evaluates and records.{cpu_note}

## Limits

- Synthetic only: real shoppers, real hands and real lighting are outside its training data.
- Hands are small in the aisle view (about {40 * w_in / 1280:.0f} px at {w_in} px input width); hand accuracy is what
  limits shelf-interaction accuracy.
{_below_target(result["map50_per_class"])}""", encoding="utf-8")


def _below_target(per_class: dict[str, float], target: float = 0.9) -> str:
    """The card says plainly when person or hand is below the accuracy the shelf stage is designed for."""
    short = [f"{name} {per_class[name]:.3f}" for name in ("person", "hand") if per_class.get(name, 0.0) < target]
    return f"- Below the {target} mAP50 target for person and hand ({', '.join(short)}).\n" if short else ""
