"""`walkout bench inference`: our detector path against ultralytics' `predict`, per frame, in one process.

Both paths run the same ONNX file on the same frames with the same thresholds, and each is timed
from BGR frames in to boxes in frame pixels out: pre-processing, the ONNX Runtime run, decoding and
NMS. Fairness on threads: at `threads` n, ONNX Runtime's intra-op pool, OpenCV and torch all get
n threads, and ultralytics' own ONNX Runtime session is swapped for one opened with our options on
the file as it is. Ours runs the graph as `load_yolo` rewrites it (the same numbers, computed faster):
that rewrite is part of our path.
The paths take turns pass by pass, in an order that rotates; the figure is the median over repeats
of (time for all frames) / frames. A row "network alone" times only our path's ONNX Runtime runs:
both paths run that network, so its ratio against ultralytics bounds what any path could reach.

Agreement is what "same detections" means here: a frame agrees when both paths find the same number
of boxes, of the same classes, each within `tolerance_px` of its partner on every side.
"""

from __future__ import annotations

import contextlib
import importlib.util
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from vision.inference.runtime import RuntimeOptions, load_model
from vision.inference.yolo import DetectorOptions, YoloDetector, load_yolo
from vision.types import Detections

SAMPLE_VIDEOS = Path(__file__).resolve().parents[1] / "sample_videos"
OURS, ULTRALYTICS, OURS_INT8, NETWORK = "ours fp32", "ultralytics fp32", "ours int8", "network alone"
# Which path each path's agreement is measured against: ours against ultralytics, int8 against our fp32.
REFERENCE = {OURS: ULTRALYTICS, OURS_INT8: OURS}
# Rows whose ultralytics row, same threads and batch, gives their speed ratio.
RATIO_AGAINST = ULTRALYTICS


class BenchError(Exception):
    """A benchmark that cannot run as asked (no frames, no model), said in one line."""


@dataclass(frozen=True)
class BenchRow:
    path: str
    threads: int
    batch: int
    ms_per_frame: float  # median over repeats of the time per frame, pre-processing to boxes
    speedup: float | None  # ultralytics' ms per frame / this row's, same threads and batch (>1: faster)
    agreement: float | None  # fraction of frames whose detections match those of `reference`
    reference: str | None
    boxes: int  # detections over all frames: an agreement over empty frames says little
    frames: int
    repeats: int

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


# ---------------------------------------------------------------------------------------------- frames


