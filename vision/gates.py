"""Gate events: entry codes read by a gate camera, shoppers passing the entry and exit zones of a
shelf camera, and the binding of the two.

- `EntryWatcher` (gate camera) turns debounced code reads into one `EntryEvent` per presented
  code, checked as SPEC section 4 says. Refused codes are events too, with their reason: the
  record of a refusal matters as much as an admission, and a refused code opens nothing.
- `ZoneWatcher` (shelf camera) turns person tracks into `ZoneEvent`s: a track that first shows
  up in an entry zone has entered; a track last seen in an exit zone before it vanished has left.
  The tracker loses people (behind another shopper, a missed detection too many) and finds them
  again under a new id, in the middle of the floor: such a track has `appeared` (dated when it
  was first seen), and a track that entered or appeared and then vanished elsewhere than an exit
  zone is `lost`. The store runtime pairs the two (store_runtime/sessions.py).
- `EntryBinder` binds each admitted code to the person tracks that come through the entry zone
  in the following seconds, `party` of them, first come first bound.

All three are pure stages with one verb (`step`) and bounded state: what they remember of a
track or a token is dropped once it can no longer matter.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import cv2
import numpy as np

from vision.entry_code import MAX_CODE_LENGTH, Verdict, verify_code
from vision.types import Tracks

Point = tuple[float, float]


def _positive(owner: str, **values: float) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
            raise ValueError(f"{owner}.{name}: expected a positive number, got {value!r}")


# ------------------------------------------------------------------------------------ entry codes


@dataclass(frozen=True)
class EntryEvent:
    """One presented entry code at a gate: admitted when `verdict.ok`, else refused with a reason."""

    t: float
    gate: str
    camera: str
    code: str  # the text read; untrusted, cut one character past the longest that verify_code accepts
    verdict: Verdict

    @property
    def admitted(self) -> bool:
        return self.verdict.ok


@dataclass(frozen=True)
class EntryConfig:
    # A code still on the screen is the same presentation; shown again after this long, it is a new
    # attempt (and a used token is then refused as reused).
    same_presentation_s: float = 5.0
    max_remembered: int = 10_000  # used tokens kept locally; the store runtime's database is the authority

    def __post_init__(self) -> None:
        _positive("EntryConfig", same_presentation_s=self.same_presentation_s, max_remembered=self.max_remembered)


class EntryWatcher:
    """Checks each code a gate camera reads; `step(texts, t)` gives the events of this frame.

    The node's own memory of used tokens stops a code shown twice at this gate from opening it
    twice even when the store runtime is briefly unreachable; the runtime re-checks every token
    against its database (SPEC section 7, 409 for a reused code).
    """

    def __init__(self, *, gate: str, camera: str, key: bytes, store_id: str, config: EntryConfig | None = None,
                 is_used: Callable[[str], bool] | None = None) -> None:
        self.gate, self.camera, self.key, self.store_id = gate, camera, key, store_id
        self.config = config or EntryConfig()
        self._is_used_elsewhere = is_used or (lambda _jti: False)
        self._used: OrderedDict[str, float] = OrderedDict()  # jti -> expiry (Unix s)
        self._last_seen: dict[str, float] = {}  # code text -> last time read

    def step(self, texts: Sequence[str], t: float) -> list[EntryEvent]:
        horizon = t - self.config.same_presentation_s
        self._last_seen = {text: seen for text, seen in self._last_seen.items() if seen >= horizon}
        self._forget_expired(t)
        events = []
        for text in dict.fromkeys(texts):  # one verdict per distinct text per frame, in read order
            if text not in self._last_seen:
                verdict = verify_code(text, key=self.key, store_id=self.store_id, now=t, is_used=self._is_used)
                if verdict.ok and verdict.claims is not None:
                    self._remember(verdict.claims.jti, verdict.claims.exp)
                # Cut one past the limit, not at it: the store runtime checks the code again, and a code
                # cut to fit would be another code (a long one cut to a valid prefix, admitted there).
                events.append(EntryEvent(t, self.gate, self.camera, text[:MAX_CODE_LENGTH + 1], verdict))
            self._last_seen[text] = t
        return events

    def _is_used(self, jti: str) -> bool:
        return jti in self._used or self._is_used_elsewhere(jti)

    def _remember(self, jti: str, exp: float) -> None:
        self._used[jti] = exp
        while len(self._used) > self.config.max_remembered:
            self._used.popitem(last=False)

    def _forget_expired(self, t: float) -> None:
        # An expired token is refused as expired whether or not it was used: no need to remember it.
        for jti in [jti for jti, exp in self._used.items() if exp <= t]:
            del self._used[jti]


# ------------------------------------------------------------------------------------ zones


def _feet(box: np.ndarray) -> Point:
    """Where a person stands: the bottom centre of the box, the floor the zones are drawn on."""
    return (float(box[0] + box[2]) / 2, float(box[3]))


@dataclass(frozen=True)
class ZoneEvent:
    t: float
    camera: str
    track_id: int
    zone: str  # "" for appeared and lost: the middle of the floor
    kind: Literal["entered", "exited", "appeared", "lost"]


@dataclass(frozen=True)
class ZoneConfig:
    min_frames: int = 3  # frames a track's feet must be in a zone for it to count (debounce)
    gone_after_s: float = 1.0  # a track unseen this long has left the view
    # A track counts as coming in through an entry zone if its feet are there within this time of its
    # first appearance: someone who walks back to the door later has not entered again.
    entry_window_s: float = 2.0

    def __post_init__(self) -> None:
        _positive("ZoneConfig", min_frames=self.min_frames, gone_after_s=self.gone_after_s,
                  entry_window_s=self.entry_window_s)


@dataclass
class _TrackZones:
    first_t: float
    last_t: float
    first_zone: str | None  # where the feet were when the track appeared
    frames: int = 0
    streak_zone: str | None = None
    streak: int = 0
    entered: bool = False
    appeared: bool = False
    last_zone: str | None = None  # the zone of the last debounced streak, cleared when the feet leave it
    zones_seen: set[str] = field(default_factory=set)


class ZoneWatcher:
    """Entry and exit of person tracks through the floor zones of one shelf camera.

    A track's position is its feet: the bottom centre of its box, which is where the floor zones
    are drawn. `kinds` maps each zone's gate to entry or exit.
    """

    def __init__(self, *, camera: str, zones: Mapping[str, Sequence[Point]], kinds: Mapping[str, str],
                 person: str = "person", config: ZoneConfig | None = None) -> None:
        unknown = sorted(set(zones) - set(kinds))
        if unknown:
            raise ValueError(f"ZoneWatcher({camera}): zones {unknown} name no gate of the store")
        self.camera = camera
        self.person = person
        self.config = config or ZoneConfig()
        self._zones = {name: np.asarray(poly, np.float32).reshape(-1, 1, 2) for name, poly in zones.items()}
        self._kinds = dict(kinds)
        self._tracks: dict[int, _TrackZones] = {}

    def step(self, tracks: Tracks, t: float) -> list[ZoneEvent]:
        persons = tracks.of(self.person)
        events: list[ZoneEvent] = []
        origins = persons.xyxy if persons.origin is None else persons.origin
        for tid, box, origin in zip(persons.track_id.tolist(), persons.xyxy, origins, strict=True):
            zone = self._zone_of(_feet(box))
            state = self._tracks.get(tid)
            if state is None:
                state = self._tracks[tid] = _TrackZones(first_t=t, last_t=t, first_zone=self._zone_of(_feet(origin)))
            state.last_t, state.frames = t, state.frames + 1
            self._update_streak(state, zone)
            came_in = self._entry_zone(state.last_zone) or (
                # Someone stepping in at the frame's edge is first seen where the door is, but may be out
                # of its zone before the track is confirmed or debounced: where the track began counts.
                self._entry_zone(state.first_zone) and state.frames >= self.config.min_frames)
            if not state.entered and came_in and t - state.first_t <= self.config.entry_window_s:
                state.entered = True
                zone_in = state.last_zone if self._entry_zone(state.last_zone) else state.first_zone
                events.append(ZoneEvent(t, self.camera, tid, zone_in, "entered"))
            elif not state.entered and not state.appeared and t - state.first_t > self.config.entry_window_s:
                events += self._appeared(tid, state)
        events += self._gone(t)
        return events

    def flush(self) -> list[ZoneEvent]:
        """At the end of a recording: every track still in view is gone, exit zones decide."""
        return self._gone(math.inf)

    def _entry_zone(self, zone: str | None) -> bool:
        return zone is not None and self._kinds[zone] == "entry"

    def _zone_of(self, point: Point) -> str | None:
        for name, poly in self._zones.items():
            if cv2.pointPolygonTest(poly, (float(point[0]), float(point[1])), False) >= 0:
                return name
        return None

    def _update_streak(self, state: _TrackZones, zone: str | None) -> None:
        state.streak = state.streak + 1 if zone == state.streak_zone else 1
        state.streak_zone = zone
        if state.streak >= self.config.min_frames:
            state.last_zone = zone
            if zone is not None:
                state.zones_seen.add(zone)

    def _appeared(self, tid: int, state: _TrackZones) -> list[ZoneEvent]:
        state.appeared = True
        return [ZoneEvent(state.first_t, self.camera, tid, "", "appeared")]

    def _gone(self, t: float) -> list[ZoneEvent]:
        events = []
        for tid in [tid for tid, s in self._tracks.items() if t - s.last_t > self.config.gone_after_s]:
            state = self._tracks.pop(tid)  # pruned: a vanished track's state is never needed again
            if state.last_zone is not None and self._kinds[state.last_zone] == "exit":
                if not state.entered and not state.appeared:  # whose exit it is must be known before it
                    events += self._appeared(tid, state)
                events.append(ZoneEvent(state.last_t, self.camera, tid, state.last_zone, "exited"))
            elif (state.entered or state.appeared) and state.last_zone is None:  # not out by the door it came in
                events.append(ZoneEvent(state.last_t, self.camera, tid, "", "lost"))
        return sorted(events, key=lambda e: (e.t, e.track_id))

    def __len__(self) -> int:
        return len(self._tracks)


# ------------------------------------------------------------------------------------ binding


@dataclass(frozen=True)
class Binding:
    """Track `track_id` of `camera` is one of the people who came in on `entry`'s code."""

    entry: EntryEvent
    camera: str
    track_id: int
    t: float


