"""The store runtime end to end: reviews that hold a charge until a person decides, disputes
refunded, baskets settled after a late decision, SPEC section 5's outputs, byte-identical replays."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from store_fakes import (
    BREAD,
    JAM,
    MILK,
    T0,
    Clock,
    code,
    entered,
    entry_read,
    exited,
    inside,
    open_runtime,
    shelf,
    two_inside,
)

from store_runtime.runtime import NotFound, ReviewClosed, StoreRuntime


def ledger_ops(runtime: StoreRuntime) -> list[tuple[str, int]]:
    return [(row["op"], row["amount_cents"]) for row in runtime.provider.ledger()]


@pytest.mark.parametrize(
    ("decision", "lines", "charged", "why"),
    [
        ("accept", {MILK: 1, JAM: 1}, 579, "the person saw the jam taken: it is charged with the rest"),
        ("reject", {MILK: 1}, 120, "the person saw no jam taken: only the milk is charged"),
    ],
)
def test_open_review_holds_the_charge_until_resolved(tmp_path: Path, decision: str, lines: dict, charged: int,
                                                     why: str) -> None:
    runtime, session = inside(tmp_path, shelf(1, "pick", MILK, T0 + 5),
                              shelf(1, "pick", JAM, T0 + 6, confidence=0.3, slot="A3"))
    body = {"gate": "exit-1", "session": session}
    status, answer = runtime.exit_request("exit-1", session, key="k-1", body=body)
    assert status == 200 and answer["status"] == "review" and answer["charge"] is None
    assert runtime.provider.ledger() == []  # nothing taken while a person has to look
    assert runtime.exit_request("exit-1", session, key="k-1", body=body) == (status, answer)

    [review] = runtime.reviews()
    runtime.resolve_review(review.id, decision, by="alice")
    receipt = runtime.receipt(session)
    assert receipt.status == "charged" and receipt.charge is not None
    assert {line.gtin: line.qty for line in receipt.lines} == lines, why
    assert ledger_ops(runtime) == [("authorise", charged), ("capture", charged)]
    with pytest.raises(ReviewClosed):
        runtime.resolve_review(review.id, "accept", by="bob")
    # The gate's key still answers its first response: the receipt as it was when it left.
    assert runtime.exit_request("exit-1", session, key="k-1", body=body)[1]["status"] == "review"
    assert runtime.exit_request("exit-1", session, key="k-2", body=body)[1]["status"] == "charged"


def test_every_review_must_be_resolved_before_the_charge(tmp_path: Path) -> None:
    runtime, session = inside(tmp_path, shelf(1, "pick", MILK, T0 + 5, confidence=0.3),
                              shelf(1, "pick", JAM, T0 + 6, confidence=0.3, slot="A3"), exited(1, T0 + 9))
    first, second = runtime.reviews()
    runtime.resolve_review(first.id, "accept", by="alice")
    assert runtime.receipt(session).status == "review" and runtime.provider.ledger() == []
    runtime.resolve_review(second.id, "accept", by="alice")
    assert runtime.receipt(session).status == "charged"
    assert ledger_ops(runtime) == [("authorise", 579), ("capture", 579)]


def test_review_of_somebody_else_does_not_hold_this_charge(tmp_path: Path) -> None:
    # An anonymous person's pick concerns no session: the paying shopper walks out charged.
    runtime, session = inside(tmp_path, shelf(1, "pick", MILK, T0 + 5))
    runtime.apply(entered(2, T0 + 30))
    runtime.apply(shelf(2, "pick", JAM, T0 + 32))
    runtime.apply(exited(1, T0 + 40))
    assert runtime.receipt(session).status == "charged"
    assert {r.kind for r in runtime.reviews()} == {"anonymous", "shelf"}


def test_dispute_accepted_after_review_is_refunded(tmp_path: Path) -> None:
    runtime, session = inside(tmp_path, shelf(1, "pick", MILK, T0 + 5), shelf(1, "pick", JAM, T0 + 6, qty=2),
                              exited(1, T0 + 9))
    assert runtime.receipt(session).total_cents == 120 + 2 * 459
    review = runtime.dispute(session, JAM, 1, "I took one jar, not two", by="alice")
    assert review.kind == "dispute" and review.status == "open" and review.session == session
    assert runtime.receipt(session).refunded_cents == 0  # nothing before a person has looked
    runtime.resolve_review(review.id, "accept", by="alice", note="the video shows one jar")
    receipt = runtime.receipt(session)
    assert {line.gtin: line.qty for line in receipt.lines} == {MILK: 1, JAM: 1}
    assert (receipt.total_cents, receipt.charged_cents, receipt.refunded_cents) == (579, 1038, 459)
    assert receipt.refunds[0].review == review.id and receipt.refunds[0].state == "done"
    assert ledger_ops(runtime)[-1] == ("refund", 459)
    assert runtime.provider.balance("c-0001") == 579
    assert [e.action for e in runtime.basket_events()] == ["pick", "pick"]  # corrections are no camera events


def test_dispute_rejected_refunds_nothing(tmp_path: Path) -> None:
    runtime, session = inside(tmp_path, shelf(1, "pick", MILK, T0 + 5), exited(1, T0 + 9))
    runtime.resolve_review(runtime.dispute(session, MILK, 1, "never took it", by="alice").id, "reject", by="alice")
    assert runtime.provider.balance("c-0001") == 120 and runtime.receipt(session).refunded_cents == 0


@pytest.mark.parametrize(
    ("gtin", "qty", "why"),
    [(JAM, 1, "not on the receipt"), (MILK, 2, "more than was bought"), (MILK, 0, "no quantity")],
)
def test_dispute_must_match_the_receipt(tmp_path: Path, gtin: str, qty: int, why: str) -> None:
    runtime, session = inside(tmp_path, shelf(1, "pick", MILK, T0 + 5), exited(1, T0 + 9))
    with pytest.raises(ValueError):
        runtime.dispute(session, gtin, qty, why, by="alice")
    with pytest.raises(NotFound):
        runtime.dispute("s_nobody", MILK, 1, "no such session", by="alice")


def test_dispute_needs_a_charged_receipt(tmp_path: Path) -> None:
    runtime, session = inside(tmp_path, shelf(1, "pick", MILK, T0 + 5))
    with pytest.raises(ValueError, match="open"):
        runtime.dispute(session, MILK, 1, "still inside", by="alice")


def test_late_decision_on_a_charged_basket_charges_the_difference(tmp_path: Path) -> None:
    # Track -1 with two shoppers inside and no one at that slot: nobody is held. The first shopper
    # leaves and is charged; then a person says the pick was theirs: the difference is charged.
    runtime = two_inside(tmp_path)
    runtime.apply(shelf(1, "pick", MILK, T0 + 6))
    runtime.apply(shelf(-1, "pick", BREAD, T0 + 7, slot="B4"))
    runtime.apply(exited(1, T0 + 10))
    a = runtime.receipts()[0]
    assert (a.customer, a.status, a.total_cents) == ("c-a", "charged", 120)
    [held] = runtime.reviews()
    runtime.resolve_review(held.id, "accept", by="alice", session=a.session)
    receipt = runtime.receipt(a.session)
    assert (receipt.total_cents, receipt.charged_cents) == (370, 370)
    assert [(c.kind, c.amount_cents, c.state) for c in receipt.charges] == [("exit", 120, "captured"),
                                                                           ("adjust", 250, "captured")]


def test_anonymous_person_bound_by_an_operator_takes_their_picks_along(tmp_path: Path) -> None:
    # The father came in a few seconds too late for the family's code: an alert. The operator
    # says he is one of them; his held pick joins the family's basket.
    runtime, session = inside(tmp_path, shelf(1, "pick", MILK, T0 + 5), bind_window_s=5.0)
    runtime.apply(entered(2, T0 + 20))
    runtime.apply(shelf(2, "pick", BREAD, T0 + 22))
    alert = next(r for r in runtime.reviews() if r.kind == "anonymous")
    runtime.resolve_review(alert.id, "accept", by="alice", session=session)
    assert runtime.reviews() == []
    assert runtime.session(session).total_cents == 370


def test_unknown_review_and_bad_decisions(tmp_path: Path) -> None:
    runtime, _ = inside(tmp_path, shelf(-1, "pick", MILK, T0 + 5))
    with pytest.raises(NotFound):
        runtime.resolve_review("r_nobody", "accept", by="alice")
    review = runtime.reviews()[0]
    with pytest.raises(ValueError):
        runtime.resolve_review(review.id, "maybe", by="alice")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        runtime.resolve_review(review.id, "accept", by="")
    with pytest.raises(NotFound):
        runtime.resolve_review(review.id, "accept", by="alice", session="s_nobody")
    assert runtime.reviews()[0].status == "open"  # a failed decision changed nothing


def test_finish_leaves_shoppers_inside_open(tmp_path: Path) -> None:
    runtime, session = inside(tmp_path, shelf(1, "pick", MILK, T0 + 5))
    runtime.finish(T0 + 60)
    receipt = runtime.receipts()[0]
    assert (receipt.status, receipt.exited_t, receipt.total_cents) == ("open", None, 120)
    assert runtime.receipt(session) is None  # the exit API has no receipt for someone inside


def scenario(runtime: StoreRuntime) -> None:
    """Two shoppers (one family of two), a refused code, an uncertain pick, camera exits."""
    for event in [
        entry_read(code("c-0001", party=2), T0 + 1.2345),
        entered(1, T0 + 4.0), entered(2, T0 + 4.4),
        entry_read(code("c-0002"), T0 + 6.0), entered(3, T0 + 9.1),
        entry_read(code("c-0003", exp=int(T0)), T0 + 10.0), entered(4, T0 + 13.0),
        shelf(1, "pick", MILK, T0 + 12.0), shelf(2, "pick", JAM, T0 + 12.5, slot="A3"),
        shelf(3, "pick", BREAD, T0 + 14.0, slot="A2"), shelf(3, "put", BREAD, T0 + 16.0, slot="A2"),
        shelf(4, "pick", MILK, T0 + 17.0), shelf(-1, "pick", JAM, T0 + 18.0, slot="A3"),
        exited(3, T0 + 20.0), exited(1, T0 + 25.0), exited(2, T0 + 26.6667),
    ]:
        runtime.apply(event)
    runtime.finish(T0 + 30)


def outputs(runtime: StoreRuntime) -> tuple[str, str]:
    receipts = json.dumps({"receipts": [r.to_spec(T0) for r in runtime.receipts()]}, indent=1)
    events = "".join(json.dumps(e.to_spec(T0)) + "\n" for e in runtime.basket_events())
    return receipts, events


def test_replay_outputs_follow_spec_5_and_are_the_same_bytes_every_run(tmp_path: Path) -> None:
    runs = []
    for name in ["one", "two"]:
        folder = tmp_path / name
        folder.mkdir()
        runtime = open_runtime(folder, clock=Clock(T0))
        scenario(runtime)
        runs.append(outputs(runtime))
    assert runs[0] == runs[1]
    receipts = json.loads(runs[0][0])["receipts"]
    assert [set(r) for r in receipts] == [{"customer", "session", "entered_t", "exited_t", "lines", "total_cents",
                                           "status"}] * 2
    family, single = receipts
    assert family["entered_t"] == 1.234 and family["exited_t"] == 26.667  # scenario seconds, to the millisecond
    # The -1 pick at the family's slot is believed to be theirs and holds their charge for a person.
    assert family["status"] == "review" and family["lines"] == [{"gtin": MILK, "qty": 1, "unit_cents": 120},
                                                                 {"gtin": JAM, "qty": 1, "unit_cents": 459}]
    assert (single["customer"], single["lines"], single["total_cents"], single["status"]) == (
        "c-0002", [], 0, "charged")  # put everything back: a receipt of 0
    events = [json.loads(line) for line in runs[0][1].splitlines()]
    assert [e["t"] for e in events] == sorted(e["t"] for e in events)
    assert [(e["customer"], e["action"], e["gtin"]) for e in events] == [
        ("c-0001", "pick", MILK), ("c-0001", "pick", JAM), ("c-0002", "pick", BREAD), ("c-0002", "put", BREAD),
        (None, "pick", MILK), ("c-0001", "pick", JAM)]


# ------------------------------------------------------------------------------------ the samples' truth

SAMPLES = Path(__file__).resolve().parents[2] / "sample_videos"


def perfect_node_events(truth: dict, start: float) -> list:
    """The events a camera node that never errs would send for a sample: each code read at its
    scan time, each person through the entry zone 3 s later, every true pick and put by that
    person, each person out through the exit zone when the truth says the customer left."""
    events, tracks = [], {}
    for customer in truth["customers"]:
        events.append(entry_read(customer["token"], start + customer["entered_t"]))
        tracks[customer["customer"]] = list(range(len(tracks) * 10 + 1, len(tracks) * 10 + 1 + customer["party"]))
        for k, track in enumerate(tracks[customer["customer"]]):
            events.append(entered(track, start + customer["entered_t"] + 3 + 0.4 * k))
            events.append(exited(track, start + customer["exited_t"]))
    for refused in truth.get("refused", []):
        events.append(entry_read(refused["token"], start + refused["t"]))
        tracks[None] = [99]
        events.append(entered(99, start + refused["t"] + 3))
    for e in truth["events"]:
        events.append(shelf(tracks[e["customer"]][0], e["action"], e["gtin"], start + e["t"], qty=e["qty"],
                            slot=e["slot"]))
    return sorted(events, key=lambda e: (e.t, e.id))


@pytest.mark.parametrize("sample", sorted(p.parent.name for p in SAMPLES.glob("*/truth.json")))
def test_perfect_node_on_every_sample_scores_perfectly(tmp_path: Path, sample: str) -> None:
    # The runtime's half of SPEC section 6: given exactly the true events, every receipt is right,
    # every charge exact, every basket event matched (the refused bearer's pick under `null`).
    from store_runtime.config import load_scenario
    from store_runtime.db import open_database
    from store_runtime.scoring import charge_error_cents, event_f1, receipt_accuracy

    scenario = load_scenario(SAMPLES / sample)
    truth = json.loads((SAMPLES / sample / "truth.json").read_text())
    now = [scenario.start_unix]
    runtime = StoreRuntime(open_database(f"sqlite:///{tmp_path / 'replay.db'}"), scenario.store,
                           clock=lambda: now[0])
    for event in perfect_node_events(truth, scenario.start_unix):
        now[0] = event.t
        runtime.apply(event)
    runtime.finish(now[0] + 1)
    receipts = [r.to_spec(scenario.start_unix) for r in runtime.receipts()]
    events = [e.to_spec(scenario.start_unix) for e in runtime.basket_events()]
    prices = {gtin: p.price_cents for gtin, p in scenario.store.catalog.products.items()}
    assert receipt_accuracy(truth["customers"], receipts) == 1.0
    assert charge_error_cents(truth["customers"], receipts, prices) == 0
    assert event_f1(truth["events"], events).f1 == 1.0
    assert all(r["status"] == "charged" for r in receipts)
    assert [e.reason for e in runtime.entries() if not e.admitted] == [r["reason"] for r in truth["refused"]]
