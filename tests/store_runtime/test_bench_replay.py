"""walkout bench replay's arithmetic: the realtime factor is SPEC 6's (recorded over wall seconds, all
scenarios together, not a mean of ratios); stage seconds are every camera's thread time, summed."""

from __future__ import annotations

from pathlib import Path

from store_runtime.bench_replay import ReplayBench, format_table
from store_runtime.replay import ReplayResult


def _camera(detect: float, redact: float) -> dict:
    return {"frames": 300, "detections": 100,
            "stages": {"detect": {"calls": 300, "ms_per_call": 1.0, "seconds": detect},
                       "redact": {"calls": 300, "ms_per_call": 1.0, "seconds": redact}}}


def _result(recorded: float, wall: float, detect: float, redact: float) -> ReplayResult:
    stages = {"aisle": _camera(detect, redact), "gate": _camera(detect / 2, redact / 3)}
    return ReplayResult(out=Path("."), receipts=1, events=2, recorded_seconds=recorded, wall_seconds=wall,
                        metrics={"receipt_accuracy": 1.0, "event_f1": 1.0, "face_recall": 0.99}, stages=stages)


def test_the_factor_is_over_all_seconds_and_stages_sum_every_camera() -> None:
    bench = ReplayBench()
    bench.add("a", _result(recorded=40, wall=10, detect=4, redact=3))
    bench.add("b", _result(recorded=20, wall=20, detect=8, redact=6))
    d = bench.as_dict()
    assert d["realtime_factor"] == 2.0  # 60 / 30, where the mean of the ratios would say 2.5
    assert d["stage_seconds"] == {"detect": 18, "redact": 12}  # both cameras' threads
    table = format_table(bench)
    assert "| a | 40.0 | 10.0 | 4.00 | 1.0 | 1.0 | 0.99 |" in table and "realtime factor 2.00 (target 2)" in table
    assert "30.0 s of stage thread time" in table
    assert table.index("| detect |") < table.index("| redact |")  # the biggest cost first
