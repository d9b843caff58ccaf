"""`walkout replay`: a recorded scenario through the same code as a live store (SPEC section 5).

Every camera's recording is a file source on the scenario clock; each feeds its own camera node
(detect, track, codes, shelf, zones, redact) exactly as live; the nodes publish to an embedded
bus; a store runtime on a temporary SQLite database turns the events into sessions, baskets and
charges. Each camera runs in a thread of its own (`CameraFeed`), with its face blurring and its video
writing in two more (NodeConfig.redact_in_thread), so a replay uses every core; the runtime applies
the cameras' events in frame-time order, so it sees the store as it happened, whichever thread was
faster. Nothing reads truth.json except the scoring at the end (`--truth`).

The same scenario gives the same receipts.json, events.jsonl and metrics.json bytes (apart from
the realtime factor, which is a measurement): the clock is the scenario's, ids derive from what
events say, and every file is written with sorted keys and fixed rounding.

With `clips` (`walkout replay --clips DIR`; off by default, as they cost time) each shelf camera's
node also writes a blurred review clip per shelf event, `DIR/<event id>.webm` (store_runtime/clips.py):
the same scenario gives the same clip bytes too.

OUT_DIR is never left half written: everything goes into a hidden folder inside it
(`.walkout-replay-*`) and replaces the previous outputs only once the replay has succeeded, as
`walkout blur` writes its copy. A recording that turns out damaged at frame 41 ends the replay with
a `SourceError` naming the file and the frame, and the previous receipts.json, events.jsonl and
private videos stay as they were, together: a folder of one run, never a mix of two. The swap
itself is a few renames in one folder; the outputs of SPEC section 5 that this run does not make
(metrics.json without --truth, the private video of a camera no longer in the scenario) go with the
old run. A clips folder inside OUT_DIR is staged the same way; one elsewhere is written as it goes.
"""

from __future__ import annotations

import contextlib
import heapq
import json
import queue
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from store_runtime.config import Scenario, load_scenario
from store_runtime.scoring import realtime_factor

ProgressFn = Callable[[float, float], None]

# What a replay writes in OUT_DIR (SPEC section 5): a new run replaces all of them, whatever it made.
OUTPUTS: tuple[str, ...] = ("receipts.json", "events.jsonl", "private", "metrics.json", "report.html")
STAGING_PREFIX = ".walkout-replay-"
FEED_AHEAD = 256  # frames a camera's thread may run ahead of the replay's


class ReplayError(ValueError):
    """An output folder the replay cannot write; the message names it."""


@dataclass(frozen=True)
class ReplayOptions:
    model: Path | None = None  # detector ONNX; default: the manifest's walkout-det
    # ONNX Runtime intra-op threads of each camera's detector: one, because every camera and its face
    # blurring run in threads of their own already, which fill two cores (more threads only wait).
    threads: int = 1
    detect_every: int = 3
    truth: bool = False  # score against truth.json and write metrics.json
    clips: Path | None = None  # write review clips of shelf events here (store_runtime.clips)


@dataclass(frozen=True)
class ReplayResult:
    out: Path
    receipts: int
    events: int
    recorded_seconds: float
    wall_seconds: float
    metrics: dict[str, Any] | None
    stages: dict[str, dict[str, Any]]  # per camera: frames, detections, seconds per stage (node.stage_report)
    clips: dict[str, dict[str, Any]] | None = None  # per shelf camera with clips: ClipStats.as_dict()

    @property
    def realtime_factor(self) -> float:
        return realtime_factor(self.recorded_seconds, self.wall_seconds)