def sample_frames(count: int, videos: Sequence[Path] | None = None, phase: float = 0.0) -> list[np.ndarray]:
    """`count` BGR frames spread over the recorded sample scenarios, both cameras, round-robin.

    Consecutive frames come from different videos, so a batch mixes cameras and scenes as a node
    serving several cameras would. `phase` in [0, 1) shifts the positions inside each video: the
    int8 calibration uses 0.5 so that it never sees the benchmark's own frames.
    """
    import cv2

    if count < 1:
        raise BenchError(f"--frames must be at least 1, got {count}")
    videos = sorted(SAMPLE_VIDEOS.glob("*/cameras/*.mp4")) if videos is None else list(videos)
    if not videos:
        raise BenchError(f"no sample videos under {SAMPLE_VIDEOS}; give frames another way")
    per_video = -(-count // len(videos))
    frames: dict[int, np.ndarray] = {}
    for v, path in enumerate(videos):
        wanted = [i for i in range(count) if i % len(videos) == v]
        if not wanted:
            continue
        cap = cv2.VideoCapture(str(path))
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        if total < 1:
            raise BenchError(f"{path}: cannot read the video")
        # Evenly spaced inside the middle 80%, where the shoppers are.
        positions = [int(total * (0.1 + 0.8 * (k + phase) / per_video)) for k in range(len(wanted))]
        index = -1
        for slot, position in zip(wanted, positions, strict=True):
            while index < position:
                if not cap.grab():
                    raise BenchError(f"{path}: ended at frame {index + 1} of {total}")
                index += 1
            ok, frame = cap.retrieve()
            if not ok:
                raise BenchError(f"{path}: cannot decode frame {index}")
            frames[slot] = frame
        cap.release()
    return [frames[i] for i in range(count)]


# ------------------------------------------------------------------------------------------- agreement


def detections_agree(a: Detections, b: Detections, tolerance_px: float = 1.0) -> bool:
    """Same number of boxes, same classes, every box of `a` paired with one of `b` within the tolerance.

    Each box of `a` in turn takes the nearest free box of its class in `b`; the order of the boxes
    does not matter, because two boxes with equal scores may leave NMS in either order.
    """
    if len(a) != len(b):
        return False
    if not np.array_equal(np.sort(a.class_id), np.sort(b.class_id)):
        return False
    free = np.ones(len(b), bool)
    for box, cls in zip(a.xyxy, a.class_id, strict=True):
        distance = np.abs(b.xyxy - box).max(axis=1) if len(b) else np.zeros(0)
        candidates = free & (b.class_id == cls) & (distance <= tolerance_px)
        if not candidates.any():
            return False
        best = np.flatnonzero(candidates)[np.argmin(distance[candidates])]
        free[best] = False
    return True


def agreement(found: Sequence[Detections], reference: Sequence[Detections], tolerance_px: float = 1.0) -> float:
    """Fraction of frames whose detections agree with the reference's."""
    if len(found) != len(reference):
        raise ValueError(f"agreement: {len(found)} frames against {len(reference)} reference frames")
    if not found:
        return 1.0
    return sum(detections_agree(f, r, tolerance_px) for f, r in zip(found, reference, strict=True)) / len(found)


# ----------------------------------------------------------------------------------------------- paths


class _Path:
    name: str

    def detect_batch(self, frames: Sequence[np.ndarray]) -> list[Detections]:
        raise NotImplementedError

    def seconds(self, frames: Sequence[np.ndarray]) -> float:
        """The time this path takes over the frames: all of `detect_batch`."""
        started = time.perf_counter()
        self.detect_batch(frames)
        return time.perf_counter() - started


class OurPath(_Path):
    """Our detector: `vision.inference` end to end."""

    def __init__(self, name: str, model_path: Path, threads: int, options: DetectorOptions) -> None:
        self.name = name
        self.detector = load_yolo(model_path, _runtime(threads), options)

    def detect_batch(self, frames: Sequence[np.ndarray]) -> list[Detections]:
        return self.detector.detect_batch(frames)


class NetworkAlone(OurPath):
    """Our path's ONNX Runtime runs alone, its letterboxing and decoding left out of the time: what a
    path with no work of its own would take. Against ultralytics it is the most any path running this
    network could gain. Same session as `ours`; its detections are ours."""

    def __init__(self, ours: OurPath) -> None:  # not super().__init__: no second session
        self.name = NETWORK
        self.detector = ours.detector

    def seconds(self, frames: Sequence[np.ndarray]) -> float:
        total = 0.0
        for _, blob, _ in self.detector.model_inputs(frames):
            started = time.perf_counter()
            self.detector.model.run({self.detector.input_name: blob})
            total += time.perf_counter() - started
        return total


class UltralyticsPath(_Path):
    """`YOLO(model.onnx).predict`, on a session opened with our options, its output as `Detections`.

    `imgsz` is the model's input size and `rect` whether ours shrinks it (DetectorOptions.rect, for a
    model with dynamic height and width), so that both letterbox a frame into the same input: with
    rect, a batch of one frame size at the smallest multiple of the stride that holds it, else the
    whole input. (ultralytics would shrink a fixed-size model's input too, which its session refuses.)
    """

    def __init__(self, model_path: Path, threads: int, options: DetectorOptions) -> None:
        yolo_class = import_ultralytics()
        self.name = ULTRALYTICS
        self.options = options
        self.model = yolo_class(str(model_path), task="detect")
        probe = YoloDetector(load_model(model_path, _runtime(threads)), options)
        self.imgsz = list(probe.input_size)
        self.rect = probe.rect_stride is not None
        self.names = probe.model_names
        self.model.predict(np.full((64, 64, 3), 114, np.uint8), **self._predict_args())  # builds the predictor
        backend = self.model.predictor.model.backend
        if not hasattr(backend, "session"):
            raise BenchError(f"ultralytics opened {model_path} without an ONNX Runtime session "
                             f"({type(backend).__name__}); cannot match its threads to ours")
        backend.session = self._session = probe.model.session  # same file, same SessionOptions as ours
        self._backend = backend

    def _predict_args(self) -> dict[str, object]:
        o = self.options
        return {"imgsz": self.imgsz, "conf": o.confidence, "iou": o.iou, "max_det": o.max_detections,
                "verbose": False, "device": "cpu", "rect": self.rect}

    def detect_batch(self, frames: Sequence[np.ndarray]) -> list[Detections]:
        results = self.model.predict(list(frames), batch=len(frames), **self._predict_args())
        if self.model.predictor.model.backend is not self._backend or self._backend.session is not self._session:
            raise BenchError("ultralytics rebuilt its predictor and opened its own session: the threads are no "
                             "longer ours, the timing would not be fair")
        out = []
        for r in results:
            boxes = r.boxes
            out.append(Detections(boxes.xyxy.numpy().astype(np.float32), boxes.conf.numpy().astype(np.float32),
                                  boxes.cls.numpy().astype(np.int32), self.names))
        return out


def ultralytics_available() -> bool:
    return importlib.util.find_spec("ultralytics") is not None


def import_ultralytics() -> type:
    """ultralytics' YOLO class, imported offline (no downloads, no installs, its config in a temp folder)."""
    import logging
    import sys

    if "ultralytics" not in sys.modules:
        from store_runtime.training import offline_ultralytics

        offline_ultralytics(Path(tempfile.gettempdir()) / "walkout-ultralytics")
    from ultralytics import YOLO
    from ultralytics.utils import LOGGER

    LOGGER.setLevel(logging.WARNING)  # its per-load "Loading ... for ONNX Runtime inference" lines
    return YOLO


def _runtime(threads: int) -> RuntimeOptions:
    return RuntimeOptions(providers=("cpu",), intra_op_threads=threads, warmup_runs=1)


@contextlib.contextmanager
def _library_threads(threads: int) -> Iterator[None]:
    """OpenCV (resize) and torch (ultralytics' pre- and post-processing) at `threads`, restored after."""
    import sys

    import cv2

    torch = sys.modules.get("torch")
    saved_cv, saved_torch = cv2.getNumThreads(), torch.get_num_threads() if torch else None
    cv2.setNumThreads(threads)
    if torch:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        cv2.setNumThreads(saved_cv)
        if torch:
            torch.set_num_threads(saved_torch)


# ----------------------------------------------------------------------------------------------- bench


def bench_inference(model_path: Path, frames: Sequence[np.ndarray], *, threads: Sequence[int] = (1, 2),
                    batches: Sequence[int] = (1, 4), repeats: int = 5, int8_path: Path | None = None,
                    with_ultralytics: bool = True, options: DetectorOptions | None = None,
                    tolerance_px: float = 1.0, log: Callable[[str], None] | None = None) -> list[BenchRow]:
    """One row per path, threads and batch: ms per frame, speed ratio against ultralytics, agreement."""
    options = options or DetectorOptions()
    if not frames:
        raise BenchError("no frames to benchmark")
    if repeats < 1 or any(t < 1 for t in threads) or any(b < 1 for b in batches):
        raise BenchError(f"repeats, threads and batch sizes must be at least 1, got {repeats}, {list(threads)}, "
                         f"{list(batches)}")
    model_path = Path(model_path)
    if not model_path.is_file():
        raise BenchError(f"model file {model_path} does not exist")
    if with_ultralytics:
        if options.class_map is not None:
            raise BenchError("a class_map renames our classes but not ultralytics': compare without one")
        import_ultralytics()  # before the thread counts are set, so that torch's are set too
    rows: list[BenchRow] = []
    for n_threads in threads:
        with _library_threads(n_threads):
            ours = OurPath(OURS, model_path, n_threads, options)
            paths: list[_Path] = [ours, NetworkAlone(ours)]
            if with_ultralytics:
                paths.append(UltralyticsPath(model_path, n_threads, options))
            if int8_path is not None:
                paths.append(OurPath(OURS_INT8, Path(int8_path), n_threads, options))
            for batch in batches:
                rows += _bench_one(paths, frames, n_threads, batch, repeats, tolerance_px)
                if log:
                    log(format_table(rows[-len(paths):], header=False))
    return rows


def _bench_one(paths: Sequence[_Path], frames: Sequence[np.ndarray], threads: int, batch: int,
               repeats: int, tolerance_px: float) -> list[BenchRow]:
    chunks = [frames[i:i + batch] for i in range(0, len(frames), batch)]
    # The untimed first pass warms each session up for this batch size and gives the detections.
    found = {p.name: [d for chunk in chunks for d in p.detect_batch(chunk)] for p in paths}
    # Whole passes in turn, each path first in turn. Not batch by batch: each session's intra-op
    # workers spin a while after its run, so at 2 threads on 2 cores a path run right after another
    # path's session shared its second core with them (both paths took half as long again).
    seconds: dict[str, list[float]] = {p.name: [0.0] * repeats for p in paths}
    for r in range(repeats):
        for p in paths[r % len(paths):] + paths[:r % len(paths)]:
            seconds[p.name][r] = sum(p.seconds(chunk) for chunk in chunks)
    ms = {name: 1e3 * statistics.median(totals) / len(frames) for name, totals in seconds.items()}
    rows = []
    for p in paths:
        ref = REFERENCE.get(p.name)
        agree = agreement(found[p.name], found[ref], tolerance_px) if ref in found else None
        speedup = ms[RATIO_AGAINST] / ms[p.name] if RATIO_AGAINST in ms else None
        rows.append(BenchRow(p.name, threads, batch, round(ms[p.name], 3),
                             None if speedup is None else round(speedup, 3), agree,
                             ref if agree is not None else None, sum(map(len, found[p.name])), len(frames), repeats))
    return rows


def format_table(rows: Sequence[BenchRow], header: bool = True) -> str:
    """A plain-text table, one line per row; also valid Markdown."""
    lines = ["| path | threads | batch | ms / frame | vs ultralytics | boxes | agreement |",
             "|---|---:|---:|---:|---:|---:|---|"] if header else []
    for row in rows:
        speed = "—" if row.speedup is None else f"{row.speedup:.2f}x"
        agree = "—" if row.agreement is None else f"{100 * row.agreement:.1f}% (vs {row.reference})"
        lines.append(f"| {row.path} | {row.threads} | {row.batch} | {row.ms_per_frame:.2f} | {speed} | {row.boxes} "
                     f"| {agree} |")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------- CLI


def default_model_path() -> Path:
    """The manifest's `walkout-det` (hash checked) when it is listed there, else models/walkout-det.onnx."""
    from vision.inference.manifest import MODELS_DIR, ModelError, ModelManifest

    try:
        manifest = ModelManifest.load()
        if "walkout-det" in manifest.models:
            return manifest.path_of("walkout-det")
    except ModelError as exc:
        raise BenchError(str(exc)) from exc
    return MODELS_DIR / "walkout-det.onnx"


def parse_counts(text: str, option: str) -> tuple[int, ...]:
    """'1,2' -> (1, 2); anything else is a one-line error naming the option."""
    try:
        counts = tuple(int(part) for part in text.split(","))
    except ValueError:
        counts = ()
    if not counts or any(c < 1 for c in counts):
        raise BenchError(f"{option}: expected positive whole numbers separated by commas, e.g. 1,2; got {text!r}")
    return counts