@dataclass(frozen=True)
class BinderConfig:
    window_s: float = 15.0  # from the code's read to the track's arrival in the entry zone

    def __post_init__(self) -> None:
        _positive("BinderConfig", window_s=self.window_s)


class EntryBinder:
    """Admitted codes wait, in the order they were read, for `party` tracks to come through an
    entry zone; a track that comes in with no code waiting is reported as unbound (tailgating)."""

    def __init__(self, config: BinderConfig | None = None) -> None:
        self.config = config or BinderConfig()
        self._waiting: deque[list] = deque()  # [entry, seats left]

    def step(self, entries: Sequence[EntryEvent], zone_events: Sequence[ZoneEvent], t: float
             ) -> tuple[list[Binding], list[ZoneEvent]]:
        """Returns the bindings made and the entered zone events that found no code."""
        for entry in entries:
            if entry.admitted and entry.verdict.claims is not None:
                self._waiting.append([entry, entry.verdict.claims.party])
        while self._waiting and t - self._waiting[0][0].t > self.config.window_s:
            self._waiting.popleft()
        bound, unbound = [], []
        for event in sorted((e for e in zone_events if e.kind == "entered"), key=lambda e: (e.t, e.track_id)):
            slot = next((w for w in self._waiting if w[0].t <= event.t), None)
            if slot is None:
                unbound.append(event)
                continue
            bound.append(Binding(slot[0], event.camera, event.track_id, event.t))
            slot[1] -= 1
            if slot[1] == 0:
                self._waiting.remove(slot)
        return bound, unbound
