"""Entry codes -> sessions -> tracks: the runtime's own check of every code, refusals on record,
parties bound to the people who come through the entry zone, anonymous people raising alerts."""

from __future__ import annotations

from pathlib import Path

import pytest
from store_fakes import (
    BREAD,
    MILK,
    STORE_ID,
    T0,
    Clock,
    code,
    entered,
    entry_read,
    exited,
    open_runtime,
    shelf,
)

from store_runtime.runtime import EntryRefused, StoreRuntime, UnknownGate
from store_runtime.sessions import REFUSAL_STATUS, session_id

OTHER_KEY = "11" * 32


@pytest.fixture()
def runtime(tmp_path: Path) -> StoreRuntime:
    return open_runtime(tmp_path, clock=Clock(T0 + 1))


def test_admitted_code_opens_one_session_named_by_its_token(runtime: StoreRuntime) -> None:
    view = runtime.enter("entry-1", code("c-0007", "tok-7", party=2))
    assert (view.customer, view.party, view.status, view.lines, view.version) == ("c-0007", 2, "open", (), 0)
    assert view.session == session_id(STORE_ID, "tok-7")  # derived, so a replay names it the same
    assert [(e.admitted, e.session) for e in runtime.entries()] == [(True, view.session)]


@pytest.mark.parametrize(
    ("text", "reason", "why"),
    [
        ("WO1.not-a-code", "malformed", "a torn or foreign QR code"),
        (code(key_hex=OTHER_KEY), "signature", "signed with another key: forged"),
        (code(sid="other-store"), "other_store", "a code for another store of the chain"),
        (code(exp=int(T0) - 60), "expired", "expiry on the store clock"),
    ],
)
def test_refused_code_is_recorded_with_its_reason_then_raised(runtime: StoreRuntime, text: str, reason: str,
                                                              why: str) -> None:
    with pytest.raises(EntryRefused) as refused:
        runtime.enter("entry-1", text)
    assert refused.value.reason == reason and refused.value.status == REFUSAL_STATUS[reason], why
    [entry] = runtime.entries()
    assert (entry.admitted, entry.reason, entry.session) == (False, reason, None)
    assert runtime.receipts() == []  # a refused code opens nothing


def test_used_code_is_refused_after_the_same_presentation(tmp_path: Path) -> None:
    # A gate that retries its request (or whose camera and scanner both report one scan) within a
    # few seconds gets the same session; the same code shown later is a reuse (SPEC: 409).
    clock = Clock(T0)
    runtime = open_runtime(tmp_path, clock=clock)
    first = runtime.enter("entry-1", code())
    assert runtime.enter("entry-1", code(), t=T0 + 2) == first
    with pytest.raises(EntryRefused) as refused:
        runtime.enter("entry-1", code(), t=T0 + 60)
    assert refused.value.reason == "used" and refused.value.status == 409
    assert [e.reason for e in runtime.entries()] == [None, "used"]
    assert len(runtime.receipts()) == 1


def test_unknown_or_exit_gate_cannot_admit(runtime: StoreRuntime) -> None:
    for gate in ["exit-1", "back-door"]:
        with pytest.raises(UnknownGate):
            runtime.enter(gate, code())
    assert runtime.entries() == []


@pytest.mark.parametrize(
    ("text", "node_says", "opens", "why"),
    [
        (code(exp=int(T0) - 60), True, False, "a node that missed the expiry does not open a session"),
        (code(key_hex=OTHER_KEY), True, False, "a compromised node cannot admit forged codes"),
        (code(), False, True, "the runtime's own verdict rules both ways"),
    ],
)
def test_camera_entry_is_checked_again_by_the_runtime(runtime: StoreRuntime, text: str, node_says: bool,
                                                      opens: bool, why: str) -> None:
    runtime.apply(entry_read(text, T0 + 1, admitted=node_says))
    assert len(runtime.receipts()) == int(opens), why
    assert [e.source for e in runtime.entries()] == ["camera"]


def test_camera_read_of_a_code_the_scanner_just_admitted_is_the_same_entry(runtime: StoreRuntime) -> None:
    runtime.enter("entry-1", code(), t=T0 + 1)
    runtime.apply(entry_read(code(), T0 + 1.5))
    assert [e.admitted for e in runtime.entries()] == [True]


def test_family_of_two_is_bound_and_leaves_together(runtime: StoreRuntime) -> None:
    # One code for two people: both tracks coming in behind it are the family's, a third is a
    # stranger (an alert), and the family is charged once, when the last of them has left.
    runtime.apply(entry_read(code(party=2), T0 + 1))
    runtime.apply(entered(1, T0 + 4))
    runtime.apply(entered(2, T0 + 4.5))
    runtime.apply(entered(3, T0 + 5))
    runtime.apply(shelf(1, "pick", MILK, T0 + 8))
    runtime.apply(shelf(2, "pick", BREAD, T0 + 9, slot="A2"))
    [session] = runtime.receipts()
    assert runtime.session(session.session).tracks == 2
    assert runtime.session(session.session).total_cents == 370
    [alert] = runtime.reviews()
    assert alert.kind == "anonymous" and alert.event["track"] == 3 and alert.session is None

    runtime.apply(exited(1, T0 + 20))
    assert runtime.receipt(session.session) is None  # one of two left: still inside
    runtime.apply(exited(2, T0 + 22))
    receipt = runtime.receipt(session.session)
    assert (receipt.status, receipt.total_cents, receipt.exited_t) == ("charged", 370, T0 + 22)


