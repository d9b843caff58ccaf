"""Money: the local provider's ledger semantics, idempotency keys, and SPEC section 7's exit
answers — one charge per exit whatever the retries, crashes and restarts."""

from __future__ import annotations

from pathlib import Path

import pytest
from store_fakes import BREAD, MILK, T0, Clock, Crash, CrashingProvider, exited, inside, shelf

from store_runtime.db import IdempotencyRow, open_database
from store_runtime.payments import (
    LocalProvider,
    PaymentError,
    claim_key,
    decline_customers,
    decline_over,
    finish_key,
    purge_keys,
    request_hash,
)
from store_runtime.runtime import StoreRuntime

# ------------------------------------------------------------------------------------ local provider


@pytest.fixture()
def provider(tmp_path: Path) -> LocalProvider:
    return LocalProvider(open_database(f"sqlite:///{tmp_path / 'pay.db'}"), clock=Clock(),
                         decline=decline_customers("c-broke"))


def test_authorise_capture_refund_move_money_once_per_key(provider: LocalProvider) -> None:
    auth = provider.authorise(key="a", customer="c-1", amount_cents=500, currency="EUR")
    cap = provider.capture(key="c", authorisation=auth.id, amount_cents=500)
    provider.refund(key="r1", capture=cap.id, amount_cents=200)
    # Every call retried, as after a timeout: same answers, no new rows, same balance.
    assert provider.authorise(key="a", customer="c-1", amount_cents=500, currency="EUR") == auth
    assert provider.capture(key="c", authorisation=auth.id, amount_cents=500) == cap
    provider.refund(key="r1", capture=cap.id, amount_cents=200)
    assert [row["op"] for row in provider.ledger()] == ["authorise", "capture", "refund"]
    assert provider.balance("c-1") == 300


@pytest.mark.parametrize(
    ("why", "call"),
    [
        ("a key reused for another amount is a client bug, not a retry",
         lambda p, auth, cap: p.authorise(key="a", customer="c-1", amount_cents=501, currency="EUR")),
        ("a capture cannot take more than the hold",
         lambda p, auth, cap: p.capture(key="c2", authorisation=auth.id, amount_cents=501)),
        ("one authorisation is captured once",
         lambda p, auth, cap: p.capture(key="c2", authorisation=auth.id, amount_cents=100)),
        ("refunds of a capture never exceed it",
         lambda p, auth, cap: p.refund(key="r2", capture=cap.id, amount_cents=501)),
        ("a refund needs a capture", lambda p, auth, cap: p.refund(key="r3", capture=auth.id, amount_cents=1)),
        ("amounts are positive cents", lambda p, auth, cap: p.authorise(key="z", customer="c-1", amount_cents=0,
                                                                        currency="EUR")),
    ],
)
def test_provider_refuses_what_a_card_processor_refuses(provider: LocalProvider, why: str, call) -> None:
    auth = provider.authorise(key="a", customer="c-1", amount_cents=500, currency="EUR")
    cap = provider.capture(key="c", authorisation=auth.id, amount_cents=500)
    before = provider.ledger()
    with pytest.raises(PaymentError):
        call(provider, auth, cap)
    assert provider.ledger() == before  # nothing was written


@pytest.mark.parametrize(
    ("rule", "customer", "amount", "declined"),
    [
        (decline_customers("c-broke"), "c-broke", 100, True),
        (decline_customers("c-broke"), "c-1", 100, False),
        (decline_over(1000), "c-1", 1001, True),
        (decline_over(1000), "c-1", 1000, False),
    ],
)
def test_declines_are_configurable(tmp_path: Path, rule, customer: str, amount: int, declined: bool) -> None:
    provider = LocalProvider(open_database("sqlite://"), decline=rule)
    auth = provider.authorise(key="k", customer=customer, amount_cents=amount, currency="EUR")
    assert auth.ok is not declined
    if declined:
        assert auth.id is None and auth.decline_reason
        with pytest.raises(PaymentError):  # a declined hold cannot be captured
            provider.capture(key="c", authorisation=provider.ledger()[0]["id"], amount_cents=amount)


def test_ledger_persists_across_a_restart(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'pay.db'}"
    first = LocalProvider(open_database(url))
    auth = first.authorise(key="a", customer="c-1", amount_cents=300, currency="EUR")
    first.capture(key="c", authorisation=auth.id, amount_cents=300)
    again = LocalProvider(open_database(url))
    assert again.balance("c-1") == 300
    assert again.capture(key="c", authorisation=auth.id, amount_cents=300).amount_cents == 300


