"""`kill -9` of `walkout serve` in the middle of a scenario: the camera nodes' events of a sample
scenario are posted to a real `walkout serve` one by one, as nodes send their outboxes; the server
is killed (SIGKILL: no shutdown, no handler) as the first shopper's exit event goes out, which is
when the runtime charges them (on PostgreSQL, exactly between the charge written and the provider
asked); it is started again on the same database, and the nodes resend
everything not acknowledged. The receipts are those of an undisturbed run, and each shopper was
charged once.

The events are the ones the sample's truth.json says its cameras see (a code read at the gate, the
shopper walking in, each pick and put, walking out), not a vision replay of its videos, which
takes minutes here; the runtime's side, which is what a crash tests, is the same."""

from __future__ import annotations

import http.client
import json
import subprocess
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest
import yaml
from sqlalchemy import create_engine, select, text

from store_runtime.bench_load import call, free_port, serve_command, served, wait_up
from store_runtime.db import LedgerRow, add_credential, open_database
from store_runtime.events import event_id

REPO = Path(__file__).resolve().parents[3]
SCENARIO = REPO / "sample_videos" / "03-two-shoppers"  # one shopper leaves while the other still shops
STORE = SCENARIO / "store.yaml"

pytestmark = pytest.mark.timeout(180)


def scenario_events(scenario: Path) -> list[dict]:
    """The node events of `scenario`, in time order, as its truth.json says its cameras see them."""
    truth = json.loads((scenario / "truth.json").read_text())
    start = datetime.fromisoformat(yaml.safe_load((scenario / "scenario.yaml").read_text())["start"]
                                   .replace("Z", "+00:00")).timestamp()
    events, tracks = [], {}
    for n, customer in enumerate(truth["customers"], start=1):
        tracks[customer["customer"]] = n
        t = start + customer["entered_t"]
        events += [
            {"id": event_id("gate", "entry", n), "t": t, "camera": "gate", "kind": "entry", "gate": "entry-1",
             "code": customer["token"], "admitted": True, "detail": "read at the gate"},
            {"id": event_id("aisle", "entered", n), "t": t + 1.5, "camera": "aisle", "kind": "entered", "track": n,
             "zone": "entry-1"},
            {"id": event_id("aisle", "exited", n), "t": start + customer["exited_t"], "camera": "aisle",
             "kind": "exited", "track": n, "zone": "exit-1"}]
    for k, e in enumerate(truth["events"]):
        events.append({"id": event_id("aisle", "shelf", k), "t": start + e["t"], "camera": "aisle", "kind": "shelf",
                       "action": e["action"], "track": tracks[e["customer"]], "gtin": e["gtin"], "qty": e["qty"],
                       "slot": e["slot"], "confidence": 0.95})
    return sorted(events, key=lambda e: e["t"])


class Nodes:
    """The camera nodes: each event posted once acknowledged, in order; `sent` counts the acknowledged."""

    def __init__(self, port: int, tokens: dict[str, str], events: list[dict]) -> None:
        self.port, self.tokens, self.events = port, tokens, events
        self.sent = 0
        self.sending = threading.Event()  # set as the event at `watch` goes out
        self.watch = -1

    def send(self) -> None:
        """Post from the first event not acknowledged; stop at the first connection error."""
        while self.sent < len(self.events):
            event = self.events[self.sent]
            if self.sent == self.watch:
                self.sending.set()
            try:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                status, body = call(connection, "POST", "/v1/events", {"events": [event]},
                                    {"Authorization": f"Bearer {self.tokens[event['camera']]}"})
                connection.close()
            except (OSError, http.client.HTTPException):
                return  # the server is gone: the event stays in the outbox
            assert status == 200, body
            self.sent += 1


def receipts(port: int, token: str) -> list[dict]:
    status, body = call(http.client.HTTPConnection("127.0.0.1", port, timeout=30), "GET", "/v1/receipts", None,
                        {"Authorization": f"Bearer {token}"})
    assert status == 200, body
    return json.loads(body)


def setup_db(url: str) -> dict[str, str]:
    db = open_database(url)
    try:
        return {name: add_credential(db, role, name) for name, role in
                (("gate", "node"), ("aisle", "node"), ("alice", "operator"))}
    finally:
        db.close()


