"""A person the tracker lost mid-floor and found again under a new id (vision.gates.ZoneWatcher's
`lost` and `appeared`): the runtime gives the found track the lost one's session when exactly one
such pair is close in time, so what they take and their exit count; with several candidates it
guesses nothing."""

from __future__ import annotations

from pathlib import Path

from store_fakes import BREAD, JAM, MILK, T0, Clock, code, entered, entry_read, exited, inside, open_runtime, shelf

from store_runtime.events import TrackZone, event_id
from store_runtime.runtime import ReceiptView, StoreRuntime


def lost(track: int, t: float, camera: str = "aisle") -> TrackZone:
    return TrackZone(id=event_id(camera, "lost", track, "", t), t=t, camera=camera, kind="lost", track=track, zone="")


def appeared(track: int, t: float, camera: str = "aisle") -> TrackZone:
    return TrackZone(id=event_id(camera, "appeared", track, "", t), t=t, camera=camera, kind="appeared", track=track,
                     zone="")


def receipt(runtime: StoreRuntime, session: str) -> ReceiptView:
    """The session's receipt, inside or out."""
    (found,) = [r for r in runtime.receipts() if r.session == session]
    return found


def lines(runtime: StoreRuntime, session: str) -> dict[str, int]:
    return {line.gtin: line.qty for line in receipt(runtime, session).lines}


def test_a_shopper_lost_and_found_again_is_charged_for_everything_at_their_exit(tmp_path: Path) -> None:
    runtime, session = inside(tmp_path, shelf(1, "pick", MILK, T0 + 5), lost(1, T0 + 8), appeared(9, T0 + 9),
                              shelf(9, "pick", BREAD, T0 + 12), exited(9, T0 + 15))
    assert receipt(runtime, session).status == "charged" and lines(runtime, session) == {MILK: 1, BREAD: 1}
    assert runtime.reviews() == []


def test_what_the_found_person_did_before_the_pairing_joins_their_basket(tmp_path: Path) -> None:
    # Seen again while the lost track still coasted: the appearance is dated before the loss, and the
    # pick made meanwhile waited in review for a person to be told.
    runtime, session = inside(tmp_path, appeared(9, T0 + 7), shelf(9, "pick", JAM, T0 + 7.5), lost(1, T0 + 8),
                              exited(9, T0 + 15))
    assert receipt(runtime, session).status == "charged" and lines(runtime, session) == {JAM: 1}
    assert runtime.reviews() == []


def test_a_track_found_long_after_the_loss_is_nobody_in_particular(tmp_path: Path) -> None:
    runtime, session = inside(tmp_path, lost(1, T0 + 8), appeared(9, T0 + 30), shelf(9, "pick", JAM, T0 + 31),
                              exited(9, T0 + 35))
    assert receipt(runtime, session).status == "open" and lines(runtime, session) == {}
    (review,) = runtime.reviews()
    assert review.event["track"] == 9


def test_two_lost_and_one_found_guesses_nothing(tmp_path: Path) -> None:
    runtime = open_runtime(tmp_path, clock=Clock())
    for event in [entry_read(code("c-a"), T0 + 1), entry_read(code("c-b"), T0 + 2), entered(1, T0 + 4),
                  entered(2, T0 + 5), lost(1, T0 + 8), lost(2, T0 + 8.5), appeared(9, T0 + 9),
                  shelf(9, "pick", JAM, T0 + 10), exited(9, T0 + 15)]:
        runtime.apply(event)
    assert [r.status for r in runtime.receipts()] == ["open", "open"]
    (review,) = runtime.reviews()
    assert review.event["track"] == 9 and not any(lines(runtime, r.session) for r in runtime.receipts())


def test_a_family_member_lost_and_found_again_lets_the_family_leave(tmp_path: Path) -> None:
    runtime = open_runtime(tmp_path, clock=Clock())
    for event in [entry_read(code("c-f", party=2), T0 + 1), entered(1, T0 + 3), entered(2, T0 + 4),
                  shelf(2, "pick", MILK, T0 + 6), lost(2, T0 + 7), appeared(5, T0 + 8), exited(1, T0 + 12)]:
        runtime.apply(event)
    (family,) = runtime.receipts()
    assert family.status == "open"  # the found member is still inside
    runtime.apply(exited(5, T0 + 13))
    assert receipt(runtime, family.session).status == "charged" and lines(runtime, family.session) == {MILK: 1}


def test_a_lost_person_seen_again_under_their_own_id_is_no_longer_lost(tmp_path: Path) -> None:
    runtime, session = inside(tmp_path, lost(1, T0 + 8), appeared(1, T0 + 9), appeared(9, T0 + 10),
                              shelf(9, "pick", JAM, T0 + 11), exited(1, T0 + 15))
    assert receipt(runtime, session).status == "charged" and lines(runtime, session) == {}
    (review,) = runtime.reviews()  # track 9 is someone else: nobody was missing when it appeared
    assert review.event["track"] == 9


def test_the_same_events_again_change_nothing(tmp_path: Path) -> None:
    events = [shelf(1, "pick", MILK, T0 + 5), lost(1, T0 + 8), appeared(9, T0 + 9), exited(9, T0 + 15)]
    runtime, session = inside(tmp_path, *events)
    before = receipt(runtime, session)
    for event in events:
        runtime.apply(event)
    assert receipt(runtime, session) == before
