"""`walkout replay`: a recorded scenario through the same code as a live store (SPEC section 5).

Every camera's recording is a file source on the scenario clock; each feeds its own camera node
(detect, track, codes, shelf, zones, redact) exactly as live; the nodes publish to an embedded
bus; a store runtime on a temporary SQLite database turns the events into sessions, baskets and
charges. Frames of all cameras are taken in time order, so the runtime sees the store as it
happened. Nothing reads truth.json except the scoring at the end (`--truth`).

The same scenario gives the same receipts.json, events.jsonl and metrics.json bytes (apart from
the realtime factor, which is a measurement): the clock is the scenario's, ids derive from what
events say, and every file is written with sorted keys and fixed rounding.

With `clips` (`walkout replay --clips DIR`; off by default, as they cost time) each shelf camera's
node also writes a blurred review clip per shelf event, `DIR/<event id>.webm` (store_runtime/clips.py):
the same scenario gives the same clip bytes too.
"""

from __future__ import annotations

import heapq
import json
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from store_runtime.config import Scenario, load_scenario
from store_runtime.scoring import realtime_factor

ProgressFn = Callable[[float, float], None]


@dataclass(frozen=True)
class ReplayOptions:
    model: Path | None = None  # detector ONNX; default: the manifest's walkout-det
    threads: int = 2  # ONNX Runtime intra-op threads
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


def _frames_in_time_order(sources: dict[str, Iterator]) -> Iterator[tuple[str, Any]]:
    """(camera, frame) of every camera, by frame time; ties by camera id, so the order is fixed."""
    def tagged(camera: str, frames: Iterator) -> Iterator[tuple[float, str, int, Any]]:
        for frame in frames:
            yield frame.t, camera, frame.index, frame

    for _, camera, _, frame in heapq.merge(*(tagged(c, s) for c, s in sorted(sources.items()))):
        yield camera, frame


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
    from store_runtime.bus import MemoryBus
    from store_runtime.clips import ClipRecorder
    from store_runtime.db import open_database
    from store_runtime.node import CameraNode, NodeConfig, load_detector, shelf_for, stage_report
    from store_runtime.report import render_report
    from store_runtime.runtime import StoreRuntime
    from store_runtime.scoring import score_replay, write_metrics
    from vision.privacy import Redactor
    from vision.sinks import PrivateRecorder
    from vision.sources import SourceConfig, open_source

    started = time.perf_counter()
    scenario: Scenario = load_scenario(Path(scenario_dir))
    if options.truth and not scenario.truth_path.is_file():
        raise FileNotFoundError(f"{scenario.truth_path}: --truth given but the scenario has no truth.json")
    store = scenario.store
    out_dir = Path(out_dir)
    (out_dir / "private").mkdir(parents=True, exist_ok=True)
    detector = load_detector(options.model, options.threads)
    bus = MemoryBus()
    now = [scenario.start_unix]

    with tempfile.TemporaryDirectory(prefix="walkout-replay-") as tmp, ExitStack() as stack:
        db = open_database(f"sqlite:///{Path(tmp) / 'replay.db'}")
        stack.callback(db.close)
        runtime = StoreRuntime(db, store, clock=lambda: now[0])
        sources, nodes, fps = {}, {}, {}
        duration = 0.0  # of the longest recording as its container says, for the progress bar
        frames_read = dict.fromkeys(scenario.video_paths, 0)
        for camera, video in sorted(scenario.video_paths.items()):
            source = stack.enter_context(open_source(SourceConfig(kind="file", uri=video, camera=camera,
                                                                  start=scenario.start_unix)))
            info = source.info
            recorder = stack.enter_context(PrivateRecorder(out_dir / "private" / f"{camera}.mp4",
                                                           size=(info.width, info.height), fps=info.fps))
            nodes[camera] = CameraNode(store.config, camera, detector=detector, bus=bus,
                                       config=NodeConfig(detect_every=options.detect_every),
                                       shelf=shelf_for(store, camera), redactor=Redactor.from_manifest(),
                                       sink=recorder.write)
            if options.clips is not None and store.config.cameras[camera].slots:
                nodes[camera].clips = ClipRecorder(options.clips, camera)
            sources[camera] = iter(source)
            fps[camera], duration = info.fps, max(duration, (info.frames or 0) / info.fps)

        def deliver() -> None:
            for event in bus.drain():
                runtime.apply(event)

        for camera, frame in _frames_in_time_order(sources):
            now[0] = frame.t
            frames_read[camera] += 1
            nodes[camera].step(frame)
            deliver()
            if progress:
                progress(frame.t - scenario.start_unix, duration)
        # What was read, not what the containers said (a file may not say, or say wrong).
        duration = max((frames_read[c] / fps[c] for c in fps), default=0.0)
        for camera in sorted(nodes):
            nodes[camera].finish()
        deliver()
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