def test_people_are_bound_in_the_order_they_scanned(runtime: StoreRuntime) -> None:
    # Two shoppers scan one after the other; the first through the door is the first who scanned.
    runtime.apply(entry_read(code("c-a"), T0 + 1))
    runtime.apply(entry_read(code("c-b"), T0 + 2))
    runtime.apply(entered(10, T0 + 4))
    runtime.apply(entered(11, T0 + 5))
    runtime.apply(shelf(10, "pick", MILK, T0 + 8))
    runtime.apply(shelf(11, "pick", BREAD, T0 + 8, slot="A2"))
    assert {r.customer: r.total_cents for r in runtime.receipts()} == {"c-a": 120, "c-b": 250}


def test_track_coming_in_after_the_window_is_anonymous(tmp_path: Path) -> None:
    runtime = open_runtime(tmp_path, bind_window_s=5.0)
    runtime.apply(entry_read(code(), T0 + 1))
    runtime.apply(entered(1, T0 + 7))
    assert runtime.session(runtime.receipts()[0].session).tracks == 0
    assert [r.kind for r in runtime.reviews()] == ["anonymous"]


def test_refused_code_is_bound_to_nothing_and_its_bearer_picks_for_nobody(runtime: StoreRuntime) -> None:
    # The truth of sample 07: a shopper with a good code, then one with an expired code who walks
    # in anyway. The bearer's pick is held for review under nobody's name, with the refusal in its
    # alert, and it neither lands in nor holds up the paying shopper's basket.
    runtime.apply(entry_read(code("c-0001"), T0 + 1.8))
    runtime.apply(entered(1, T0 + 4.8))
    runtime.apply(entry_read(code("c-0002", exp=int(T0)), T0 + 5.0))
    runtime.apply(entered(2, T0 + 8.0))
    runtime.apply(shelf(1, "pick", MILK, T0 + 7.7))
    runtime.apply(shelf(2, "pick", BREAD, T0 + 12.6, slot="C3"))
    runtime.apply(exited(1, T0 + 13.4))

    assert [(e.customer, e.admitted, e.reason) for e in runtime.entries()] == [
        ("c-0001", True, None), ("c-0002", False, "expired")]
    [receipt] = runtime.receipts()
    assert (receipt.customer, receipt.total_cents, receipt.status) == ("c-0001", 120, "charged")
    alert, pick = runtime.reviews()
    assert alert.kind == "anonymous" and "after_refusal" in alert.codes and "c-0002" in " ".join(alert.reasons)
    assert pick.kind == "shelf" and pick.session is None and pick.codes == ("anonymous",)
    events = [(e.customer, e.gtin) for e in runtime.basket_events()]
    assert events == [("c-0001", MILK), (None, BREAD)]  # as truth.json writes the bearer's pick


def test_code_read_reaching_the_runtime_late_still_binds_its_people(runtime: StoreRuntime) -> None:
    # The aisle camera's node delivered before the gate camera's: the person came in "anonymous"
    # and picked; when the code's read arrives, the person is the code's and so is the pick.
    runtime.apply(entered(1, T0 + 4))
    runtime.apply(shelf(1, "pick", MILK, T0 + 6))
    assert {r.kind for r in runtime.reviews()} == {"anonymous", "shelf"}
    runtime.apply(entry_read(code(), T0 + 1))
    assert runtime.reviews() == []
    assert all(r.decided_by == "system" for r in runtime.reviews(open_only=False))
    [receipt] = runtime.receipts()
    assert receipt.total_cents == 120


def test_pick_before_the_track_is_known_waits_for_its_binding(runtime: StoreRuntime) -> None:
    runtime.apply(entry_read(code(), T0 + 1))
    runtime.apply(shelf(1, "pick", MILK, T0 + 6))  # its track's entry is still on its way
    [held] = runtime.reviews()
    assert held.codes == ("unbound_track",)
    runtime.apply(entered(1, T0 + 4))
    assert runtime.reviews() == [] and runtime.receipts()[0].total_cents == 120


def test_restarted_runtime_keeps_sessions_and_bindings(tmp_path: Path) -> None:
    runtime = open_runtime(tmp_path)
    runtime.apply(entry_read(code(), T0 + 1))
    runtime.apply(entered(1, T0 + 4))
    again = open_runtime(tmp_path)  # a new process on the same file
    again.apply(shelf(1, "pick", MILK, T0 + 6))
    again.apply(exited(1, T0 + 9))
    assert again.receipts()[0].status == "charged"
