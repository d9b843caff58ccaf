"""`walkout bench load`: throughput and latency of the exit-gate API on loopback, as ratios to a
trivial FastAPI endpoint measured the same way in the same run.

`walkout serve` runs in its own process, exactly as an installer starts it (its JSON request log
included), on one of three databases:

| `db` | the database |
|---|---|
| `sqlite` (default) | a fresh SQLite file in a temporary folder |
| `start-postgres` | a throwaway PostgreSQL server started here (`throwaway_postgres`), removed afterwards |
| a `postgresql://` URL | that server, in a schema of the bench's own (`walkout_bench_<run>`), dropped afterwards |

With `servers=2` two `walkout serve` processes share the database, as a store runs them behind its
proxy, and the requests go to them in turn (round robin, as the proxy spreads them). A trivial
FastAPI app (one POST that validates a small body and answers `{"ok": true}`) runs in another
process under uvicorn with the same options. This process is the load generator: a fixed number of
requests, `concurrency` threads each on its own keep-alive connection (one a server), in phases:

1. entries: `POST /v1/entries` with a fresh signed code each (201);
2. events: `POST /v1/events` from the aisle camera, a shopper taking a product (200; not a gate
   call, but it is what gives the exits something to charge; the shoppers walked in before, in
   batches, untimed);
3. exits: `POST /v1/exits` with an `Idempotency-Key` each (200, a real charge on the local
   provider: authorise and capture, each its own committed transaction);
4. trivial: the same number of `POST /ping` to the trivial app.

Any other status, or a connection error, is an error; the run reports them and `walkout bench
load` exits 1. Latencies are per request (send to last byte), p50 and p99 by nearest rank;
throughput is requests over the phase's wall time. On a shared machine the absolute figures move
with the load beside them; the ratios to the trivial endpoint are the figures to compare.

`served(...)`, `serve_command(...)` and `free_port()` are also what the tests use to run real
`walkout serve` processes.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from store_runtime.pg_local import free_port

__all__ = [
    "BenchError",
    "Call",
    "LoadResult",
    "Phase",
    "bench_load",
    "format_table",
    "free_port",
    "run_phase",
    "serve_command",
    "served",
    "throwaway_postgres",
    "trivial_app",
]

DEFAULT_STORE = Path("sample_videos") / "02-pick-put" / "store.yaml"
START_TIMEOUT_S = 60.0
REQUEST_TIMEOUT_S = 60.0
# uvicorn closes a keep-alive connection idle for 5 s; one idle this long is opened afresh before a
# request rather than found closed half way through sending it (a broken pipe is not the server's
# error). With one server a connection is never idle that long; with several it can be.
IDLE_REOPEN_S = 4.0
WALK_IN_BATCH = 200  # events a POST: well under the API's 500 and its 64 KiB body limit
MAX_SERVERS = 8


class BenchError(RuntimeError):
    """The bench could not run (a server did not start, the store has no shelf camera...)."""


# --------------------------------------------------------------------------------------------
# Servers in their own processes


def serve_command(store: Path, db_url: str, port: int) -> list[str]:
    """`walkout serve` as a command line, run by this Python (the console script's own code)."""
    return [sys.executable, "-m", "store_runtime.cli", "serve", "--store", str(store), "--db", db_url,
            "--port", str(port)]


def trivial_command(port: int) -> list[str]:
    return [sys.executable, "-m", "store_runtime.bench_load", "--trivial-port", str(port)]


def _server_env() -> dict[str, str]:
    # The bench's settings are its own: none of the caller's WALKOUT_* reach the server.
    return {k: v for k, v in os.environ.items() if not k.startswith("WALKOUT_")}


@contextmanager
def served(command: Sequence[str], port: int, log: Path, *, health: str = "/healthz",
           timeout_s: float = START_TIMEOUT_S, cwd: Path | None = None) -> Iterator[subprocess.Popen]:
    """Run `command` (a server on 127.0.0.1:`port`, its output to `log`) until `health` answers
    200; stopped with SIGTERM (then SIGKILL) when the block ends. Raises BenchError with the log's
    tail if it exits or does not answer within `timeout_s`."""
    with log.open("ab") as out:
        process = subprocess.Popen(list(command), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   cwd=cwd, env=_server_env())
    try:
        wait_up(port, process, log, health=health, timeout_s=timeout_s)
        yield process
    finally:
        stop(process)


def wait_up(port: int, process: subprocess.Popen, log: Path, *, health: str = "/healthz",
            timeout_s: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            raise BenchError(f"{' '.join(process.args[:4])}... exited with {process.returncode}:\n{_tail(log)}")
        try:
            status, _ = call(http.client.HTTPConnection("127.0.0.1", port, timeout=5), "GET", health)
            if status == 200:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise BenchError(f"nothing answered {health} on 127.0.0.1:{port} within {timeout_s:g} s:\n{_tail(log)}")
        time.sleep(0.1)


def stop(process: subprocess.Popen, timeout_s: float = 30.0) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    return process.returncode


def _tail(log: Path, chars: int = 3000) -> str:
    return log.read_text(errors="replace")[-chars:] if log.is_file() else ""


class _Ping(BaseModel):
    gate: str
    session: str


def trivial_app() -> Any:
    """The baseline: FastAPI's own cost for one small validated JSON body in and out, nothing else."""
    from fastapi import FastAPI

    app = FastAPI(title="trivial")

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/ping")
    def ping(body: _Ping) -> dict[str, bool]:
        return {"ok": True}

    return app


def _serve_trivial(port: int) -> None:
    import uvicorn

    # The options `walkout serve` runs uvicorn with.
    uvicorn.run(trivial_app(), host="127.0.0.1", port=port, log_config=None, access_log=False, server_header=False)


# --------------------------------------------------------------------------------------------
# PostgreSQL for the bench: a throwaway server, or a schema of its own on a given one


@contextmanager
def throwaway_postgres(log: Callable[[str], None] = lambda _line: None) -> Iterator[str]:
    """A PostgreSQL server for the length of the block (store_runtime.pg_local: a cluster in a
    temporary folder, on 127.0.0.1 at a free port), its `postgres` database's URL yielded; stopped
    and its folder removed afterwards. Unlike the tests' server it keeps fsync and synchronous
    commits on (`durable=True`): the bench measures what a store would run."""
    from store_runtime.pg_local import PgStartError, PgUnavailable, start_local_pg

    try:
        server = start_local_pg(durable=True)
    except PgUnavailable as exc:
        raise BenchError(f"--start-postgres: {exc}, or give --db postgresql://... of a server you run") from None
    except PgStartError as exc:
        raise BenchError(f"--start-postgres: {exc}") from None
    try:
        log(f"PostgreSQL {server.version} on 127.0.0.1:{server.port} in {server.folder}")
        yield server.url
    finally:
        server.stop()


@contextmanager
def own_schema(url: str, name: str) -> Iterator[str]:
    """`url` with a new, empty schema `name` first on its search path; the schema is dropped afterwards
    with everything the bench wrote in it. The URL's user needs CREATE on its database."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    parsed = make_url(url)
    if "options" in parsed.query:
        raise BenchError("--db: the bench sets the URL's `options` (search_path) itself; give a URL without them")
    admin = create_engine(parsed.set(drivername="postgresql+psycopg"))
    shown = parsed.render_as_string(hide_password=True)
    try:
        try:
            with admin.begin() as connection:
                connection.execute(text(f'CREATE SCHEMA "{name}"'))
        except SQLAlchemyError as exc:
            raise BenchError(f"--db {shown}: could not create the bench's schema {name}: "
                             f"{str(getattr(exc, 'orig', exc)).strip()}") from None
        try:
            yield parsed.update_query_dict({"options": f"-csearch_path={name}"}).render_as_string(hide_password=False)
        finally:
            with admin.begin() as connection:
                connection.execute(text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
    finally:
        admin.dispose()


# --------------------------------------------------------------------------------------------
# The load generator


def call(connection: http.client.HTTPConnection, method: str, path: str, body: Any = None,
         headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """One request on a keep-alive connection: (status, body)."""
    data = None if body is None else json.dumps(body).encode()
    sent = {"content-type": "application/json"} if data is not None else {}
    connection.request(method, path, body=data, headers={**sent, **(headers or {})})
    response = connection.getresponse()
    return response.status, response.read()


@dataclass(frozen=True, slots=True)
class Call:
    """A request of a phase, and the status that counts as success."""

    method: str
    path: str
    body: Any
    headers: dict[str, str]
    expect: int


@dataclass
class Phase:
    name: str
    requests: int
    concurrency: int
    wall_s: float
    latencies_s: list[float]
    errors: int
    first_errors: list[str] = field(default_factory=list)
    answers: list[tuple[int, bytes]] = field(default_factory=list, repr=False)
    answered_t: list[float] = field(default_factory=list, repr=False)  # Unix time each answer came
    by_server: list[int] = field(default_factory=list)  # requests sent to each server, in the order of the ports

    @property
    def throughput(self) -> float:
        return self.requests / self.wall_s if self.wall_s > 0 else math.inf

    def percentile_ms(self, q: float) -> float:
        """Nearest-rank percentile of the latencies, in ms."""
        if not self.latencies_s:
            return math.nan
        ordered = sorted(self.latencies_s)
        return 1000 * ordered[max(0, math.ceil(q * len(ordered)) - 1)]

    def as_dict(self) -> dict[str, Any]:
        return {"phase": self.name, "requests": self.requests, "concurrency": self.concurrency,
                "wall_s": round(self.wall_s, 3), "throughput_per_s": round(self.throughput, 1),
                "p50_ms": round(self.percentile_ms(0.5), 2), "p99_ms": round(self.percentile_ms(0.99), 2),
                "errors": self.errors, "first_errors": self.first_errors, "by_server": self.by_server}


def run_phase(name: str, port: int | Sequence[int], calls: Sequence[Call], concurrency: int) -> Phase:
    """Send `calls` to 127.0.0.1:`port` from `concurrency` threads; with several ports (servers
    behind one database) call i goes to port i modulo their number, round robin as a proxy spreads
    requests. Each thread keeps one keep-alive connection a port. Every answer is kept, in the
    order of `calls`."""
    ports = [port] if isinstance(port, int) else list(port)
    sent = [0] * len(ports)
    for i in range(len(calls)):
        sent[i % len(ports)] += 1
    todo: queue.Queue[int] = queue.Queue()
    for i in range(len(calls)):
        todo.put(i)
    latencies = [math.nan] * len(calls)
    answers: list[tuple[int, bytes]] = [(0, b"")] * len(calls)
    answered = [math.nan] * len(calls)
    errors: list[str] = []
    lock = threading.Lock()

    def connect(port: int) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT_S)

    def worker() -> None:
        connections = [connect(p) for p in ports]
        last_used = [time.perf_counter()] * len(ports)
        try:
            while True:
                try:
                    i = todo.get_nowait()
                except queue.Empty:
                    return
                c, k = calls[i], i % len(ports)
                start = time.perf_counter()
                if start - last_used[k] > IDLE_REOPEN_S:
                    connections[k].close()
                    connections[k] = connect(ports[k])
                try:
                    status, body = call(connections[k], c.method, c.path, c.body, c.headers)
                except (OSError, http.client.HTTPException) as e:
                    connections[k].close()
                    connections[k] = connect(ports[k])
                    status, body = 0, f"{type(e).__name__}: {e}".encode()
                last_used[k] = time.perf_counter()
                latencies[i] = last_used[k] - start
                answers[i], answered[i] = (status, body), time.time()
                if status != c.expect:
                    with lock:
                        errors.append(f"{c.method} {c.path}: {status} {body[:200].decode(errors='replace')}")
        finally:
            for connection in connections:
                connection.close()

    threads = [threading.Thread(target=worker, name=f"load-{n}") for n in range(max(1, concurrency))]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    return Phase(name, len(calls), concurrency, wall, [t for t in latencies if not math.isnan(t)], len(errors),
                 errors[:5], answers, answered, sent)


# --------------------------------------------------------------------------------------------
# The bench


@dataclass
class LoadResult:
    phases: list[Phase]
    charged: int  # exits answered with a charged receipt of a non-empty basket
    charged_cents: int
    database: str = "sqlite"  # what the servers ran on, in words
    servers: int = 1  # `walkout serve` processes sharing it

    def phase(self, name: str) -> Phase:
        return next(p for p in self.phases if p.name == name)

    @property
    def errors(self) -> int:
        return sum(p.errors for p in self.phases)

    def ratios(self, name: str) -> dict[str, float]:
        """`name`'s figures over the trivial endpoint's: throughput (below 1: slower), p50 and p99 (above 1)."""
        p, base = self.phase(name), self.phase("trivial")
        return {"throughput": p.throughput / base.throughput, "p50": p.percentile_ms(0.5) / base.percentile_ms(0.5),
                "p99": p.percentile_ms(0.99) / base.percentile_ms(0.99)}

    def as_dict(self) -> dict[str, Any]:
        phases = [{**p.as_dict(), **({f"{k}_ratio": round(v, 3) for k, v in self.ratios(p.name).items()}
                                     if p.name != "trivial" else {})} for p in self.phases]
        return {"database": self.database, "servers": self.servers, "phases": phases,
                "charged": self.charged, "charged_cents": self.charged_cents, "errors": self.errors}


def _shelf_setup(store: Any) -> tuple[str, str, str, str]:
    """(camera, entry zone, slot, gtin) of the first shelf camera that sees an entry zone and a slot."""
    entries = [name for name, gate in store.config.gates.items() if gate.kind == "entry"]
    for name, camera in store.config.cameras.items():
        zone = next((z for z in entries if z in camera.zones), None)
        if camera.role == "shelf" and zone and camera.slots:
            return name, zone, camera.slots[0].id, camera.slots[0].gtin
    raise BenchError(f"store {store.config.store_id}: no shelf camera with an entry zone and a slot to shop from")


def bench_load(requests: int = 500, concurrency: int = 8, store_yaml: Path = DEFAULT_STORE, *,
               db: str = "sqlite", servers: int = 1,
               log: Callable[[str], None] = lambda _line: None) -> LoadResult:
    """Run the phases above with `requests` requests each, against `servers` `walkout serve`
    processes on `db` (see the table above); raises BenchError if a server does not start."""
    from store_runtime.config import load_store

    if requests < 1 or concurrency < 1:
        raise BenchError(f"--requests and --concurrency must be at least 1 (got {requests}, {concurrency})")
    if not 1 <= servers <= MAX_SERVERS:
        raise BenchError(f"--servers: expected 1 to {MAX_SERVERS}, got {servers}")
    if db not in ("sqlite", "start-postgres") and not db.startswith(("postgresql://", "postgresql+psycopg://")):
        raise BenchError(f"--db: expected a postgresql:// URL (the default is a fresh SQLite file), got "
                         f"{db.split('@')[-1]!r}")
    store = load_store(store_yaml)
    plan = _plan(store, store_yaml)  # a store the bench cannot shop in is refused before anything starts
    run = uuid.uuid4().hex[:8]
    with tempfile.TemporaryDirectory(prefix="walkout-bench-load-") as folder, ExitStack() as stack:
        root = Path(folder)
        if db == "sqlite":
            db_url, database = f"sqlite:///{root / 'walkout.db'}", "SQLite file (WAL, synchronous=FULL)"
        elif db == "start-postgres":
            db_url = stack.enter_context(throwaway_postgres(log))
            database = "PostgreSQL started by the bench (fsync on)"
        else:
            db_url = stack.enter_context(own_schema(db, f"walkout_bench_{run}"))
            database = f"PostgreSQL at {db.split('@')[-1].split('?')[0]}"
        phases = _bench_phases(store, store_yaml, plan, db_url, root, requests, concurrency, servers, run, log)
    receipts = [json.loads(body) for status, body in phases[2].answers if status == 200]
    charged = [r for r in receipts if r.get("status") == "charged" and r.get("total_cents", 0) > 0]
    return LoadResult(phases, len(charged), sum(r["charged_cents"] for r in charged), database, servers)


def _plan(store: Any, store_yaml: Path) -> tuple[str, str, str, str, str, str]:
    """(entry gate, exit gate, shelf camera, its entry zone, slot, gtin) the shoppers use."""
    entry_gates = [n for n, g in store.config.gates.items() if g.kind == "entry"]
    exit_gates = [n for n, g in store.config.gates.items() if g.kind == "exit"]
    if not entry_gates or not exit_gates:
        raise BenchError(f"{store_yaml}: the bench needs an entry gate and an exit gate")
    camera, zone, slot, gtin = _shelf_setup(store)
    return zone, exit_gates[0], camera, zone, slot, gtin


def _bench_phases(store: Any, store_yaml: Path, plan: tuple[str, str, str, str, str, str], db_url: str, root: Path,
                  requests: int, concurrency: int, servers: int, run: str,
                  log: Callable[[str], None]) -> list[Phase]:
    """The servers on `db_url` and the trivial app started, the four phases run: [entries, events, exits, trivial]."""
    from store_runtime.db import add_credential, open_database
    from store_runtime.events import event_id
    from vision.entry_code import EntryClaims, make_code

    entry_gate, exit_gate, camera, zone, slot, gtin = plan
    database = open_database(db_url)  # migrated here, once, before the servers start
    try:
        tokens = {name: add_credential(database, role, name) for name, role in
                  ((entry_gate, "gate"), (exit_gate, "gate"), (camera, "node"))}
    finally:
        database.close()
    auth = {name: {"Authorization": f"Bearer {token}"} for name, token in tokens.items()}
    api_ports, trivial_port = [free_port() for _ in range(servers)], free_port()
    log(f"walkout serve on 127.0.0.1:{', '.join(map(str, api_ports))}, the trivial app on 127.0.0.1:{trivial_port}")
    with ExitStack() as stack:
        for n, port in enumerate(api_ports):
            stack.enter_context(served(serve_command(store_yaml.resolve(), db_url, port), port,
                                       root / f"serve-{n}.log", cwd=root))
        stack.enter_context(served(trivial_command(trivial_port), trivial_port, root / "trivial.log", cwd=root))
        exp = int(time.time()) + 3600
        codes = [make_code(store.config.entry_key_bytes,
                           EntryClaims(f"c-{i:05d}", f"bench-{run}-{i}", store.config.store_id, exp, 1))
                 for i in range(requests)]
        entries = run_phase("entries", api_ports, [
            Call("POST", "/v1/entries", {"gate": entry_gate, "code": c}, auth[entry_gate], 201) for c in codes],
            concurrency)
        log(f"entries: {entries.throughput:.0f}/s")
        # Each shopper walks in just after their code was admitted (the store clock is this
        # machine's), which binds their track to the session waiting at the gate; in time order
        # (the node's camera sees them one after the other), so each track is bound to a session;
        # not timed. The phase times the picks that follow, one a request.
        admitted = sorted((t, json.loads(body)["session"]) for (status, body), t in
                          zip(entries.answers, entries.answered_t, strict=True) if status == 201)
        sessions = [s for _, s in admitted]
        walk_in = [{"id": event_id("bench", run, i, "entered"), "t": t + 0.001, "camera": camera,
                    "kind": "entered", "track": i, "zone": zone} for i, (t, _) in enumerate(admitted)]
        for start in range(0, len(walk_in), WALK_IN_BATCH):
            batch = run_phase("walk in", api_ports[0], [Call("POST", "/v1/events", {
                "events": walk_in[start:start + WALK_IN_BATCH]}, auth[camera], 200)], 1)
            if batch.errors:
                raise BenchError(f"walking the shoppers in failed: {batch.first_errors[0]}")
        events = run_phase("events", api_ports, [
            Call("POST", "/v1/events", {"events": [
                {"id": event_id("bench", run, i, "pick"), "t": t + 0.5, "camera": camera, "kind": "shelf",
                 "action": "pick", "track": i, "gtin": gtin, "qty": 1, "slot": slot, "confidence": 0.95}]},
                 auth[camera], 200) for i, (t, _) in enumerate(admitted)], concurrency)
        log(f"events: {events.throughput:.0f}/s")
        exits = run_phase("exits", api_ports, [
            Call("POST", "/v1/exits", {"gate": exit_gate, "session": s},
                 {**auth[exit_gate], "Idempotency-Key": f"bench-{run}-{n}"}, 200)
            for n, s in enumerate(sessions)], concurrency)
        log(f"exits: {exits.throughput:.0f}/s")
        trivial = run_phase("trivial", trivial_port, [
            Call("POST", "/ping", {"gate": exit_gate, "session": f"s-{i}"}, {}, 200) for i in range(requests)],
            concurrency)
        log(f"trivial: {trivial.throughput:.0f}/s")
    return [entries, events, exits, trivial]


def format_table(result: LoadResult) -> str:
    lines = [f"{result.servers} walkout serve process{'es' if result.servers > 1 else ''} on {result.database}", "",
             "| phase | requests | concurrency | per second | p50 ms | p99 ms | errors | vs trivial: "
             "throughput / p50 / p99 |", "|---|---|---|---|---|---|---|---|"]
    for p in result.phases:
        ratios = "-" if p.name == "trivial" else " / ".join(f"{v:.2f}x" for v in result.ratios(p.name).values())
        lines.append(f"| {p.name} | {p.requests} | {p.concurrency} | {p.throughput:.0f} | {p.percentile_ms(0.5):.1f} "
                     f"| {p.percentile_ms(0.99):.1f} | {p.errors} | {ratios} |")
    lines.append(f"exits charged: {result.charged} (a basket of one product each), {result.charged_cents} cents; "
                 f"errors: {result.errors}")
    lines += [f"  {p.name}: {e}" for p in result.phases for e in p.first_errors]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m store_runtime.bench_load --trivial-port N`: the trivial app (the bench starts it)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trivial-port", type=int, required=True)
    _serve_trivial(parser.parse_args(argv).trivial_port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