class CameraFeed:
    """One camera's recording stepped through its node in a thread of its own, so that the cameras of a
    replay use the machine's cores side by side (face detection, the detector, decoding and encoding
    let go of the GIL). What each frame published goes to the replay's thread through a bounded queue,
    in frame order: the runtime still applies every camera's events in time order, so the outputs are
    the same bytes as one camera after the other. A recording that fails ends the feed with its error,
    which `results` raises in the replay's thread."""

    def __init__(self, camera: str, node: Any, bus: Any, frames: Iterable[Any]) -> None:
        self.camera, self.node, self.bus, self.frames = camera, node, bus, frames
        # Per frame only its events wait here, never pictures: a few hundred frames ahead is a few KB.
        self.queue: queue.Queue = queue.Queue(maxsize=FEED_AHEAD)
        self.stop = threading.Event()
        self.final_events: list = []  # what `finish` published, once `results` is exhausted
        self.thread = threading.Thread(target=self._run, name=f"walkout-replay-{camera}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        try:
            for frame in self.frames:
                if self.stop.is_set():
                    return
                self.node.step(frame)
                self._put((frame.t, frame.index, self.bus.drain()))
            self.node.finish()
            self._put(_Finished(self.bus.drain()))
        except BaseException as exc:  # handed over to the replay's thread, which raises it
            self._put(_Failed(exc))
        finally:
            self.node.close()

    def _put(self, item: object) -> None:
        while not self.stop.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def results(self) -> Iterator[tuple[float, str, int, list]]:
        """(t, camera, frame index, events) of every frame, in order; the feed's error if it failed."""
        while True:
            item = self.queue.get()
            if isinstance(item, _Finished):
                self.final_events = item.events
                return
            if isinstance(item, _Failed):
                raise item.error
            t, index, events = item
            yield t, self.camera, index, events


@dataclass(frozen=True)
class _Finished:
    events: list


@dataclass(frozen=True)
class _Failed:
    error: BaseException


def in_time_order(feeds: list[CameraFeed]) -> Iterator[tuple[str, float, list]]:
    """(camera, t, events) of every frame of every feed, by frame time; ties by camera id, then frame
    index, so the order is fixed whichever thread was faster."""
    for t, camera, _, events in heapq.merge(*(feed.results() for feed in sorted(feeds, key=lambda f: f.camera))):
        yield camera, t, events


def stop_feeds(feeds: list[CameraFeed]) -> None:
    for feed in feeds:
        feed.stop.set()
    for feed in feeds:
        feed.thread.join()


def terminal_progress(stream=sys.stderr) -> ProgressFn | None:
    """A one-line progress bar on a terminal; None when stderr is a file or a pipe."""
    if not stream.isatty():
        return None
    last = [-1]

    def show(done: float, total: float) -> None:
        percent = int(100 * done / total) if total > 0 else 100
        if percent == last[0]:
            return
        last[0] = percent
        bar = "#" * (percent // 4)
        stream.write(f"\rreplay [{bar:<25}] {percent:3d}% {done:6.1f} / {total:.1f} s")
        if percent >= 100:
            stream.write("\n")
        stream.flush()

    return show


def _spec_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def replay(scenario_dir: Path, out_dir: Path, options: ReplayOptions = ReplayOptions(),
           progress: ProgressFn | None = None) -> ReplayResult:
    """Replay `scenario_dir` into `out_dir` (see the module's docstring): on any failure `out_dir`
    holds what it held before."""
    started = time.perf_counter()
    scenario: Scenario = load_scenario(Path(scenario_dir))
    if options.truth and not scenario.truth_path.is_file():
        raise FileNotFoundError(f"{scenario.truth_path}: --truth given but the scenario has no truth.json")
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ReplayError(f"{out_dir}: is a file; expected a folder for the replay's outputs")
    created = not out_dir.exists()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        staged = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=out_dir))
    except OSError as exc:
        raise ReplayError(f"{out_dir}: cannot write the replay's outputs there ({exc.strerror or exc})") from exc
    try:
        clips = options.clips
        if clips is not None and _inside(Path(clips), out_dir):
            clips = staged / Path(clips).resolve().relative_to(out_dir.resolve())
        result = _replay(scenario, staged, replace(options, clips=clips), progress, started)
        _swap_in(staged, out_dir)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        if created:
            with contextlib.suppress(OSError):
                out_dir.rmdir()  # only if empty: a folder made for this run and nothing else
        raise
    return ReplayResult(out=out_dir, receipts=result.receipts, events=result.events,
                        recorded_seconds=result.recorded_seconds, wall_seconds=result.wall_seconds,
                        metrics=result.metrics, stages=result.stages, clips=result.clips)


def _inside(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())


def _swap_in(staged: Path, out_dir: Path) -> None:
    """Move a finished run's outputs from `staged` into `out_dir`, replacing the previous run's."""
    made = {entry.name for entry in staged.iterdir()}
    old = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX + "old-", dir=out_dir))
    try:
        for name in sorted(set(OUTPUTS) | made):
            previous = out_dir / name
            if previous.exists() or previous.is_symlink():
                previous.rename(old / name)
        for name in sorted(made):
            (staged / name).rename(out_dir / name)
    finally:
        shutil.rmtree(old, ignore_errors=True)
    staged.rmdir()