# ------------------------------------------------------------------------------------ idempotency keys


def test_request_hash_ignores_field_order_but_not_values() -> None:
    assert request_hash({"gate": "exit-1", "session": "s"}) == request_hash({"session": "s", "gate": "exit-1"})
    assert request_hash({"gate": "exit-1", "session": "s"}) != request_hash({"gate": "exit-1", "session": "t"})


@pytest.mark.parametrize(
    ("state", "body", "age", "outcome", "why"),
    [
        (None, "a", 0, "new", "an unseen key is claimed"),
        ("done", "a", 0, "replay", "a finished key replays its first response"),
        ("done", "b", 0, "mismatch", "a key sent with another body is a client bug (422)"),
        ("in_flight", "a", 1, "in_flight", "the first request is still working (409)"),
        ("in_flight", "a", 31, "taken_over", "its holder died: the lease ran out"),
        ("in_flight", "b", 31, "mismatch", "another body never takes over a key"),
    ],
)
def test_claim_key_outcomes(state, body: str, age: float, outcome: str, why: str) -> None:
    db = open_database("sqlite://")
    if state is not None:
        with db.transaction() as tx:
            row = claim_key(tx, "k", request_hash({"b": "a"}), now=T0, lease_s=30).row
            if state == "done":
                finish_key(row, 200, {"ok": True})
    with db.transaction() as tx:
        claim = claim_key(tx, "k", request_hash({"b": body}), now=T0 + age, lease_s=30)
    assert claim.outcome == outcome, why


def test_purge_forgets_keys_older_than_the_retention_only() -> None:
    db = open_database("sqlite://")
    with db.transaction() as tx:
        for i, created in enumerate([T0, T0 + 10]):
            claim_key(tx, f"k{i}", "h", now=created, lease_s=30)
    with db.transaction() as tx:
        assert purge_keys(tx, now=T0 + 86_400 + 5, retention_s=86_400) == 1
        assert [r.key for r in tx.query(IdempotencyRow)] == ["k1"]


def test_key_too_long_is_a_value_error() -> None:
    db = open_database("sqlite://")
    with pytest.raises(ValueError), db.transaction() as tx:
        claim_key(tx, "k" * 256, "h", now=T0, lease_s=30)


# ------------------------------------------------------------------------------------ exits (SPEC 7)


def shopped(tmp_path: Path, **kw) -> tuple[StoreRuntime, str, Clock]:
    """A runtime with one shopper inside holding a milk and a bread (370 cents)."""
    clock = kw.pop("clock", None) or Clock()
    runtime, session = inside(tmp_path, shelf(1, "pick", MILK, T0 + 5), shelf(1, "pick", BREAD, T0 + 6, slot="A2"),
                              clock=clock, **kw)
    return runtime, session, clock


def captures(runtime: StoreRuntime) -> list[int]:
    return [row["amount_cents"] for row in runtime.provider.ledger() if row["op"] == "capture"]


def test_exit_retried_with_one_key_is_charged_once_and_answered_the_same(tmp_path: Path) -> None:
    runtime, session, clock = shopped(tmp_path)
    body = {"gate": "exit-1", "session": session}
    answers = [runtime.exit_request("exit-1", session, key="k-1", body=body, t=clock.advance(1)) for _ in range(3)]
    assert answers[0][0] == 200 and answers[0][1]["status"] == "charged" and answers[0][1]["total_cents"] == 370
    assert answers[1] == answers[0] and answers[2] == answers[0]
    assert captures(runtime) == [370]


def test_every_way_out_charges_once(tmp_path: Path) -> None:
    # The gate retries with fresh keys, its camera sees the shopper leave, a crashed gate resends
    # an old key: one exit, one charge, every answer the same receipt.
    runtime, session, _ = shopped(tmp_path)
    body = {"gate": "exit-1", "session": session}
    first = runtime.exit_request("exit-1", session, key="k-1", body=body)
    runtime.apply(exited(1, T0 + 20))
    second = runtime.exit_request("exit-1", session, key="k-2", body=body)
    assert first == second
    assert captures(runtime) == [370]


