"""Event-sourced baskets and the review queue.

A basket is not a row that is edited: it is the fold of its session's pick and put events, in
time order (then id order, for events of one instant), whatever order they arrived in. Each
applied event raises the session's `version`, so a reader can tell two states of one basket apart.
A put never takes a line below zero in the fold; a put that would (nothing of that product in
the basket at that moment) is not applied but sent to review.

An event the system is not sure of — who did it (track -1, a track that never came in through
the entry, an anonymous person), what it was (low confidence, a product not in the catalog), or
a doubt the camera node flagged — goes to the review queue instead of a basket, with what the
system believed (the likeliest session, the other candidates) and why. A person resolves it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from store_runtime.config import Catalog
from store_runtime.db import BasketEventRow, ReviewRow, SessionRow, digest
from store_runtime.events import ShelfAction

if TYPE_CHECKING:
    from store_runtime.clips import ClipStore

__all__ = [
    "BasketEventView",
    "ONLY_UNBOUND",
    "Line",
    "Reason",
    "ReviewView",
    "add_basket_event",
    "basket_rows",
    "fold",
    "open_review",
    "overdraws",
    "review_codes",
    "review_id",
    "review_view",
    "shelf_doubts",
]

DOUBT_WORDS = {
    "two_hands": "two hands were in the slot at once",
    "track_regained": "the person's track was lost and found again around the event",
}


class _Move(Protocol):
    """What the fold needs of an event (a `BasketEventRow`, or any object with these fields)."""

    id: str
    t: float
    action: str
    gtin: str
    qty: int
    unit_cents: int


@dataclass(frozen=True, slots=True)
class Line:
    """One receipt line: `qty` of `gtin` at `unit_cents` each."""

    gtin: str
    qty: int
    unit_cents: int

    @property
    def cents(self) -> int:
        return self.qty * self.unit_cents

    def to_json(self) -> dict[str, Any]:
        return {"gtin": self.gtin, "qty": self.qty, "unit_cents": self.unit_cents}


def _in_order(moves: Iterable[_Move]) -> list[_Move]:
    return sorted(moves, key=lambda m: (m.t, m.id))


def fold(moves: Iterable[_Move]) -> tuple[Line, ...]:
    """The basket these events make: picks add, puts take away (never below zero), in time order.
    Lines with nothing left are dropped; lines are sorted by gtin; a line's unit price is the one
    of its product's latest pick."""
    qty: dict[str, int] = {}
    price: dict[str, int] = {}
    for m in _in_order(moves):
        if m.action == "pick":
            qty[m.gtin] = qty.get(m.gtin, 0) + m.qty
            price[m.gtin] = m.unit_cents
        else:
            qty[m.gtin] = max(0, qty.get(m.gtin, 0) - m.qty)
    return tuple(Line(g, qty[g], price[g]) for g in sorted(qty) if qty[g] > 0)


def overdraws(moves: Iterable[_Move], new: _Move) -> bool:
    """Whether adding `new` (a put) would, at some moment of the time-ordered fold, take more of
    its product than the basket holds: a put of nothing, or one of two puts of a single pick."""
    held = 0
    for m in _in_order([*[m for m in moves if m.gtin == new.gtin], new]):
        held += m.qty if m.action == "pick" else -m.qty
        if held < 0:
            return True
    return False


def basket_rows(tx: Session, session: str) -> list[BasketEventRow]:
    return list(tx.scalars(select(BasketEventRow).where(BasketEventRow.session_id == session)
                           .order_by(BasketEventRow.t, BasketEventRow.id)))


def add_basket_event(tx: Session, session: SessionRow, *, id: str, t: float, action: str, gtin: str, qty: int,
                     unit_cents: int, now: float, source: str, slot: str | None = None, camera: str | None = None,
                     confidence: float | None = None, review_id: str | None = None) -> BasketEventRow:
    """Append an event to `session`'s basket and raise its version (the caller holds its row lock)."""
    row = BasketEventRow(id=id, session_id=session.id, t=t, action=action, gtin=gtin, qty=qty,
                         unit_cents=unit_cents, slot=slot, camera=camera, confidence=confidence, source=source,
                         review_id=review_id, applied_t=now)
    tx.add(row)
    session.version += 1
    tx.flush()
    return row


Reason = tuple[str, str]
"""(code, words): the code is for the runtime's rules, the words for the person reviewing."""

# Reasons that only say the person was not known yet: a review held for these alone is settled by
# the system once the person's track is bound to a session (a code read that arrived late).
ONLY_UNBOUND = frozenset({"unbound_track", "anonymous"})


def shelf_doubts(event: ShelfAction, catalog: Catalog, *, min_confidence: float,
                 min_track_confidence: float) -> list[Reason]:
    """Why `event`'s product or person is uncertain, from the event alone (the runtime adds what
    it knows of the track and the basket); empty when nothing is."""
    reasons = []
    if event.gtin not in catalog:
        reasons.append(("not_in_catalog", f"product {event.gtin} is not in the catalog"))
    if event.confidence < min_confidence:
        reasons.append(("low_confidence", f"product identity confidence {event.confidence:.2f} is below "
                                          f"{min_confidence:.2f}"))
    if event.track >= 0 and event.track_confidence < min_track_confidence:
        reasons.append(("low_track_confidence", f"the hand's owner confidence {event.track_confidence:.2f} "
                                                f"is below {min_track_confidence:.2f}"))
    if event.doubt:
        reasons.append((event.doubt, DOUBT_WORDS[event.doubt]))
    return reasons


