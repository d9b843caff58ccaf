"""Event-sourced baskets: the fold of picks and puts in time order whatever the order of arrival,
applied once per event id; and the review queue for what the system is not sure of."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import pytest
from store_fakes import BREAD, JAM, MILK, T0, code, entered, entry_read, inside, open_runtime, shelf, two_inside

from store_runtime.baskets import Line, fold, overdraws
from store_runtime.runtime import StoreRuntime


@dataclass(frozen=True)
class Move:
    id: str
    t: float
    action: str
    gtin: str
    qty: int = 1
    unit_cents: int = 100


@pytest.mark.parametrize(
    ("moves", "lines", "why"),
    [
        ([], (), "an empty basket"),
        ([Move("a", 1, "pick", MILK), Move("b", 2, "pick", MILK)], ((MILK, 2),), "picks add up"),
        ([Move("a", 1, "pick", MILK), Move("b", 2, "put", MILK)], (), "a put takes back; empty lines go"),
        ([Move("b", 2, "put", MILK), Move("a", 1, "pick", MILK)], (), "arrival order does not matter, time does"),
        ([Move("a", 2, "pick", MILK), Move("b", 1, "put", MILK)], ((MILK, 1),),
         "a put before the pick in time takes nothing (never below zero)"),
        ([Move("a", 1, "pick", MILK, qty=3), Move("b", 2, "put", MILK, qty=2), Move("c", 3, "pick", BREAD)],
         ((MILK, 1), (BREAD, 1)), "quantities and several products"),
    ],
)
def test_fold(moves: list[Move], lines: tuple, why: str) -> None:
    assert [(line.gtin, line.qty) for line in fold(moves)] == sorted(lines), why


def test_fold_lines_are_sorted_by_gtin_and_priced_by_the_latest_pick() -> None:
    moves = [Move("a", 1, "pick", JAM, unit_cents=400), Move("b", 2, "pick", MILK), Move("c", 3, "pick", JAM,
                                                                                        unit_cents=459)]
    assert fold(moves) == (Line(MILK, 1, 100), Line(JAM, 2, 459))


@pytest.mark.parametrize(
    ("moves", "new", "expected", "why"),
    [
        ([], Move("p", 5, "put", MILK), True, "a put of nothing"),
        ([Move("a", 1, "pick", MILK)], Move("p", 5, "put", MILK), False, "a put of what was picked"),
        ([Move("a", 6, "pick", MILK)], Move("p", 5, "put", MILK), True, "a put before its pick in time"),
        ([Move("a", 1, "pick", MILK), Move("b", 7, "put", MILK)], Move("p", 5, "put", MILK), True,
         "a second put of a single pick, even if it arrives first in time"),
        ([Move("a", 1, "pick", BREAD)], Move("p", 5, "put", MILK), True, "a put of another product"),
    ],
)
def test_overdraws(moves: list[Move], new: Move, expected: bool, why: str) -> None:
    assert overdraws(moves, new) is expected, why


# ------------------------------------------------------------------------------------ in the runtime


@pytest.fixture()
def runtime(tmp_path: Path) -> StoreRuntime:
    return inside(tmp_path)[0]


def basket(runtime: StoreRuntime) -> dict[str, int]:
    view = runtime.session(runtime.receipts()[0].session)
    return {line.gtin: line.qty for line in view.lines}


def test_repeated_event_is_applied_once(runtime: StoreRuntime) -> None:
    # A node resends what it is not sure was delivered; the basket and its version move once.
    pick = shelf(1, "pick", MILK, T0 + 5)
    for _ in range(3):
        runtime.apply(pick)
    view = runtime.session(runtime.receipts()[0].session)
    assert basket(runtime) == {MILK: 1} and view.version == 1


EVENTS = [
    shelf(1, "pick", MILK, T0 + 5),
    shelf(1, "pick", JAM, T0 + 6, slot="A3"),
    shelf(1, "put", MILK, T0 + 7),
    shelf(1, "pick", MILK, T0 + 8, qty=2),
]


@pytest.mark.parametrize("order", list(itertools.permutations(range(len(EVENTS)))))
def test_any_arrival_order_folds_to_the_same_basket(tmp_path: Path, order: tuple[int, ...]) -> None:
    # Two camera nodes, a bus that redelivers: events arrive in any order. The put that arrives
    # before its pick waits in review and is applied by the system when the pick comes.
    runtime, _ = inside(tmp_path, *(EVENTS[i] for i in order))
    assert basket(runtime) == {MILK: 2, JAM: 1}
    assert runtime.reviews() == []
    assert runtime.session(runtime.receipts()[0].session).version == 4


@pytest.mark.parametrize(
    ("event", "codes", "why"),
    [
        (shelf(1, "pick", MILK, T0 + 5, confidence=0.3), ("low_confidence",), "unsure which product"),
        (shelf(1, "pick", MILK, T0 + 5, track_confidence=0.2), ("low_track_confidence",), "unsure whose hand"),
        (shelf(1, "pick", MILK, T0 + 5, doubt="two_hands"), ("two_hands",), "two hands in one slot"),
        (shelf(1, "pick", MILK, T0 + 5, doubt="track_regained"), ("track_regained",), "a track lost and found"),
        (shelf(1, "pick", "4006381333931", T0 + 5), ("not_in_catalog",), "a product the store does not sell"),
        (shelf(1, "put", BREAD, T0 + 5), ("put_overdraw",), "a put of something not in the basket"),
        (shelf(9, "pick", MILK, T0 + 5), ("unbound_track",), "a track never seen coming in"),
    ],
)
def test_uncertain_event_goes_to_review_not_the_basket(runtime: StoreRuntime, event, codes: tuple, why: str) -> None:
    runtime.apply(event)
    assert basket(runtime) == {}, why
    [review] = runtime.reviews()
    assert review.kind == "shelf" and review.codes == codes and review.reasons
    assert review.event["gtin"] == event.gtin and review.event["action"] == event.action
    # With one shopper inside, that shopper is who the system believes it was.
    assert review.session == runtime.receipts()[0].session and review.customer == "c-0001"


def test_a_reach_split_within_one_party_is_no_doubt_but_one_split_with_another_shopper_is(tmp_path: Path) -> None:
    # A parent and child (one code, party 2) at one slot: the votes split between them, the basket is
    # the same. Two shoppers on their own codes splitting it is what the review queue is for.
    family = open_runtime(tmp_path, name="family.db")
    for event in [entry_read(code(party=2), T0 + 1), entered(1, T0 + 3), entered(2, T0 + 4)]:
        family.apply(event)
    family.apply(shelf(1, "pick", MILK, T0 + 5, track_confidence=0.45, rivals=((2, 0.4), (7, 0.15))))
    assert family.reviews() == [] and basket(family) == {MILK: 1}

    strangers = two_inside(tmp_path)
    strangers.apply(shelf(1, "pick", MILK, T0 + 5, track_confidence=0.45, rivals=((2, 0.4), (7, 0.15))))
    [review] = strangers.reviews()
    assert review.codes == ("low_track_confidence",) and review.customer == "c-a"


def test_nobody_could_be_told_belief_is_the_shopper_at_that_slot(tmp_path: Path) -> None:
    # Track -1 with two shoppers inside: the belief is the one who used the same slot just before.
    runtime = two_inside(tmp_path)
    runtime.apply(shelf(2, "pick", JAM, T0 + 8, slot="A3"))
    runtime.apply(shelf(-1, "pick", JAM, T0 + 10, slot="A3"))
    runtime.apply(shelf(-1, "pick", MILK, T0 + 11, slot="B1"))
    at_a3, at_b1 = runtime.reviews()
    assert at_a3.customer == "c-b" and set(at_a3.candidates) == {r.session for r in runtime.receipts()}
    assert at_b1.session is None  # nobody used B1: the system does not guess


def test_basket_events_list_what_the_system_believes(runtime: StoreRuntime) -> None:
    runtime.apply(shelf(1, "pick", MILK, T0 + 5))
    runtime.apply(shelf(1, "pick", JAM, T0 + 6, confidence=0.2, slot="A3"))
    lines = [e.to_spec(T0) for e in runtime.basket_events()]
    assert lines == [
        {"t": 5.0, "customer": "c-0001", "session": runtime.receipts()[0].session, "action": "pick", "gtin": MILK,
         "qty": 1, "slot": "A1", "camera": "aisle", "confidence": 0.95},
        {"t": 6.0, "customer": "c-0001", "session": runtime.receipts()[0].session, "action": "pick", "gtin": JAM,
         "qty": 1, "slot": "A3", "camera": "aisle", "confidence": 0.2},
    ]
    assert runtime.basket_events()[1].review == runtime.reviews()[0].id


def test_rejected_event_is_in_no_basket_and_no_output(runtime: StoreRuntime) -> None:
    runtime.apply(shelf(1, "pick", JAM, T0 + 6, confidence=0.2))
    runtime.resolve_review(runtime.reviews()[0].id, "reject", by="alice", note="the hand was empty")
    assert basket(runtime) == {} and runtime.basket_events() == []


def test_accepted_event_can_be_corrected(runtime: StoreRuntime) -> None:
    runtime.apply(shelf(1, "pick", "4006381333931", T0 + 6))
    review = runtime.reviews()[0]
    with pytest.raises(ValueError, match="not in the catalog"):
        runtime.resolve_review(review.id, "accept", by="alice")
    runtime.resolve_review(review.id, "accept", by="alice", gtin=BREAD, qty=2, note="it was bread, two")
    assert basket(runtime) == {BREAD: 2}
    assert runtime.reviews(open_only=False)[0].status == "accepted"