def _replay(scenario: Scenario, out_dir: Path, options: ReplayOptions, progress: ProgressFn | None,
            started: float) -> ReplayResult:
    from store_runtime.bus import MemoryBus
    from store_runtime.clips import ClipRecorder
    from store_runtime.db import open_database
    from store_runtime.node import FACE_WORKERS, CameraNode, NodeConfig, load_detector, shelf_for, stage_report
    from store_runtime.report import render_report
    from store_runtime.runtime import StoreRuntime
    from store_runtime.scoring import score_replay, write_metrics
    from vision.inference.yolo import YoloDetector
    from vision.privacy import PrivacyConfig, Redactor
    from vision.sinks import PrivateRecorder
    from vision.sources import SourceConfig, open_source

    store = scenario.store
    # A replay is not bound to real time: no frame is given up on (blurred whole) because its face
    # detection ran late on a busy machine, so the same recording gives the same private video and clips.
    privacy = PrivacyConfig(budget_ms=None)
    (out_dir / "private").mkdir(parents=True, exist_ok=True)
    now = [scenario.start_unix]

    with tempfile.TemporaryDirectory(prefix="walkout-replay-") as tmp, ExitStack() as stack:
        # Every recording is opened before the detector is loaded: one that is not a video at all
        # costs no model loading.
        opened = {camera: stack.enter_context(open_source(SourceConfig(kind="file", uri=video, camera=camera,
                                                                        start=scenario.start_unix)))
                  for camera, video in sorted(scenario.video_paths.items())}
        nodes, fps, feeds = {}, {}, []
        first: tuple[YoloDetector, Redactor] | None = None  # the first camera's detector and redactor
        duration = 0.0  # of the longest recording as its container says, for the progress bar
        frames_read = dict.fromkeys(scenario.video_paths, 0)
        for camera, source in opened.items():
            info = source.info
            recorder = stack.enter_context(PrivateRecorder(out_dir / "private" / f"{camera}.mp4",
                                                           size=(info.width, info.height), fps=info.fps))
            node_bus = MemoryBus()
            # The models are loaded once and run by every camera's threads side by side (an ONNX Runtime
            # session takes calls from several threads at once): the second camera starts without waiting
            # for sessions of its own. A detector keeps input buffers, so each camera has its own.
            if first is None:
                first = (load_detector(options.model, options.threads, spin=False),
                         Redactor.from_manifest(privacy, workers=FACE_WORKERS))
                detector, redactor = first
            else:
                detector, redactor = first[0].sibling(), Redactor(first[1].faces, privacy, workers=FACE_WORKERS)
            stack.callback(redactor.close)
            nodes[camera] = CameraNode(store.config, camera, detector=detector, bus=node_bus,
                                       config=NodeConfig(detect_every=options.detect_every, redact_in_thread=True),
                                       shelf=shelf_for(store, camera), redactor=redactor, sink=recorder.write)
            if options.clips is not None and store.config.cameras[camera].slots:
                nodes[camera].clips = ClipRecorder(options.clips, camera)
            feeds.append(CameraFeed(camera, nodes[camera], node_bus, nodes[camera].read_ahead(source)))
            fps[camera], duration = info.fps, max(duration, (info.frames or 0) / info.fps)
            # Under way while the next camera's models load and the database is made; stopped and joined
            # before its redactor and recording close (ExitStack runs its callbacks last in, first out).
            feeds[-1].start()
            stack.callback(stop_feeds, feeds[-1:])
        db = open_database(f"sqlite:///{Path(tmp) / 'replay.db'}")
        stack.callback(db.close)
        runtime = StoreRuntime(db, store, clock=lambda: now[0])

        for camera, t, events in in_time_order(feeds):
            now[0] = t
            frames_read[camera] += 1
            for event in events:
                runtime.apply(event)
            if progress:
                progress(t - scenario.start_unix, duration)
        # What was read, not what the containers said (a file may not say, or say wrong).
        duration = max((frames_read[c] / fps[c] for c in fps), default=0.0)
        for feed in feeds:  # sorted by camera, as the recordings were opened
            for event in feed.final_events:
                runtime.apply(event)
        runtime.finish(scenario.start_unix + duration)

        receipts = [r.to_spec(scenario.start_unix) for r in runtime.receipts()]
        events = [e.to_spec(scenario.start_unix) for e in runtime.basket_events()]
        stages = stage_report(nodes)
        clips = {c: n.clips.stats.as_dict() for c, n in sorted(nodes.items()) if n.clips is not None}
    (out_dir / "receipts.json").write_text(_spec_json({"receipts": receipts}) + "\n", encoding="utf-8")
    (out_dir / "events.jsonl").write_text("".join(_spec_json(e) + "\n" for e in events), encoding="utf-8")

    wall = time.perf_counter() - started
    recorded = sum(frames_read[c] / fps[c] for c in sorted(fps))
    metrics = None
    if options.truth:
        prices = {g: p.price_cents for g, p in store.catalog.products.items()}
        metrics = score_replay(scenario.root, out_dir, prices=prices, camera_videos=scenario.video_paths,
                               wall_seconds=wall, recorded_seconds=recorded)
        write_metrics(out_dir / "metrics.json", metrics)
    names = {g: p.name for g, p in store.catalog.products.items()}
    (out_dir / "report.html").write_text(render_report(
        scenario=scenario.root.name, store_id=store.config.store_id, currency=store.config.currency,
        receipts=receipts, events=events, names=names, duration=duration, metrics=metrics, stages=stages,
        wall_seconds=wall, recorded_seconds=recorded), encoding="utf-8")
    return ReplayResult(out=out_dir, receipts=len(receipts), events=len(events), recorded_seconds=recorded,
                        wall_seconds=wall, metrics=metrics, stages=stages,
                        clips=clips if options.clips is not None else None)