def captures(url: str) -> list[tuple[str, int]]:
    db = open_database(url)
    try:
        with db.transaction() as tx:
            return sorted((r.customer, r.amount_cents) for r in tx.scalars(select(LedgerRow))
                          if r.op == "capture")
    finally:
        db.close()


@pytest.fixture(scope="module")
def undisturbed(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    """The receipts of the scenario sent to a `walkout serve` that nothing happens to."""
    folder = tmp_path_factory.mktemp("calm")
    url = f"sqlite:///{folder / 'walkout.db'}"
    tokens = setup_db(url)
    port = free_port()
    with served(serve_command(STORE, url, port), port, folder / "serve.log", cwd=folder):
        nodes = Nodes(port, tokens, scenario_events(SCENARIO))
        nodes.send()
        assert nodes.sent == len(nodes.events)
        expected = receipts(port, tokens["alice"])
    truth = json.loads((SCENARIO / "truth.json").read_text())
    assert [(r["customer"], r["status"], sorted((line["gtin"], line["qty"]) for line in r["lines"]))
            for r in expected] == [(c["customer"], "charged", sorted((b["gtin"], b["qty"]) for b in c["basket"]))
                                   for c in truth["customers"]]
    assert all(r["charge"] and r["charged_cents"] == r["total_cents"] > 0 for r in expected)
    return expected


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_kill_9_mid_scenario_then_restart_gives_the_receipts_of_an_undisturbed_run(
        backend: str, undisturbed: list[dict], tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """SQLite: killed a few milliseconds after the first walk-out event goes out, wherever that
    lands. PostgreSQL: held exactly between the exit's committed pending charge and the provider
    (the test locks the provider's ledger table), then killed: money has not moved, and must move
    once."""
    url = f"sqlite:///{tmp_path / 'walkout.db'}" if backend == "sqlite" else request.getfixturevalue("postgres_url")
    tokens = setup_db(url)
    events = scenario_events(SCENARIO)
    port = free_port()
    log = tmp_path / "serve.log"
    hold = None
    if backend == "postgresql":
        hold = create_engine(url).connect()
        hold.begin()
        hold.execute(text("LOCK TABLE payment_ledger IN ACCESS EXCLUSIVE MODE"))
    with log.open("ab") as out:
        server = subprocess.Popen(serve_command(STORE, url, port), stdout=out, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, cwd=tmp_path)
    nodes = Nodes(port, tokens, events)
    sender = threading.Thread(target=nodes.send)
    try:
        wait_up(port, server, log)
        # The first walk-out: the runtime closes the session and charges it as this event is applied.
        nodes.watch = next(n for n, e in enumerate(events) if e["kind"] == "exited")
        sender.start()
        assert nodes.sending.wait(timeout=60)
        if hold is None:
            time.sleep(0.005)
        else:
            _wait_for_pending_charge(url)
        server.kill()  # SIGKILL
    finally:
        server.kill()
        server.wait(timeout=30)
        if hold is not None:
            hold.rollback()
            hold.close()
        if sender.ident is not None:  # started
            sender.join(timeout=60)
    assert nodes.sent < len(events), "the server was killed after the whole scenario had been sent"
    if hold is not None:
        assert captures(url) == []  # killed before the provider heard of the charge
    with served(serve_command(STORE, url, port), port, log, cwd=tmp_path):  # boot finishes what was pending
        nodes.send()  # the outboxes: from the first event not acknowledged, which may have been applied
        assert nodes.sent == len(events)
        again = receipts(port, tokens["alice"])
    assert again == undisturbed
    assert captures(url) == sorted((r["customer"], r["total_cents"]) for r in undisturbed)  # once each
    if hold is not None:
        assert "left pending" in log.read_text()  # it was walkout serve's boot that finished the charge


def _wait_for_pending_charge(url: str, timeout_s: float = 30.0) -> None:
    engine = create_engine(url)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            with engine.connect() as connection:
                if connection.execute(text("SELECT count(*) FROM charges WHERE state = 'pending'")).scalar():
                    return
            assert time.monotonic() < deadline, "the exit's charge was never written"
            time.sleep(0.01)
    finally:
        engine.dispose()