def test_camera_exit_charges_through_the_same_path(tmp_path: Path) -> None:
    runtime, session, _ = shopped(tmp_path)
    runtime.apply(exited(1, T0 + 20))
    runtime.apply(exited(1, T0 + 20))  # the node resent it
    receipt = runtime.receipt(session)
    assert receipt.status == "charged" and receipt.charge and receipt.exited_t == T0 + 20
    assert captures(runtime) == [370]


@pytest.mark.parametrize(
    ("key", "body", "expected", "why"),
    [
        ("k-1", {"gate": "exit-1", "session": "S", "retry": 2}, 422, "the key's first body differs"),
        ("k-2", {"gate": "exit-1", "session": "s_nobody"}, 404, "no such session"),
    ],
)
def test_refused_exit_requests(tmp_path: Path, key: str, body: dict, expected: int, why: str) -> None:
    runtime, session, _ = shopped(tmp_path)
    first = {"gate": "exit-1", "session": session}
    runtime.exit_request("exit-1", session, key="k-1", body=first)
    body = {k: (session if v == "S" else v) for k, v in body.items()}
    status, answer = runtime.exit_request("exit-1", body["session"], key=key, body=body)
    assert status == expected, why
    assert "error" in answer
    assert captures(runtime) == [370]


def test_unknown_session_answer_is_not_stored(tmp_path: Path) -> None:
    # A 404 changed nothing, so the key stays free: the gate may fix its request and reuse it.
    runtime, session, _ = shopped(tmp_path)
    assert runtime.exit_request("exit-1", "s_nobody", key="k", body={"session": "s_nobody"})[0] == 404
    assert runtime.exit_request("exit-1", session, key="k", body={"session": session})[0] == 200


def test_camera_exit_keys_are_the_runtimes_own(tmp_path: Path) -> None:
    # A gate that claimed "camera:<event id>" first would make that camera exit a replay of its
    # own request, and a shopper walking out unseen by the gate would never be charged.
    runtime, session, _ = shopped(tmp_path)
    event = exited(1, T0 + 20)
    with pytest.raises(ValueError, match="runtime's own"):
        runtime.exit_request("exit-1", "s_other", key=f"camera:{event.id}", body={"session": "s_other"})
    runtime.apply(event)
    assert runtime.receipt(session).status == "charged"


def test_entry_gate_is_no_exit(tmp_path: Path) -> None:
    runtime, session, _ = shopped(tmp_path)
    status, answer = runtime.exit_request("entry-1", session, key="k", body={"session": session})
    assert status == 422 and answer["error"] == "not_an_exit_gate"
    assert runtime.session(session).status == "open"


class Reentrant(LocalProvider):
    """A provider so slow that the gate retries while the first request is still being charged."""

    runtime: StoreRuntime
    retry: dict

    def authorise(self, **kw):
        self.seen = self.runtime.exit_request("exit-1", self.retry["session"], key="k-1", body=self.retry)
        return super().authorise(**kw)


def test_retry_while_in_flight_is_409_and_the_first_still_charges(tmp_path: Path) -> None:
    runtime, session, clock = shopped(tmp_path)
    slow = Reentrant(runtime.db, clock=clock)
    slow.runtime, slow.retry = runtime, {"gate": "exit-1", "session": session}
    runtime.provider = slow
    status, _ = runtime.exit_request("exit-1", session, key="k-1", body=slow.retry)
    assert slow.seen[0] == 409 and slow.seen[1]["error"] == "in_flight"
    assert status == 200
    assert captures(runtime) == [370]


def test_declined_is_402_replayed_and_a_new_key_may_retry(tmp_path: Path) -> None:
    runtime, session, _ = shopped(tmp_path, decline=decline_customers("c-0001"))
    body = {"gate": "exit-1", "session": session}
    status, answer = runtime.exit_request("exit-1", session, key="k-1", body=body)
    assert status == 402 and answer["error"] == "payment_declined" and answer["session"] == session
    assert runtime.exit_request("exit-1", session, key="k-1", body=body) == (status, answer)  # replayed
    assert runtime.receipt(session).status == "open"  # the session stays open for a person to settle
    assert runtime.session(session).status == "declined"
    runtime.provider.decline = lambda customer, amount: None  # the customer fixed their card
    status, answer = runtime.exit_request("exit-1", session, key="k-2", body=body)
    assert status == 200 and answer["status"] == "charged"
    assert runtime.exit_request("exit-1", session, key="k-1", body=body)[0] == 402  # still the first answer
    assert captures(runtime) == [370]


