"""`walkout bench load`: a real `walkout serve` and a trivial FastAPI app in their own processes,
a few requests of each kind from this one, every figure printed, no error, every exit charged; on
SQLite, on a PostgreSQL server given by URL with two servers sharing it (the bench's schema gone
afterwards), and on a throwaway PostgreSQL it starts and removes itself; wrong options refused
before anything starts; and the arithmetic of its figures."""

from __future__ import annotations

import json
import math
import re
import socket
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from store_runtime.bench_load import BenchError, LoadResult, Phase, own_schema
from store_runtime.cli import main
from store_runtime.pg_local import PgUnavailable, find_bin


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


def _ran_clean(result: dict, requests: int) -> None:
    for p in result["phases"]:
        assert p["requests"] == requests and p["errors"] == 0, p
    assert result["charged"] == requests and result["errors"] == 0


def test_bench_load_on_a_postgres_url_with_two_servers_sharing_it(postgres_server: str,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "load", "--requests", "6", "--concurrency", "2", "--db", postgres_server,
                 "--servers", "2", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["servers"] == 2 and result["database"].startswith("PostgreSQL at 127.0.0.1:"), result["database"]
    _ran_clean(result, 6)
    for p in result["phases"][:3]:  # round robin: each server took half
        assert p["by_server"] == [3, 3], p
    engine = create_engine(postgres_server)
    try:
        with engine.connect() as connection:
            left = connection.execute(text("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'walkout_bench_%'"))
            assert left.all() == []  # the bench's schema was dropped with what it wrote
    finally:
        engine.dispose()


def test_bench_load_starts_a_throwaway_postgres_and_removes_it(capsys: pytest.CaptureFixture[str]) -> None:
    try:
        find_bin()
    except PgUnavailable as exc:
        pytest.skip(str(exc))
    assert main(["bench", "load", "--requests", "4", "--concurrency", "2", "--start-postgres", "--json"]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert result["database"] == "PostgreSQL started by the bench (fsync on)" and result["servers"] == 1
    _ran_clean(result, 4)
    started = re.search(r"PostgreSQL \d+ on 127\.0\.0\.1:(\d+) in (\S+)", captured.err)
    assert started, captured.err
    assert not Path(started[2]).exists()  # its cluster is gone
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", int(started[1])), timeout=2):
        pass  # and nothing listens where it ran


@pytest.mark.parametrize(("argv", "message"), [
    (["--db", "sqlite:///x.db"], "--db: expected a postgresql:// URL"),
    (["--db", "postgresql://u@127.0.0.1:1/db", "--start-postgres"], "give one of them"),
    (["--servers", "0"], "--servers: expected 1 to 8, got 0"),
    (["--requests", "0"], "must be at least 1"),
])
def test_bench_load_refuses_wrong_options_before_starting_anything(argv: list[str], message: str,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "load", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "walkout serve on" not in err, err


def test_own_schema_keeps_the_search_path_to_itself() -> None:
    with pytest.raises(BenchError, match="options"), own_schema("postgresql://u@127.0.0.1:1/db?options=-cx%3Dy", "s"):
        pass