def review_id(kind: str, *parts: object) -> str:
    """A review's id, derived from what it is about, so a replay names it the same."""
    return "r_" + digest(kind, *parts)[:20]


def open_review(tx: Session, *, kind: str, id: str, t: float, now: float, reasons: Sequence[Reason],
                session: str | None = None, candidates: Sequence[str] = (), event: ShelfAction | None = None,
                camera: str | None = None, track: int | None = None, gtin: str | None = None,
                qty: int | None = None, action: str | None = None) -> ReviewRow:
    """Put something before a person; `session` is who the system believes it concerns."""
    if event is not None:
        camera, track, gtin, qty, action = event.camera, event.track, event.gtin, event.qty, event.action
    row = ReviewRow(id=id, kind=kind, state="open", t=t, created_t=now, session_id=session,
                    candidates=list(candidates), reasons=[list(r) for r in reasons],
                    event_id=event.id if event else None, camera=camera, track=track, action=action, gtin=gtin, qty=qty,
                    slot=event.slot if event else None, confidence=event.confidence if event else None)
    tx.add(row)
    tx.flush()
    return row


@dataclass(frozen=True, slots=True)
class BasketEventView:
    """One line of SPEC section 5's events.jsonl: a pick or put as the system finally sees it.

    `review` is the open review holding it out of any basket (then `customer`/`session` are the
    system's belief, None for nobody's), or None when it is in its session's basket."""

    t: float
    customer: str | None
    session: str | None
    action: str
    gtin: str
    qty: int
    slot: str | None
    camera: str | None
    confidence: float | None
    review: str | None = None

    def to_spec(self, start: float = 0.0) -> dict[str, Any]:
        """The events.jsonl object; `t` in seconds since `start` (Unix seconds of the scenario's frame 0)."""
        return {"t": round(self.t - start, 3), "customer": self.customer, "session": self.session,
                "action": self.action, "gtin": self.gtin, "qty": self.qty, "slot": self.slot,
                "camera": self.camera, "confidence": self.confidence}


@dataclass(frozen=True, slots=True)
class ReviewView:
    """An item of the review queue.

    `reasons` are in words; `codes` the same reasons as codes (low_confidence, unknown_track, ...).
    kind: `shelf` (an uncertain pick or put: `event` says what was seen), `anonymous` (a person came
    in with no admitted code: an alert), `dispute` (a customer contests `event`'s gtin and qty).
    status: open, accepted, rejected. `session`/`customer`: whom the system believes it concerns
    (None: nobody's); an open review with a session holds that session's charge. `candidates`: the
    sessions inside at the time. `applied_session`: where an accepted shelf event went. `clip`: the
    URL path of the event's blurred review clip, when there is one and every customer it may show
    consented to review clips (store_runtime/clips.py), else None.
    """

    id: str
    kind: str
    status: str
    t: float
    session: str | None
    customer: str | None
    candidates: tuple[str, ...]
    reasons: tuple[str, ...]
    codes: tuple[str, ...]
    event: dict[str, Any]
    decided_by: str | None
    decided_t: float | None
    note: str | None
    applied_session: str | None
    clip: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "status": self.status, "t": self.t, "session": self.session,
                "customer": self.customer, "candidates": list(self.candidates), "reasons": list(self.reasons),
                "codes": list(self.codes), "event": dict(self.event), "decided_by": self.decided_by,
                "decided_t": self.decided_t, "note": self.note, "applied_session": self.applied_session,
                "clip": self.clip}


def review_view(tx: Session, row: ReviewRow, clips: ClipStore | None = None) -> ReviewView:
    customer = None
    if row.session_id is not None:
        session = tx.get(SessionRow, row.session_id)
        customer = session.customer if session else None
    event = {"event_id": row.event_id, "camera": row.camera, "track": row.track, "action": row.action,
             "gtin": row.gtin, "qty": row.qty, "slot": row.slot, "confidence": row.confidence}
    return ReviewView(row.id, row.kind, row.state, row.t, row.session_id, customer, tuple(row.candidates),
                      tuple(words for _, words in row.reasons), tuple(code for code, _ in row.reasons), event,
                      row.decided_by, row.decided_t, row.note, row.applied_session_id,
                      _clip(tx, row, clips))


def _clip(tx: Session, row: ReviewRow, clips: ClipStore | None) -> str | None:
    from store_runtime.clips import clip_url, may_show

    if clips is None or clips.path(row.event_id) is None or not may_show(tx, row):
        return None
    return clip_url(row.id)


def review_codes(row: ReviewRow) -> frozenset[str]:
    return frozenset(code for code, _ in row.reasons)
