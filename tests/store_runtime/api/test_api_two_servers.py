"""Two real `walkout serve` processes on one database, as a store runs them behind a load balancer:
started at the same moment on an empty database (both migrate it), entries, node events and exits
split across them, and one shopper's exit sent to both at once — with one Idempotency-Key (a gate
retrying through the other server) or with two (two gates, or a gate that lost its key). Whatever
interleaving the database allows: one charge per shopper, of the basket's total, and the same
answer everywhere. On PostgreSQL (a server the tests start) and on one SQLite file."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from sqlalchemy import select

from api.api_fakes import APPLE, OAT_MILK, STORE_YAML
from store_runtime.bench_load import call, free_port, serve_command, stop, wait_up
from store_runtime.config import load_store
from store_runtime.db import LedgerRow, add_credential, open_database
from store_runtime.events import event_id
from vision.entry_code import EntryClaims, make_code

pytestmark = pytest.mark.timeout(240)

PRICES = {APPLE: 389, OAT_MILK: 359}
SLOTS = {APPLE: "B1", OAT_MILK: "C4"}
RETRY_FOR_S = 30.0


@pytest.fixture(params=["postgresql", "sqlite"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        return request.getfixturevalue("postgres_url")
    return f"sqlite:///{tmp_path / 'walkout.db'}"


class Server:
    """One `walkout serve` on 127.0.0.1; each request on its own connection (threads share it)."""

    def __init__(self, port: int, tokens: dict[str, str]) -> None:
        self.port, self.tokens = port, tokens

    def post(self, path: str, body: dict, as_: str, **headers: str) -> tuple[int, bytes]:
        import http.client

        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            return call(connection, "POST", path, body, {"Authorization": f"Bearer {self.tokens[as_]}", **headers})
        finally:
            connection.close()

    def get(self, path: str, as_: str) -> tuple[int, bytes]:
        import http.client

        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            return call(connection, "GET", path, None, {"Authorization": f"Bearer {self.tokens[as_]}"})
        finally:
            connection.close()

    def exit_until_answered(self, session: str, key: str) -> tuple[list[int], bytes]:
        """POST /v1/exits as a gate does: a 409 (the key in flight elsewhere) is retried with the
        same key and body. Every status seen, and the last answer's bytes."""
        seen: list[int] = []
        deadline = time.monotonic() + RETRY_FOR_S
        while True:
            status, body = self.post("/v1/exits", {"gate": "exit-1", "session": session}, "exit-1",
                                     **{"Idempotency-Key": key})
            seen.append(status)
            if status != 409 or time.monotonic() > deadline:
                return seen, body
            time.sleep(0.05)


@pytest.fixture
def two_servers(db_url: str, tmp_path: Path) -> Iterator[tuple[Server, Server, str]]:
    """Two `walkout serve` started together on the same (empty) database, then a credential of each kind."""
    ports = [free_port(), free_port()]
    logs = [tmp_path / f"serve-{n}.log" for n in range(2)]
    with ExitStack() as stack:
        processes = []
        for port, log in zip(ports, logs, strict=True):
            out = stack.enter_context(log.open("wb"))
            process = subprocess.Popen(serve_command(STORE_YAML, db_url, port), stdout=out,
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=tmp_path)
            stack.callback(stop, process)
            processes.append(process)
        for port, process, log in zip(ports, processes, logs, strict=True):
            wait_up(port, process, log)
        db = open_database(db_url)
        try:
            tokens = {name: add_credential(db, role, name) for name, role in
                      (("entry-1", "gate"), ("exit-1", "gate"), ("aisle", "node"))}
        finally:
            db.close()
        yield Server(ports[0], tokens), Server(ports[1], tokens), db_url
        for log in logs:
            assert "Traceback" not in log.read_text(errors="replace"), log.read_text(errors="replace")[-3000:]