def test_stored_answer_is_replayed_for_at_least_24_hours_then_the_session_still_protects(tmp_path: Path) -> None:
    runtime, session, clock = shopped(tmp_path)
    body = {"gate": "exit-1", "session": session}
    first = runtime.exit_request("exit-1", session, key="k-1", body=body)
    assert runtime.exit_request("exit-1", session, key="k-1", body=body, t=clock.advance(86_400)) == first
    clock.advance(3 * 86_400)
    status, answer = runtime.exit_request("exit-1", session, key="k-1", body={**body, "late": True})
    assert status == 200 and answer["charge"] == first[1]["charge"]  # forgotten key, but no second charge
    assert captures(runtime) == [370]


@pytest.mark.parametrize("when", ["before_provider", "after_capture"])
@pytest.mark.parametrize("restart_by", ["retry_after_lease", "recover_at_boot"])
def test_crash_between_claim_and_charge_never_double_charges(tmp_path: Path, when: str, restart_by: str) -> None:
    # The claim and the pending charge row commit together before the provider is asked; the
    # provider is asked with keys derived from the charge. Whether the process died before the
    # provider saw the charge or after it took the money, finishing it takes the money once.
    runtime, session, clock = shopped(tmp_path)
    runtime.provider = CrashingProvider(runtime.db, when, clock=clock)
    body = {"gate": "exit-1", "session": session}
    with pytest.raises(Crash):
        runtime.exit_request("exit-1", session, key="k-1", body=body)

    # A new process on the same database file.
    db = open_database(f"sqlite:///{tmp_path / 'store.db'}")
    restarted = StoreRuntime(db, runtime.store, provider=LocalProvider(db, clock=clock), clock=clock)
    assert restarted.exit_request("exit-1", session, key="k-1", body=body)[0] == 409  # within the lease
    if restart_by == "recover_at_boot":
        assert restarted.recover() == 1
    clock.advance(31)
    status, answer = restarted.exit_request("exit-1", session, key="k-1", body=body)
    assert status == 200 and answer["status"] == "charged" and answer["total_cents"] == 370
    assert captures(restarted) == [370]
    assert restarted.exit_request("exit-1", session, key="k-2", body=body) == (status, answer)


def test_provider_outage_releases_the_key_for_an_immediate_retry(tmp_path: Path) -> None:
    runtime, session, _ = shopped(tmp_path)

    class Down(LocalProvider):
        def authorise(self, **kw):
            raise PaymentError("provider unreachable")

    runtime.provider = Down(runtime.db)
    body = {"gate": "exit-1", "session": session}
    with pytest.raises(PaymentError):
        runtime.exit_request("exit-1", session, key="k-1", body=body)
    runtime.provider = LocalProvider(runtime.db)
    assert runtime.exit_request("exit-1", session, key="k-1", body=body)[0] == 200  # no 409 wait
    assert captures(runtime) == [370]


def test_empty_basket_is_charged_nothing(tmp_path: Path) -> None:
    runtime, _ = inside(tmp_path, shelf(1, "pick", MILK, T0 + 5), shelf(1, "put", MILK, T0 + 7), exited(1, T0 + 9))
    receipt = runtime.receipts()[0]
    assert (receipt.status, receipt.lines, receipt.total_cents, receipt.charge) == ("charged", (), 0, None)
    assert runtime.provider.ledger() == []


def test_concurrent_exits_from_many_threads_charge_once(tmp_path: Path) -> None:
    # The API serves requests on a thread pool: a gate's retries and a second gate's request race
    # each other and the camera's exit. Whatever interleaving SQLite's lock allows, one charge.
    import threading

    runtime, session, _ = shopped(tmp_path)
    body = {"gate": "exit-1", "session": session}
    answers: list[tuple[int, dict]] = []
    errors: list[BaseException] = []

    def request(key: str) -> None:
        try:
            answers.append(runtime.exit_request("exit-1", session, key=key, body=body))
        except BaseException as e:  # collected for the assertion below
            errors.append(e)

    threads = [threading.Thread(target=request, args=(f"k-{i % 3}",)) for i in range(9)]
    threads.append(threading.Thread(target=lambda: runtime.apply(exited(1, T0 + 20))))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert {status for status, _ in answers} <= {200, 409}
    assert captures(runtime) == [370]
    assert {answer["charge"] for status, answer in answers if status == 200} == {runtime.receipt(session).charge}
