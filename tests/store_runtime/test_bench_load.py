"""`walkout bench load`: a real `walkout serve` and a trivial FastAPI app in their own processes,
a few requests of each kind from this one, every figure printed, no error, every exit charged;
and the arithmetic of its figures."""

from __future__ import annotations

import json
import math

import pytest

from store_runtime.bench_load import LoadResult, Phase
from store_runtime.cli import main


def test_bench_load_prints_every_figure_and_charges_every_exit(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "load", "--requests", "6", "--concurrency", "2", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    phases = {p["phase"]: p for p in result["phases"]}
    assert list(phases) == ["entries", "events", "exits", "trivial"]
    for p in phases.values():
        assert p["requests"] == 6 and p["errors"] == 0, p
        assert p["throughput_per_s"] > 0 and 0 < p["p50_ms"] <= p["p99_ms"], p
    for name in ("entries", "events", "exits"):
        assert {"throughput_ratio", "p50_ratio", "p99_ratio"} <= set(phases[name]), phases[name]
    # Each shopper walked in and took one product: every exit is a real charge, not an empty basket.
    assert result["charged"] == 6 and result["charged_cents"] > 0 and result["errors"] == 0


def test_bench_load_table_names_the_ratios() -> None:
    from store_runtime.bench_load import format_table

    def phase(name: str, ms: list[float], wall: float) -> Phase:
        return Phase(name, len(ms), 2, wall, [m / 1000 for m in ms], 0)

    result = LoadResult([phase("exits", [10, 20, 30, 40], 0.5), phase("trivial", [1, 2, 3, 4], 0.05)], 4, 400)
    assert result.phase("exits").percentile_ms(0.5) == pytest.approx(20)  # nearest rank, not interpolated
    assert result.phase("exits").percentile_ms(0.99) == pytest.approx(40)
    assert result.ratios("exits") == pytest.approx({"throughput": 0.1, "p50": 10.0, "p99": 10.0})
    table = format_table(result)
    assert "| exits | 4 | 2 | 8 | 20.0 | 40.0 | 0 | 0.10x / 10.00x / 10.00x |" in table
    assert math.isnan(Phase("none", 0, 1, 0.0, [], 0).percentile_ms(0.5))
