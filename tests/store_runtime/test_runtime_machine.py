"""A Hypothesis state machine over the store runtime on a SQLite file: shoppers come in, take and
put back products, the node resends old events, gates ask to let them out with new keys and retry
old ones, the camera sees them leave, the process restarts (with or without finishing what it left
pending at boot) or dies between claiming an exit's key and charging it. In any order:

- a shopper who left is charged exactly their basket's total at the exit, once (one capture);
- a key's first answer is every later answer to it, byte for byte, restarts and crashes included;
- every exit of one shopper (other keys, the camera) answers the same receipt, the same charge.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from store_fakes import (
    BREAD,
    JAM,
    MILK,
    PRICES,
    Clock,
    Crash,
    CrashingProvider,
    code,
    entered,
    exited,
    open_runtime,
    shelf,
)

from store_runtime.payments import LocalProvider
from store_runtime.runtime import StoreRuntime

PRODUCTS = [MILK, BREAD, JAM]
SLOTS = {MILK: "A1", BREAD: "A2", JAM: "A3"}
LEASE_S = 30.0  # RuntimeSettings' in_flight_lease_s
CRASHES = st.sampled_from([None, "before_provider", "after_capture"])


@dataclass
class Shopper:
    customer: str
    session: str
    track: int
    basket: dict[str, int] = field(default_factory=dict)
    left_with: int | None = None  # the basket's total when the first exit closed the session
    keys: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(PRICES[gtin] * qty for gtin, qty in self.basket.items())


class StoreMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.folder = Path(tempfile.mkdtemp(prefix="walkout-machine-"))
        self.clock = Clock()
        self.runtime: StoreRuntime = open_runtime(self.folder, clock=self.clock)
        self.shoppers: list[Shopper] = []
        self.events: list = []  # every node event delivered, for redelivery
        self.answers: dict[str, tuple[int, str]] = {}  # key -> its first answer (status, canonical JSON)
        self.bodies: dict[str, dict] = {}
        self.keys = 0

    def teardown(self) -> None:
        self.runtime.db.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    # ------------------------------------------------------------------ helpers

    def deliver(self, event) -> None:
        self.runtime.apply(event)
        self.events.append(event)

    def inside(self) -> list[Shopper]:
        return [s for s in self.shoppers if s.left_with is None]

    def answer(self, shopper: Shopper, key: str) -> None:
        """Ask to let `shopper` out with `key`, and hold the answer to what came before."""
        status, body = self.runtime.exit_request("exit-1", shopper.session, key=key, body=self.bodies[key],
                                                 t=self.clock.advance(1))
        if status == 409:  # the key's request died in flight and its lease has not run out
            assert key not in self.answers
            return
        assert status == 200, (status, body)
        text = json.dumps(body, sort_keys=True)
        if key in self.answers:
            assert self.answers[key] == (status, text), "a retry got another answer than the first"
        self.answers[key] = (status, text)
        self.closed(shopper)

    def closed(self, shopper: Shopper) -> None:
        if shopper.left_with is None:
            shopper.left_with = shopper.total

    def new_key(self, shopper: Shopper) -> str:
        self.keys += 1
        key = f"gate-key-{self.keys}"
        shopper.keys.append(key)
        self.bodies[key] = {"gate": "exit-1", "session": shopper.session}
        return key

    def dying(self, crash: str | None, recover: bool, exit_, shopper: Shopper) -> None:
        """Run `exit_`; with `crash`, the process dies if that exit asks the provider for money (after
        the key and the pending charge were committed, before the provider heard of it or just
        after it took the money), and a new process starts."""
        if crash is not None:
            self.runtime.provider = CrashingProvider(self.runtime.db, crash, clock=self.clock)
        try:
            exit_()
        except Crash:
            self.closed(shopper)  # the session closed in the transaction that claimed the key
            self.restart(recover)
        else:
            self.runtime.provider = LocalProvider(self.runtime.db, clock=self.clock)

    # ------------------------------------------------------------------ rules

    @initialize(gtin=st.sampled_from(PRODUCTS))
    def first_shopper(self, gtin: str) -> None:
        # Someone inside with something to pay for from the first step: the steps go to the exits.
        self.enter()
        shopper = self.shoppers[0]
        self.deliver(shelf(shopper.track, "pick", gtin, self.clock.advance(1), slot=SLOTS[gtin]))
        shopper.basket[gtin] = 1

    @precondition(lambda self: len(self.shoppers) < 3)
    @rule()
    def enter(self) -> None:
        n = len(self.shoppers)
        customer = f"c-{n:04d}"
        view = self.runtime.enter("entry-1", code(customer), t=self.clock.advance(1))
        track = n + 1
        self.deliver(entered(track, self.clock.advance(1)))  # walks in through the entry zone: bound
        self.shoppers.append(Shopper(customer, view.session, track))

    @precondition(lambda self: self.inside())
    @rule(data=st.data(), gtin=st.sampled_from(PRODUCTS), qty=st.integers(1, 3))
    def pick(self, data, gtin: str, qty: int) -> None:
        shopper = data.draw(st.sampled_from(self.inside()))
        self.deliver(shelf(shopper.track, "pick", gtin, self.clock.advance(1), qty=qty, slot=SLOTS[gtin]))
        shopper.basket[gtin] = shopper.basket.get(gtin, 0) + qty

    @precondition(lambda self: any(s.basket and s.left_with is None for s in self.shoppers))
    @rule(data=st.data())
    def put_back(self, data) -> None:
        shopper = data.draw(st.sampled_from([s for s in self.inside() if s.basket]))
        gtin = data.draw(st.sampled_from(sorted(shopper.basket)))
        self.deliver(shelf(shopper.track, "put", gtin, self.clock.advance(1), slot=SLOTS[gtin]))
        shopper.basket[gtin] -= 1
        if not shopper.basket[gtin]:
            del shopper.basket[gtin]

    @precondition(lambda self: self.events)
    @rule(data=st.data())
    def redeliver(self, data) -> None:
        # A node that crashed resends its outbox: an event applied before changes nothing.
        self.runtime.apply(data.draw(st.sampled_from(self.events)))

    @precondition(lambda self: self.shoppers)
    @rule(data=st.data(), crash=CRASHES, recover=st.booleans())
    def exit_with_a_new_key(self, data, crash: str | None, recover: bool) -> None:
        # The first exit, or another gate (or a rebooted one that lost its key) asking again.
        inside = self.inside()
        shopper = data.draw(st.sampled_from(inside if inside and data.draw(st.booleans()) else self.shoppers))
        key = self.new_key(shopper)
        self.dying(crash, recover, lambda: self.answer(shopper, key), shopper)

    @precondition(lambda self: any(s.keys for s in self.shoppers))
    @rule(data=st.data())
    def retry(self, data) -> None:
        shopper = data.draw(st.sampled_from([s for s in self.shoppers if s.keys]))
        self.answer(shopper, data.draw(st.sampled_from(shopper.keys)))

    @precondition(lambda self: self.shoppers)
    @rule(data=st.data(), crash=CRASHES, recover=st.booleans())
    def camera_sees_them_leave(self, data, crash: str | None, recover: bool) -> None:
        shopper = data.draw(st.sampled_from(self.shoppers))
        self.dying(crash, recover, lambda: self.deliver(exited(shopper.track, self.clock.advance(1))), shopper)
        self.closed(shopper)

    @rule(recover=st.booleans())
    def restart(self, recover: bool) -> None:
        """A new process on the same file; `walkout serve` finishes pending charges at boot, unless
        the provider is away then (the first retry after the lease finishes them)."""
        self.runtime.db.close()
        self.runtime = open_runtime(self.folder, clock=self.clock)
        if recover:
            self.runtime.recover()

    @rule()
    def wait_out_the_lease(self) -> None:
        self.clock.advance(LEASE_S + 1)

    # ------------------------------------------------------------------ invariants

    @invariant()
    def each_shopper_is_charged_their_basket_once(self) -> None:
        captures: dict[str, list[int]] = {}
        for row in self.runtime.provider.ledger():
            if row["op"] == "capture":
                captures.setdefault(row["customer"], []).append(row["amount_cents"])
        for shopper in self.shoppers:
            taken = captures.get(shopper.customer, [])
            assert len(taken) <= 1, f"{shopper.customer} was captured {len(taken)} times: {taken}"
            if shopper.left_with is None:
                assert taken == [], f"{shopper.customer} is inside and was charged {taken}"
            elif taken:
                assert taken == [shopper.left_with], (shopper.customer, taken, shopper.left_with)
            receipt = self.runtime.receipt(shopper.session)
            if receipt is not None and receipt.status == "charged":
                assert shopper.left_with is not None
                assert receipt.total_cents == receipt.charged_cents == shopper.left_with, receipt
                assert taken == ([shopper.left_with] if shopper.left_with else [])

    @invariant()
    def every_answer_of_one_shopper_is_one_receipt(self) -> None:
        for shopper in self.shoppers:
            charges = {json.loads(self.answers[k][1])["charge"] for k in shopper.keys if k in self.answers}
            assert len(charges) <= 1, (shopper.customer, charges)


StoreMachine.TestCase.settings = settings(max_examples=30, stateful_step_count=20, deadline=None, database=None,
                                          suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.filter_too_much])
test_store_runtime_machine = StoreMachine.TestCase