def _shop(servers: tuple[Server, Server], shoppers: int) -> dict[str, int]:
    """`shoppers` walk in (entry on one server, their track's event on the other) and take products
    (each event on the server after); returns session -> basket total in cents."""
    store = load_store(STORE_YAML).config
    exp = int(time.time()) + 600
    baskets: dict[str, int] = {}
    n = 0
    for i in range(shoppers):
        code = make_code(store.entry_key_bytes, EntryClaims(f"c-2s-{i}", f"two-servers-{i}-{exp}", store.store_id,
                                                            exp, 1))
        status, body = servers[i % 2].post("/v1/entries", {"gate": "entry-1", "code": code}, "entry-1")
        assert status == 201, body
        session = json.loads(body)["session"]
        t = time.time()
        status, body = servers[(i + 1) % 2].post("/v1/events", {"events": [
            {"id": event_id("two-servers", i, "entered"), "t": t, "camera": "aisle", "kind": "entered",
             "track": 100 + i, "zone": "entry-1"}]}, "aisle")
        assert status == 200, body
        baskets[session] = 0
        for k in range(i % 3 + 1):
            gtin = (APPLE, OAT_MILK)[k % 2]
            n += 1
            status, body = servers[n % 2].post("/v1/events", {"events": [
                {"id": event_id("two-servers", i, "pick", k), "t": t + 1 + k, "camera": "aisle", "kind": "shelf",
                 "action": "pick", "track": 100 + i, "gtin": gtin, "qty": 1, "slot": SLOTS[gtin],
                 "confidence": 0.95}]}, "aisle")
            assert status == 200, body
            baskets[session] += PRICES[gtin]
    return baskets


def _at_once(*jobs) -> list:
    """Run `jobs` in threads released together; their results in order."""
    barrier = threading.Barrier(len(jobs))
    results: list = [None] * len(jobs)
    errors: list[BaseException] = []

    def run(n: int, job) -> None:
        try:
            barrier.wait(timeout=30)
            results[n] = job()
        except BaseException as e:  # collected for the assertion below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(n, job)) for n, job in enumerate(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    return results


def test_two_servers_on_one_database_charge_each_shopper_once(two_servers: tuple[Server, Server, str]) -> None:
    a, b, db_url = two_servers
    baskets = _shop((a, b), shoppers=8)
    sessions = list(baskets)
    same_key, two_keys = sessions[:4], sessions[4:]

    jobs = []
    for s in same_key:  # one gate's exit, its retry gone to the other server at the same moment
        jobs += [lambda s=s: a.exit_until_answered(s, f"exit-{s}"), lambda s=s: b.exit_until_answered(s, f"exit-{s}")]
    for s in two_keys:  # two requests with their own keys for one shopper
        jobs += [lambda s=s: a.exit_until_answered(s, f"a-{s}"), lambda s=s: b.exit_until_answered(s, f"b-{s}")]
    answers = _at_once(*jobs)

    for n, s in enumerate(sessions):
        (seen_a, body_a), (seen_b, body_b) = answers[2 * n], answers[2 * n + 1]
        assert set(seen_a + seen_b) <= {200, 409} and seen_a[-1] == seen_b[-1] == 200, (seen_a, seen_b)
        receipt_a, receipt_b = json.loads(body_a), json.loads(body_b)
        assert receipt_a["status"] == "charged" and receipt_a["total_cents"] == baskets[s], receipt_a
        assert receipt_a["charged_cents"] == baskets[s] and receipt_a["charge"], receipt_a
        if s in same_key:
            assert body_a == body_b  # the very same bytes: the first answer, stored and replayed
        else:
            assert receipt_b == receipt_a
        # Each server reads the same receipt back.
        assert json.loads(a.get(f"/v1/receipts/{s}", "exit-1")[1]) == json.loads(b.get(f"/v1/receipts/{s}",
                                                                                           "exit-1")[1])

    db = open_database(db_url)
    try:
        with db.transaction() as tx:
            ledger = tx.scalars(select(LedgerRow)).all()
    finally:
        db.close()
    store_customers = {json.loads(a.get(f"/v1/receipts/{s}", "exit-1")[1])["customer"]: s for s in sessions}
    captured = {row.customer: row.amount_cents for row in ledger if row.op == "capture"}
    assert sorted(row.customer for row in ledger if row.op == "capture") == sorted(store_customers)  # once each
    assert sorted(row.customer for row in ledger if row.op == "authorise") == sorted(store_customers)
    assert captured == {customer: baskets[s] for customer, s in store_customers.items()}
