"""Gate events: entry codes checked once per presentation, zone entries and exits, and binding."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from vision.entry_code import EntryClaims, Refusal, make_code
from vision.gates import BinderConfig, EntryBinder, EntryWatcher, ZoneConfig, ZoneEvent, ZoneWatcher
from vision.types import Tracks

KEY = bytes(range(32))
STORE = "paris-flash-01"
NOW = 1_795_000_000.0
ENTRY = [(0, 400), (160, 400), (160, 720), (0, 720)]
EXIT = [(1120, 400), (1280, 400), (1280, 720), (1120, 720)]


def code(jti: str = "t1", *, sid: str = STORE, exp: float = NOW + 600, party: int = 1, key: bytes = KEY) -> str:
    return make_code(key, EntryClaims("c-0001", jti, sid, int(exp), party))


def persons(*rows: tuple[int, float, float]) -> Tracks:
    """Person tracks from (track id, feet x, feet y): 80x300 boxes standing on that point."""
    n = len(rows)
    xyxy = np.array([[x - 40, y - 300, x + 40, y] for _, x, y in rows], np.float32).reshape(n, 4)
    return Tracks(xyxy, np.full(n, 0.9, np.float32), np.zeros(n, np.int32),
                  np.array([r[0] for r in rows], np.int64), np.full(n, -1, np.int64), ("person", "hand"))


def watcher(**kw) -> EntryWatcher:
    return EntryWatcher(gate="entry-1", camera="gate", key=KEY, store_id=STORE, **kw)


@pytest.mark.parametrize("text, refusal", [
    (code(), None),
    (code(key=bytes(32)), Refusal.BAD_SIGNATURE),
    (code(sid="lyon-02"), Refusal.OTHER_STORE),
    (code(exp=NOW - 1), Refusal.EXPIRED),
    ("WO1.garbage", Refusal.MALFORMED),
    ("\x00" * 5000, Refusal.MALFORMED),
])
def test_each_presented_code_gets_one_checked_event(text: str, refusal: Refusal | None) -> None:
    entries = watcher()
    events = [e for k in range(10) for e in entries.step([text], NOW + k / 15)]
    assert len(events) == 1 and events[0].verdict.refusal == refusal and events[0].admitted == (refusal is None)


def test_a_code_shown_again_later_is_refused_as_reused() -> None:
    entries = watcher()
    assert entries.step([code()], NOW)[0].admitted
    assert entries.step([code()], NOW + 1)[0:] == []  # still the same presentation
    again = entries.step([code()], NOW + 30)
    assert [e.verdict.refusal for e in again] == [Refusal.REUSED]


def test_used_tokens_are_forgotten_once_expired() -> None:
    entries = watcher()
    for k in range(50):
        entries.step([code(f"t{k}", exp=NOW + k + 1)], NOW + k)
    assert len(entries._used) <= 2


def walk(zones: ZoneWatcher, track: int, xs: list[float], t0: float = 0.0, y: float = 650) -> list[ZoneEvent]:
    events = []
    for k, x in enumerate(xs):
        events += zones.step(persons((track, x, y)), t0 + k / 15)
    return events


def zone_watcher(**kw) -> ZoneWatcher:
    return ZoneWatcher(camera="aisle", zones={"entry-1": ENTRY, "exit-1": EXIT},
                       kinds={"entry-1": "entry", "exit-1": "exit"}, config=ZoneConfig(**kw))


@pytest.mark.parametrize("path, kinds", [
    (list(range(20, 1300, 20)), ["entered", "exited"]),     # walks in at the left, out at the right
    (list(range(400, 1300, 20)), ["appeared", "exited"]),  # appears mid-aisle: no entry through the door
    (list(range(400, 600, 20)), []),                       # ... for less than the entry window: nobody to place
    ([500] * 40, ["appeared", "lost"]),                    # found mid-aisle, then lost there
    (list(range(20, 700, 20)), ["entered", "lost"]),       # walks in, vanishes mid-aisle (hidden, missed)
    (list(range(20, 700, 20)) + list(range(700, 0, -20)), ["entered"]),  # goes back out the way it came
    ([100, 100], []),                                       # too brief to count (debounce)
    ([60, 150, 200, 260, 320, 400], ["entered", "lost"]),   # seen first at the door, out of it before 3 frames
])
def test_zone_events_follow_the_feet(path: list[float], kinds: list[str]) -> None:
    zones = zone_watcher()
    events = walk(zones, 7, path)
    events += zones.step(persons(), 100.0)
    assert [e.kind for e in events] == kinds and all(e.track_id == 7 for e in events)
    assert len(zones) == 0  # a vanished track leaves nothing behind


def test_an_appearance_is_dated_when_the_track_was_first_seen() -> None:
    zones = zone_watcher()
    events = walk(zones, 1, [500] * 40, t0=3.0)
    assert [(e.kind, e.zone, e.t) for e in events] == [("appeared", "", 3.0)]


def test_an_exit_is_dated_when_the_track_was_last_seen() -> None:
    zones = zone_watcher()
    walk(zones, 1, list(range(900, 1290, 30)))
    appeared, event = zones.flush()  # seen first mid-aisle: where it came from is told first
    assert (appeared.kind, appeared.t) == ("appeared", 0.0)
    assert event.kind == "exited" and event.t == pytest.approx(12 / 15)


def test_zone_state_stays_bounded_over_many_shoppers() -> None:
    zones = zone_watcher()
    for k in range(2000):
        zones.step(persons((k, 1200, 650)), k * 2.0)
    assert len(zones) <= 1


def test_a_family_code_binds_party_tracks_and_a_tailgater_is_unbound() -> None:
    entries, binder = watcher(), EntryBinder(BinderConfig(window_s=10))
    admitted = entries.step([code(party=2)], 1.0)
    arrivals = [ZoneEvent(t, "aisle", tid, "entry-1", "entered") for t, tid in ((3.0, 11), (3.5, 12), (4.0, 13))]
    bound, unbound = binder.step(admitted, arrivals, 4.0)
    assert [b.track_id for b in bound] == [11, 12] and all(b.entry is admitted[0] for b in bound)
    assert [e.track_id for e in unbound] == [13]


def test_a_refused_code_binds_nobody_and_an_admitted_one_waits_only_so_long() -> None:
    binder = EntryBinder(BinderConfig(window_s=5))
    refused = watcher().step([code(exp=NOW - 1)], NOW)
    late = [ZoneEvent(NOW + 1, "aisle", 1, "entry-1", "entered")]
    assert binder.step(refused, late, NOW + 1) == ([], late)
    admitted = watcher().step([code()], NOW)
    too_late = [ZoneEvent(NOW + 9, "aisle", 2, "entry-1", "entered")]
    assert binder.step(admitted, too_late, NOW + 9) == ([], too_late)


@pytest.mark.parametrize("kw, field", [
    ({"min_frames": 0}, "min_frames"),
    ({"gone_after_s": float("nan")}, "gone_after_s"),
])
def test_bad_config_names_the_field(kw: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        ZoneConfig(**kw)


def test_a_track_confirmed_past_the_door_still_entered_where_it_began() -> None:
    # The tracker outputs a track only after n_init hits; a shopper walking in at the frame's edge is
    # out of the entry zone by then. The track's origin (its first detection) says where it came from.
    zones = zone_watcher()
    events = []
    for k, x in enumerate(range(300, 600, 30)):
        tracks = persons((4, x, 650))
        tracks = replace(tracks, origin=np.array([[20, 350, 100, 650]], np.float32))
        events += zones.step(tracks, k / 15)
    assert [(e.kind, e.zone) for e in events] == [("entered", "entry-1")]
