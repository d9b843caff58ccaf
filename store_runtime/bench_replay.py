"""`walkout bench replay`: how fast the whole system replays the sample scenarios, and where the time goes.

Each scenario is replayed exactly as `walkout replay` does (every camera, private video included)
into a temporary folder. The realtime factor is SPEC section 6's: recorded seconds of all cameras
together over wall-clock seconds of the replay. The target on a 2-core machine is 2 (two cameras
in real time). Stage seconds are summed over every camera of every scenario. A replay runs its
cameras side by side, each in a thread of its own and each camera's face blurring and video writing
in another, so stage seconds are thread time: on a busy machine a stage's seconds include the time
its thread waited for a core, and together they add up to more than the wall time.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from store_runtime.replay import ReplayOptions, ReplayResult, replay
from store_runtime.scoring import realtime_factor

TARGET = 2.0


@dataclass
class ReplayBench:
    rows: list[dict[str, Any]] = field(default_factory=list)  # one per scenario
    stages: dict[str, float] = field(default_factory=dict)  # stage -> seconds over everything
    recorded_seconds: float = 0.0
    wall_seconds: float = 0.0

    @property
    def realtime_factor(self) -> float:
        return realtime_factor(self.recorded_seconds, self.wall_seconds)

    def add(self, name: str, result: ReplayResult) -> None:
        self.recorded_seconds += result.recorded_seconds
        self.wall_seconds += result.wall_seconds
        frames = 0
        for camera in result.stages.values():
            frames += camera["frames"]
            for stage, t in camera["stages"].items():
                self.stages[stage] = self.stages.get(stage, 0.0) + t["seconds"]
        self.rows.append({"scenario": name, "recorded_s": round(result.recorded_seconds, 2),
                          "wall_s": round(result.wall_seconds, 2), "frames": frames,
                          "realtime_factor": round(result.realtime_factor, 3),
                          **({k: result.metrics[k] for k in ("receipt_accuracy", "event_f1", "face_recall")}
                             if result.metrics else {})})

    def as_dict(self) -> dict[str, Any]:
        return {"scenarios": self.rows, "realtime_factor": round(self.realtime_factor, 3), "target": TARGET,
                "recorded_seconds": round(self.recorded_seconds, 2), "wall_seconds": round(self.wall_seconds, 2),
                "stage_seconds": {k: round(v, 2) for k, v in self.stages.items()}}


def bench_replay(scenarios: Sequence[Path], options: ReplayOptions | None = None,
                 log: Callable[[str], None] = print) -> ReplayBench:
    options = options or ReplayOptions(truth=True)
    bench = ReplayBench()
    for scenario in scenarios:
        with tempfile.TemporaryDirectory(prefix="walkout-bench-replay-") as out:
            result = replay(scenario, Path(out), options)
        bench.add(scenario.name, result)
        log(f"{scenario.name}: realtime factor {result.realtime_factor:.2f}")
    return bench


def format_table(bench: ReplayBench) -> str:
    d = bench.as_dict()
    quality = any("receipt_accuracy" in r for r in d["scenarios"])
    head = "| scenario | recorded s | wall s | realtime factor |" + (
        " receipt accuracy | event F1 | face recall |" if quality else "")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in d["scenarios"]:
        row = f"| {r['scenario']} | {r['recorded_s']:.1f} | {r['wall_s']:.1f} | {r['realtime_factor']:.2f} |"
        if quality:
            row += f" {r.get('receipt_accuracy', '')} | {r.get('event_f1', '')} | {r.get('face_recall', '')} |"
        lines.append(row)
    lines.append(f"\nAll: {d['recorded_seconds']:.1f} s recorded in {d['wall_seconds']:.1f} s, realtime factor "
                 f"{d['realtime_factor']:.2f} (target {TARGET:g}). Cameras and their face blurring ran side by side: "
                 f"{sum(d['stage_seconds'].values()):.1f} s of stage thread time.\n\n"
                 f"| stage | seconds | share |\n|---|---|---|")
    total = sum(d["stage_seconds"].values()) or 1.0
    for stage, seconds in sorted(d["stage_seconds"].items(), key=lambda kv: -kv[1]):
        lines.append(f"| {stage} | {seconds:.1f} | {seconds / total:.0%} |")
    return "\n".join(lines)
