"""The store runtime: node events and gate requests in, sessions, baskets, reviews and charges out.

One `StoreRuntime` per store, on one `Database`. It keeps no state of its own between calls —
everything is in the database, read and written in one transaction per call — so the HTTP API
can call it from several threads, a replay can drive it event by event, and a restart loses
nothing. The store clock (`clock`, the scenario clock in a replay) dates everything; ids are
derived from codes, events and keys, so a replay's outputs are the same bytes every run.

The contract the HTTP API (SPEC section 7) and the replay harness (section 5) code against:

- `enter(gate, code)` -> SessionView, or EntryRefused(reason) with reason in malformed (422),
  signature (401), other_store (403), expired (410), used (409), no_consent (403: consent to
  checkout withdrawn); the refusal is recorded first.
  A code shown again at the same gate within `same_presentation_s` of its admission (a gate
  retrying its request, or its camera and its scanner both reporting one scan) answers the same
  session again instead of `used`.
- `apply(event)`: a camera node's EntryRead / TrackZone / ShelfAction / CameraStatus, idempotent by `event.id`;
  InvalidEvent (a ValueError, nothing recorded) for an event no node of this store can have sent:
  an unknown camera, a time or number out of range, text with NUL, a time more than
  `max_event_lead_s` ahead of the store clock or older than the tracking data's retention, a shelf
  event at a slot its camera does not have or of another product than the slot's without the
  shelf stage's evidence (`event_problem`), or an id this camera's node applied before for another
  event (a forged or colliding id must not pass silently as a repeat). An id that another camera
  used first is no reason to lose this camera's event: it is applied under an id scoped to its camera.
- `exit_request(gate, session, key=..., body=...)` -> (HTTP status, JSON body): 200 receipt,
  402 declined, 404 unknown session, 409 key in flight, 422 key reused with another body (or a
  gate that is no exit gate). The first response of a key is stored and replayed.
- `session(id)`, `receipt(id)`, `receipts()`, `basket_events()`, `entries()`, `reviews()`,
  `resolve_review(...)`, `dispute(...)`, `recover()`, `finish(t)`.
- Bounded reads for pages open all day: `inside(limit)`, `recent_receipts(limit)`, `entries(limit)`,
  `reviews(limit=)`, `open_review_count()`, `session_events(id)`, `reviews_of(id)`; `changes`, a
  counter that rises with every committed write (`store_runtime/changes.py`), tells them when to read.
- `stop_customer(customer, why=..., then=...)`: the privacy side (`store_runtime/privacy.py`)
  stops tracking a customer who withdrew consent to checkout or was erased.
- `camera_health()`: each camera's state, lag, reconnects and recent outages with the sessions they
  flag (`store_runtime/outages.py`, which says what a flag is and when it holds a charge).

Privacy: an entry code is admitted only with consent to `checkout` (see `sessions.check_entry`).
A session whose tracking was stopped is closed at that moment, its basket so far charged as at an
exit; a node event of its people's tracks that arrives later (a pick, a track leaving) is not
applied, only noted as discarded with the reason.

Exits, charges and reviews:
- A session exits when its gate sends `POST /v1/exits` or when every track bound to it has left
  through an exit zone (a camera exit, keyed `camera:<event id>`, a namespace no request may
  use); both take one path. An open
  review whose believed session is this one makes the receipt `review` and holds the charge;
  resolving the last one charges it.
- A charge row is written (pending) in the transaction that claims the key and closes the
  session; only then is the provider asked, with keys derived from the charge's id; the answer
  is written with the key's response in one more transaction. A crash in between leaves a pending
  row that `recover()` (at boot) or a retry after the key's lease finishes, asking the provider
  the same questions: money moves once.
- A basket that changes after its charge (a review accepted late, a dispute accepted) is
  settled: the difference is charged (`adjust`) or refunded against the captures.
- A camera outage flags the sessions inside during it (session and receipt views say which camera
  and when); a shelf camera's outage also opens a `camera_outage` review on each, which holds its
  charge (`RuntimeSettings.outage_hold_s`). Replays have no outages: their outputs are unchanged.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from store_runtime import outages as camera_outages
from store_runtime.baskets import (
    ONLY_UNBOUND,
    BasketEventView,
    Line,
    Reason,
    ReviewView,
    add_basket_event,
    basket_rows,
    fold,
    open_review,
    overdraws,
    review_codes,
    review_id,
    review_view,
    shelf_doubts,
)
from store_runtime.changes import ChangeFeed
from store_runtime.clips import ClipStore, clip_unneeded
from store_runtime.config import CameraConfig, Store, StoreConfig
from store_runtime.db import (
    AppliedEventRow,
    BasketEventRow,
    ChargeRow,
    Database,
    DiscardedEventRow,
    EntryRow,
    IdempotencyRow,
    RefundRow,
    ReviewRow,
    SessionRow,
    StoppedTrackRow,
    TrackRow,
    digest,
)
from store_runtime.events import CameraStatus, EntryRead, ShelfAction, TrackZone, event_id
from store_runtime.payments import (
    LocalProvider,
    PaymentProvider,
    claim_key,
    finish_key,
    purge_keys,
    release_key,
    request_hash,
    run_charge,
    run_refund,
)
from store_runtime.privacy import append_audit
from store_runtime.sessions import (
    EntryRefused,
    adopt_early_tracks,
    bind_track,
    bound_tracks,
    check_entry,
    everyone_left,
    pair_lost_and_found,
    sessions_inside,
    track_appeared,
    track_left,
    track_lost,
)

__all__ = [
    "CAMERA_KEY_PREFIX",
    "BasketEventView",
    "ChargeView",
    "EntryRefused",
    "EntryView",
    "Line",
    "NotFound",
    "ReceiptView",
    "RefundView",
    "ReviewClosed",
    "ReviewView",
    "RuntimeSettings",
    "SessionEventView",
    "SessionView",
    "StoreRuntime",
    "UnknownGate",
]

log = logging.getLogger("walkout.runtime")

DAY_S = 86_400.0
CAMERA_KEY_PREFIX = "camera:"  # idempotency keys of camera-detected exits: the runtime's own namespace


class RuntimeSettings(BaseModel):
    """How the runtime decides; every default is a store's everyday setting."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bind_window_s: float = Field(
        default=10.0, gt=0, le=300,
        description="Seconds after a code is read within which the people coming in through its "
                    "gate's entry zone are its party (the synthetic store's walk from gate to aisle is 3-4 s).")
    same_presentation_s: float = Field(
        default=5.0, ge=0, le=60,
        description="A code shown again at its gate this soon after its admission is the same scan, not a reuse.")
    min_confidence: float = Field(
        default=0.5, ge=0, le=1, description="Product identity confidence below which a shelf event goes to review.")
    min_track_confidence: float = Field(
        default=0.5, ge=0, le=1, description="Hand-to-person confidence below which a shelf event goes to review.")
    belief_window_s: float = Field(
        default=10.0, gt=0, le=600,
        description="For an event nobody could be told for: the session that used the same slot this close in "
                    "time is believed to be the one.")
    in_flight_lease_s: float = Field(
        default=30.0, gt=0, le=3600,
        description="An idempotency key claimed this long ago by a request that never answered is taken over "
                    "by a retry (its process died); until then a retry gets 409.")
    idempotency_retention_s: float = Field(
        default=2 * DAY_S, ge=DAY_S,
        description="How long the first response to a key is kept and replayed (SPEC: at least 24 h).")
    max_event_lead_s: float = Field(
        default=120.0, gt=0, le=3600,
        description="A node event dated more than this ahead of the store clock is refused: no camera sees the "
                    "future, and the store's clocks agree within seconds (NTP); an event from far ahead would "
                    "open or close sessions that have not happened.")
    outage_hold_s: float | None = Field(
        default=0.0, ge=0, le=3600,
        description="A shelf camera's outage that overlaps a session's time inside by more than this many seconds "
                    "holds its charge for a person (a camera_outage review); None: outages only flag sessions.")
    camera_silence_s: float = Field(
        default=120.0, gt=0, le=86_400,
        description="A camera whose node has reported nothing for this long is `unknown` in camera_health "
                    "(a live node reports at least every 30 s).")


class UnknownGate(ValueError):
    """The gate named is not a gate of this store of the kind the call needs (API: 422)."""


class InvalidEvent(ValueError):
    """A node event the runtime will never apply; nothing of it is recorded. The API answers 422,
    the NATS consumer terminates the message (a retry could never succeed)."""


# Node events reach `apply` from the API (whose schemas hold them to the same bounds), the NATS
# consumer and the in-process bus; these are what every database column holds.
MAX_EVENT_T = 1e11  # Unix seconds: year 5138
MAX_EVENT_INT = 2**31 - 1


def event_problem(event: EntryRead | TrackZone | ShelfAction | CameraStatus, store: StoreConfig, *, now: float,
                  max_lead_s: float) -> str | None:
    """Why `event` cannot be applied in this store at store time `now`, or None.

    Time: an event may arrive late (an outbox resends what a broker outage held back), so the past
    is accepted back to the tracking data's retention (`privacy.tracking_days`): an older event
    belongs to tracks and sessions the retention purge has already deleted, and applying it would
    bring back data the store promised not to keep. The future is refused past `max_lead_s`.
    Shelf events: the slot must be one of the camera's (store.yaml's planogram); a product other
    than the slot's planned one is a misplaced item only when the event says how the shelf stage
    knows (label, memory or appearance in `sources`); a forged or broken event says nothing.
    """
    if event.camera not in store.cameras:
        return f"camera {event.camera[:64]!r} is not a camera of this store"
    if not (math.isfinite(event.t) and 0 <= event.t <= MAX_EVENT_T):
        return f"t: expected finite Unix seconds from 0 to {MAX_EVENT_T:.0f}, got {event.t!r}"
    for name, value in event.model_dump().items():
        if isinstance(value, float) and not math.isfinite(value):
            return f"{name}: expected a finite number, got {value!r}"
        if isinstance(value, int) and not isinstance(value, bool) and not -1 <= value <= MAX_EVENT_INT:
            return f"{name}: expected a whole number from -1 to {MAX_EVENT_INT}"
        # PostgreSQL stores no NUL (and the event types refuse lone surrogates). The code is only
        # hashed, never stored: a QR's NUL is refused as malformed, and that refusal recorded.
        if isinstance(value, str) and "\x00" in value and name != "code":
            return f"{name}: expected text without NUL characters"
    if event.t > now + max_lead_s:
        return (f"t: {event.t - now:.1f} s ahead of the store clock; at most {max_lead_s:g} s "
                f"(RuntimeSettings.max_event_lead_s)")
    kept_days = store.privacy.tracking_days
    if event.t < now - kept_days * DAY_S:
        return (f"t: {(now - event.t) / DAY_S:.1f} days before the store clock, past the {kept_days} days "
                f"tracking data is kept (store.yaml privacy.tracking_days)")
    if isinstance(event, ShelfAction):
        return _shelf_problem(event, store.cameras[event.camera])
    return None


def _shelf_problem(event: ShelfAction, camera: CameraConfig) -> str | None:
    planned = {slot.id: slot.gtin for slot in camera.slots}
    if event.slot not in planned:
        return (f"slot: {event.slot[:64]!r} is not a slot of camera {event.camera!r} "
                f"(store.yaml has {', '.join(sorted(planned)) or 'none'})")
    if event.gtin != planned[event.slot] and not {"label", "memory", "appearance"} & set(event.sources):
        return (f"gtin: {event.gtin} is not slot {event.slot}'s product {planned[event.slot]}, and the event gives "
                f"no evidence of a misplaced item (sources: label, memory or appearance)")
    return None


class NotFound(KeyError):
    """No session, or no review, of that id (API: 404)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "not found"


class ReviewClosed(ValueError):
    """The review was resolved already (API: 409)."""


# --------------------------------------------------------------------------------------------
# Views: plain frozen values, safe to hand out of a transaction


_RECEIPT_STATUS = {"open": "open", "charging": "open", "declined": "open", "review": "review", "charged": "charged"}


@dataclass(frozen=True, slots=True)
class SessionView:
    """A session and its live basket. `status`: open (inside), review, charging, charged, declined
    (left, payment declined: open for a person to settle). `version` rises with every basket event."""

    session: str
    customer: str
    party: int
    gate: str
    entered_t: float
    exited_t: float | None
    status: str
    lines: tuple[Line, ...]
    total_cents: int
    version: int
    currency: str
    tracks: int  # people bound to it so far
    open_reviews: int  # open reviews believed to concern it
    # The camera outages it was inside during (outages.session_flags): camera, kind, window, affects, review.
    camera_outages: tuple[dict[str, Any], ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"session": self.session, "customer": self.customer, "party": self.party, "gate": self.gate,
                "entered_t": self.entered_t, "exited_t": self.exited_t, "status": self.status,
                "lines": [line.to_json() for line in self.lines], "total_cents": self.total_cents,
                "version": self.version, "currency": self.currency, "tracks": self.tracks,
                "open_reviews": self.open_reviews, "camera_outages": [dict(f) for f in self.camera_outages]}


@dataclass(frozen=True, slots=True)
class ChargeView:
    id: str
    kind: str  # exit | adjust
    amount_cents: int
    state: str  # pending | captured | declined
    decline_reason: str | None
    t: float


@dataclass(frozen=True, slots=True)
class RefundView:
    id: str
    charge: str
    amount_cents: int
    state: str  # pending | done
    review: str | None
    t: float


@dataclass(frozen=True, slots=True)
class ReceiptView:
    """A session's receipt. `status` (SPEC section 5): charged, review (left, an uncertain event
    waits for a person), open (inside; or left with the payment declined or still under way).
    `lines` are the basket as settled (a dispute accepted removes its line; the refund is listed).
    `charge` is the exit charge's id once captured (None while not charged, and for a basket of 0)."""

    customer: str
    session: str
    entered_t: float
    exited_t: float | None
    lines: tuple[Line, ...]
    total_cents: int
    status: str
    charge: str | None
    charged_cents: int
    refunded_cents: int
    currency: str
    charges: tuple[ChargeView, ...]
    refunds: tuple[RefundView, ...]
    camera_outages: tuple[dict[str, Any], ...] = ()  # as SessionView's; not in SPEC section 5's receipts.json

    def to_spec(self, start: float = 0.0) -> dict[str, Any]:
        """The receipts.json object of SPEC section 5, times in seconds since `start` (a replay's
        frame 0, Unix seconds) rounded to the millisecond."""
        return {"customer": self.customer, "session": self.session,
                "entered_t": round(self.entered_t - start, 3),
                "exited_t": None if self.exited_t is None else round(self.exited_t - start, 3),
                "lines": [line.to_json() for line in self.lines], "total_cents": self.total_cents,
                "status": self.status}

    def to_json(self) -> dict[str, Any]:
        """The exit API's receipt: SPEC section 5's fields (Unix seconds) with the charge's id, the
        currency, what was charged and refunded, and the camera outages the visit was flagged by."""
        return {**self.to_spec(0.0), "charge": self.charge, "currency": self.currency,
                "charged_cents": self.charged_cents, "refunded_cents": self.refunded_cents,
                "refunds": [{"id": r.id, "amount_cents": r.amount_cents, "state": r.state} for r in self.refunds],
                "camera_outages": [dict(f) for f in self.camera_outages]}


@dataclass(frozen=True, slots=True)
class EntryView:
    """A presented code: admitted (with its session) or refused with `reason`."""

    t: float
    gate: str
    source: str  # api | camera
    customer: str | None
    admitted: bool
    reason: str | None
    detail: str
    session: str | None

    def to_json(self, start: float = 0.0) -> dict[str, Any]:
        return {"t": round(self.t - start, 3), "gate": self.gate, "source": self.source,
                "customer": self.customer, "admitted": self.admitted, "reason": self.reason,
                "detail": self.detail, "session": self.session}


@dataclass(frozen=True, slots=True)
class SessionEventView:
    """A basket event of one session (a shopper's timeline). `source`: camera, review (a person's
    decision put it there; `review` names it), dispute (an accepted dispute took it off), receipt
    (the lines a receipt keeps once retention removed the events behind them)."""

    t: float
    action: str
    gtin: str
    qty: int
    unit_cents: int
    slot: str | None
    camera: str | None
    confidence: float | None
    source: str
    review: str | None


@dataclass(frozen=True, slots=True)
class _Work:
    """Provider calls to make once the transaction that decided them has committed."""

    charges: tuple[str, ...] = ()
    refunds: tuple[str, ...] = ()

    def __add__(self, other: _Work) -> _Work:
        return _Work(self.charges + other.charges, self.refunds + other.refunds)


_NOTHING = _Work()
_T = TypeVar("_T")


def _finite(t: float) -> float:
    if isinstance(t, bool) or not isinstance(t, int | float) or not math.isfinite(t):
        raise ValueError(f"t: expected finite Unix seconds on the store clock, got {t!r}")
    return float(t)


# --------------------------------------------------------------------------------------------


class StoreRuntime:
    """Sessions, baskets, reviews and charges of one store (see the module's docstring)."""

    def __init__(self, db: Database, store: Store, *, provider: PaymentProvider | None = None,
                 clock: Callable[[], float] = time.time, settings: RuntimeSettings | None = None) -> None:
        self.db = db
        self.store = store
        self.clock = clock
        self.provider: PaymentProvider = provider if provider is not None else LocalProvider(db, clock=clock)
        self.settings = settings or RuntimeSettings()
        self.clips: ClipStore | None = None  # the review clips' folder (store_runtime.clips), where served
        self._gates = {name: gate.kind for name, gate in store.config.gates.items()}
        self.changes = ChangeFeed.of(db.engine)  # rises with every write: live pages follow it

    # ------------------------------------------------------------------ entries

    def enter(self, gate: str, code: str, *, t: float | None = None) -> SessionView:
        """A gate's scanner read `code` (POST /v1/entries). Returns the session opened; raises
        EntryRefused (recorded first) or UnknownGate."""
        self._gate(gate, "entry")
        now = self._now(t)
        with self.db.transaction() as tx:
            again = self._same_presentation(tx, gate, code, now)
            if again is not None:
                return self._session_view(tx, again)
            entry = check_entry(tx, self.store.config, gate=gate, code=code, t=now, source="api")
            if entry.session is not None:
                self._adopt_tracks(tx, entry.session, now)
                view = self._session_view(tx, entry.session)
        if entry.session is None:
            raise entry.refused  # type: ignore[misc]
        return view

    def _same_presentation(self, tx: Session, gate: str, code: str, t: float) -> SessionRow | None:
        code_hash = digest(code)
        row = tx.scalars(select(EntryRow).where(
            EntryRow.gate == gate, EntryRow.code_sha256 == code_hash, EntryRow.admitted.is_(True),
            EntryRow.t >= t - self.settings.same_presentation_s, EntryRow.t <= t)).first()
        return None if row is None or row.session_id is None else tx.get(SessionRow, row.session_id)

    def _adopt_tracks(self, tx: Session, session: SessionRow, now: float) -> None:
        for track in adopt_early_tracks(tx, session, window_s=self.settings.bind_window_s):
            self._settle_track_reviews(tx, track, now, note="the code's read reached the runtime after the person")

    # ------------------------------------------------------------------ node events

    def apply(self, event: EntryRead | TrackZone | ShelfAction | CameraStatus) -> None:
        """Apply one node event, once: a repeated `event.id` changes nothing. One transaction; a
        camera exit's provider calls follow its commit."""
        now = self.clock()
        problem = event_problem(event, self.store.config, now=now, max_lead_s=self.settings.max_event_lead_s)
        if problem is not None:
            raise InvalidEvent(f"event {event.id}: {problem}")
        if isinstance(event, CameraStatus) and event.status == "ok":
            # A heartbeat only moves its camera's newest status forward, which a repeat cannot move
            # again: it is not kept among the applied events (a camera sends thousands a day).
            with self.db.transaction() as tx:
                camera_outages.apply_status(tx, event, now)
            return
        try:
            with self.db.transaction() as tx:
                applied = tx.get(AppliedEventRow, event.id)
                if applied is not None and applied.camera != event.camera:
                    # Ids are one namespace for every camera, and another camera's node used this one
                    # first (a forger who guessed it, or a collision). This camera's event is applied
                    # all the same, under an id scoped to its camera: the same one every time, so that
                    # its resends are still recognised.
                    event = event.model_copy(update={"id": event_id(event.camera, "scoped", event.id)})
                    applied = tx.get(AppliedEventRow, event.id)
                if applied is not None:
                    if (applied.kind, applied.camera, applied.t) != (event.kind, event.camera, event.t):
                        raise InvalidEvent(f"event {event.id}: this id was applied before for a {applied.kind} "
                                           f"event of camera {applied.camera!r} at t={applied.t!r}; this one is "
                                           f"a {event.kind} of {event.camera!r} at t={event.t!r}")
                    return
                tx.add(AppliedEventRow(id=event.id, kind=event.kind, camera=event.camera, t=event.t, applied_t=now))
                if isinstance(event, CameraStatus):
                    work = self._on_camera(tx, event, now)
                elif not isinstance(event, EntryRead) and self._discarded(tx, event, now):
                    work = _NOTHING
                elif isinstance(event, EntryRead):
                    work = self._on_entry_read(tx, event)
                elif isinstance(event, TrackZone):
                    work = self._on_track_zone(tx, event, now)
                else:
                    work = self._on_shelf(tx, event, now)
        except IntegrityError:
            # The same event applied at this instant by another caller (a redelivery racing the
            # first delivery); if it was only that, there is nothing left to do.
            with self.db.transaction() as tx:
                if tx.get(AppliedEventRow, event.id) is not None:
                    return
            raise
        self._run(work)

    @staticmethod
    def _discarded(tx: Session, e: TrackZone | ShelfAction, now: float) -> bool:
        """Whether `e` is of a track whose customer's tracking stopped: then it is only noted. A
        track coming in or appearing is a new person (a restarted tracker re-uses ids); one leaving
        is the stopped person gone, and its note with it."""
        if e.track < 0:
            return False
        stopped = tx.get(StoppedTrackRow, (e.camera, e.track))
        if stopped is None:
            return False
        if isinstance(e, TrackZone) and e.kind != "exited":
            tx.delete(stopped)
            return False
        track = tx.scalars(select(TrackRow).where(TrackRow.camera == e.camera, TrackRow.track == e.track)).first()
        tx.add(DiscardedEventRow(id=e.id, kind=e.kind, camera=e.camera, t=e.t, reason=stopped.reason,
                                 session_id=track.session_id if track is not None else None, discarded_t=now))
        if isinstance(e, TrackZone):
            tx.delete(stopped)
        return True

    def _on_camera(self, tx: Session, e: CameraStatus, now: float) -> _Work:
        """A camera's outage reported (begun, worsened or ended): recorded, and the sessions inside
        during it that it holds get a camera_outage review (store_runtime/outages.py)."""
        outage = camera_outages.apply_status(tx, e, now)
        if outage is not None:
            camera_outages.hold_for_outage(tx, self.store.config, outage, now, self.settings.outage_hold_s)
        return _NOTHING

    def _on_entry_read(self, tx: Session, e: EntryRead) -> _Work:
        if self._gates.get(e.gate) != "entry" or self._same_presentation(tx, e.gate, e.code, e.t) is not None:
            return _NOTHING
        # The node's verdict (e.admitted, e.refusal) is not trusted: the code is checked again here.
        entry = check_entry(tx, self.store.config, gate=e.gate, code=e.code, t=e.t, source="camera", event_id=e.id)
        if entry.session is not None:
            self._adopt_tracks(tx, entry.session, e.t)
        return _NOTHING

    def _on_track_zone(self, tx: Session, e: TrackZone, now: float) -> _Work:
        kind = self._gates.get(e.zone)
        if e.kind == "entered" and kind == "entry":
            track = bind_track(tx, camera=e.camera, track=e.track, zone=e.zone, t=e.t,
                               window_s=self.settings.bind_window_s)
            if track.session_id is not None:
                return self._settle_track_reviews(tx, track, now, note="the person's track was bound")
            open_review(tx, kind="anonymous", id=review_id("anonymous", e.id), t=e.t, now=now,
                        reasons=self._anonymous_reasons(tx, e), camera=e.camera, track=e.track,
                        candidates=[s.id for s in sessions_inside(tx, e.t)])
            return _NOTHING
        if e.kind in ("lost", "appeared"):
            if e.kind == "lost":
                track_lost(tx, camera=e.camera, track=e.track, t=e.t)
            elif track_appeared(tx, camera=e.camera, track=e.track, t=e.t).session_id is not None:
                return _NOTHING  # a bound person seen again under their own id
            found = pair_lost_and_found(tx, camera=e.camera)
            if found is None:
                return _NOTHING
            return self._settle_track_reviews(tx, found, now, note="the person the tracker lost, found again")
        if e.kind == "exited" and kind == "exit":
            track = track_left(tx, camera=e.camera, track=e.track, zone=e.zone, t=e.t)
            if track is None or track.session_id is None:
                return _NOTHING
            session = self._locked(tx, track.session_id)
            if session.state != "open" or not everyone_left(tx, session.id):
                return _NOTHING
            body = {"gate": e.zone, "session": session.id, "event": e.id}
            _, _, work = self._exit(tx, session, gate=e.zone, key=CAMERA_KEY_PREFIX + e.id, body=body, exit_t=e.t,
                                    now=now)
            return work
        return _NOTHING

    def _anonymous_reasons(self, tx: Session, e: TrackZone) -> list[Reason]:
        window = self.settings.bind_window_s
        reasons: list[Reason] = [("anonymous", f"a person came in through {e.zone} with no admitted code waiting "
                                               f"(within {window:g} s)")]
        refused = tx.scalars(select(EntryRow).where(
            EntryRow.gate == e.zone, EntryRow.admitted.is_(False), EntryRow.t <= e.t, EntryRow.t >= e.t - window)
            .order_by(EntryRow.t.desc())).first()
        if refused is not None:
            who = f" of customer {refused.customer}" if refused.customer else ""
            reasons.append(("after_refusal", f"a code{who} was refused there {e.t - refused.t:.1f} s before "
                                             f"({refused.reason}: {refused.detail})"))
        return reasons

    def _on_shelf(self, tx: Session, e: ShelfAction, now: float) -> _Work:
        reasons = shelf_doubts(e, self.store.catalog, min_confidence=self.settings.min_confidence,
                               min_track_confidence=self.settings.min_track_confidence)
        inside = [s.id for s in sessions_inside(tx, e.t)]
        track = None
        if e.track >= 0:
            track = tx.scalars(select(TrackRow).where(TrackRow.camera == e.camera, TrackRow.track == e.track)).first()
        if e.track < 0:
            reasons.append(("unknown_track", "nobody could be told who did it (track -1)"))
            believed = self._likeliest(tx, e, inside)
        elif track is None:
            reasons.append(("unbound_track", f"track {e.track} of {e.camera} was not seen coming in through an "
                                             "entry zone (yet)"))
            believed = self._likeliest(tx, e, inside)
        elif track.session_id is None:
            reasons.append(("anonymous", "an anonymous person (came in with no admitted code)"))
            believed = None
        else:
            believed = track.session_id
            if self._party_share(tx, e, believed) >= self.settings.min_track_confidence:
                reasons = [r for r in reasons if r[0] != "low_track_confidence"]
        session = self._locked(tx, believed) if believed is not None else None
        if session is not None and not reasons:
            reasons += self._basket_doubts(tx, session, e)
        if reasons:
            open_review(tx, kind="shelf", id=review_id("shelf", e.id), t=e.t, now=now, reasons=reasons,
                        session=believed, candidates=inside, event=e)
            return _NOTHING
        assert session is not None
        add_basket_event(tx, session, id=e.id, t=e.t, action=e.action, gtin=e.gtin, qty=e.qty,
                         unit_cents=self.store.catalog.price(e.gtin), now=now, source="camera", slot=e.slot,
                         camera=e.camera, confidence=e.confidence)
        if e.action == "pick":
            self._settle_waiting_puts(tx, session, e.gtin, now)
        return _NOTHING

    def _basket_doubts(self, tx: Session, session: SessionRow, e: ShelfAction | _Move) -> list[Reason]:
        """Why an event of `session` cannot go into its basket as it stands; empty when it can."""
        if session.state != "open" or (session.exited_t is not None and e.t > session.exited_t):
            return [("after_exit", f"the session had already left ({session.state}) when this reached the runtime")]
        if e.action == "put" and overdraws(basket_rows(tx, session.id), _Move(e.id, e.t, e.action, e.gtin, e.qty)):
            return [("put_overdraw", f"a put of {e.qty} x {e.gtin}, more than the basket held at that moment")]
        return []

    @staticmethod
    def _party_share(tx: Session, e: ShelfAction, session: str) -> float:
        """The share of the event's votes that went to persons of `session`: its track's and its rivals'
        bound to the same session (a parent and child at one slot split the reach, not the doubt)."""
        rivals = {track: share for track, share in e.rivals if track != e.track}  # the node's word: see below
        if not rivals:
            return e.track_confidence
        # Only persons the store itself bound to the same session count, and never past the whole.
        bound = tx.scalars(select(TrackRow.track).where(
            TrackRow.camera == e.camera, TrackRow.track.in_(list(rivals)), TrackRow.session_id == session)).all()
        return min(1.0, e.track_confidence + sum(rivals[track] for track in bound))

    def _likeliest(self, tx: Session, e: ShelfAction, inside: Sequence[str]) -> str | None:
        """Whom an event nobody could be told for most likely belongs to: the only shopper inside,
        else the one whose basket has an event at the same slot nearest in time."""
        if len(inside) == 1:
            return inside[0]
        window = self.settings.belief_window_s
        near = tx.scalars(select(BasketEventRow).where(
            BasketEventRow.session_id.in_(inside), BasketEventRow.camera == e.camera, BasketEventRow.slot == e.slot,
            BasketEventRow.t >= e.t - window, BasketEventRow.t <= e.t + window)).all()
        if not near:
            return None
        return min(near, key=lambda row: (abs(row.t - e.t), row.id)).session_id

    # ------------------------------------------------------------------ reviews settled by the system

    def _settle_track_reviews(self, tx: Session, track: TrackRow, now: float, *, note: str) -> _Work:
        """`track` was just bound: its anonymous alert is closed and its shelf events that waited
        only for that binding go to the basket (or stay in review for a reason of their own)."""
        assert track.session_id is not None
        session = self._locked(tx, track.session_id)
        pending = tx.scalars(select(ReviewRow).where(
            ReviewRow.camera == track.camera, ReviewRow.track == track.track, ReviewRow.state == "open",
            ReviewRow.t >= track.entered_t).order_by(ReviewRow.t, ReviewRow.id)).all()
        for review in pending:
            codes = review_codes(review)
            if review.kind == "anonymous":
                self._decide(review, "accepted", by="system", note=note, now=now, applied=session.id)
            elif review.kind == "shelf" and codes <= ONLY_UNBOUND:
                doubts = self._basket_doubts(tx, session, _event_of(review))
                if doubts:  # still uncertain, for a reason of its own: now it is this session's to hold
                    review.session_id, review.reasons = session.id, [list(r) for r in doubts]
                else:
                    self._accept_into(tx, review, session, by="system", note=note, now=now)
        return self._settle(tx, session, now) if session.state != "open" else _NOTHING

    def _settle_waiting_puts(self, tx: Session, session: SessionRow, gtin: str, now: float) -> None:
        """A pick reached us after a put of the same product it makes possible: apply the put."""
        waiting = tx.scalars(select(ReviewRow).where(
            ReviewRow.session_id == session.id, ReviewRow.state == "open", ReviewRow.kind == "shelf",
            ReviewRow.gtin == gtin, ReviewRow.action == "put").order_by(ReviewRow.t, ReviewRow.id)).all()
        for review in waiting:
            if review_codes(review) == {"put_overdraw"} and not overdraws(basket_rows(tx, session.id),
                                                                           _event_of(review)):
                self._accept_into(tx, review, session, by="system", note="the pick before it arrived", now=now)

    @staticmethod
    def _decide(review: ReviewRow, state: str, *, by: str, note: str, now: float, applied: str | None = None) -> None:
        review.state, review.decided_by, review.decided_t = state, by, now
        review.note, review.applied_session_id = note[:500], applied

    def _accept_into(self, tx: Session, review: ReviewRow, session: SessionRow, *, by: str, note: str, now: float,
                     gtin: str | None = None, qty: int | None = None) -> None:
        gtin = gtin or review.gtin
        qty = qty or review.qty
        if gtin not in self.store.catalog:
            raise ValueError(f"review {review.id}: product {gtin} is not in the catalog; pass gtin= to correct it")
        assert review.action is not None and qty is not None
        add_basket_event(tx, session, id="b_" + review.id, t=review.t, action=review.action, gtin=gtin, qty=qty,
                         unit_cents=self.store.catalog.price(gtin), now=now, source="review", slot=review.slot,
                         camera=review.camera, confidence=review.confidence, review_id=review.id)
        self._decide(review, "accepted", by=by, note=note, now=now, applied=session.id)

    # ------------------------------------------------------------------ people resolve reviews

    def reviews(self, open_only: bool = True, limit: int | None = None) -> list[ReviewView]:
        """The review queue in time order (only the open items, unless `open_only` is False; the
        oldest `limit` of them, when given)."""
        with self.db.transaction() as tx:
            query = select(ReviewRow).order_by(ReviewRow.t, ReviewRow.id)
            if open_only:
                query = query.where(ReviewRow.state == "open")
            if limit is not None:
                query = query.limit(limit)
            return [review_view(tx, row, self.clips) for row in tx.scalars(query)]

    def resolve_review(self, review_id: str, decision: Literal["accept", "reject"], *, by: str, note: str = "",
                       session: str | None = None, gtin: str | None = None, qty: int | None = None,
                       t: float | None = None) -> ReviewView:
        """A person's decision on a review.

        - shelf, accept: the event goes into `session`'s basket (default: the believed session),
          with `gtin`/`qty` corrected if given; reject: it goes nowhere.
        - anonymous, accept with `session`: the person was one of that session's party (their
          held events follow); accept without, or reject: the alert is acknowledged.
        - dispute, accept: the line is taken off the receipt and refunded; reject: nothing.
        - camera_outage, accept: the basket stands as the cameras saw it, or with `gtin` and `qty`
          that product's quantity is set to `qty` (0 takes it off: a pick or put of the difference
          is added); reject: the outage did not concern this visit. Either way the hold ends.
        A session whose charge the review held is charged once it holds no more; a charged basket
        that changed is settled (charged or refunded the difference). The decision's audit row (who,
        what, the charges and refunds it ordered; `privacy.append_audit`) commits with it.
        Raises NotFound, ReviewClosed (decided already), ValueError (a decision that cannot apply).
        """
        if decision not in ("accept", "reject"):
            raise ValueError(f"decision: expected accept or reject, got {decision!r}")
        if not isinstance(by, str) or not by:
            raise ValueError("by: expected the name of the person deciding")
        now = self._now(t)
        with self.db.transaction() as tx:
            review = tx.get(ReviewRow, review_id, with_for_update=True)
            if review is None:
                raise NotFound(f"no review {review_id!r}")
            if review.state != "open":
                raise ReviewClosed(f"review {review_id} was {review.state} by {review.decided_by}")
            touched = {review.session_id} - {None}
            work = _NOTHING
            if qty is not None and qty < 1 and review.kind != camera_outages.OUTAGE_REVIEW:
                raise ValueError(f"qty: expected at least 1 for a {review.kind} review, got {qty}")
            if decision == "reject":
                self._decide(review, "rejected", by=by, note=note, now=now)
            elif review.kind == "shelf":
                if session is None and review.session_id is None:
                    raise ValueError(f"review {review_id}: nobody is believed to have done it; pass session=")
                target = self._locked(tx, session or review.session_id or "")
                self._accept_into(tx, review, target, by=by, note=note, now=now, gtin=gtin, qty=qty)
                touched.add(target.id)
            elif review.kind == "anonymous":
                work += self._accept_anonymous(tx, review, session, by=by, note=note, now=now)
            elif review.kind == camera_outages.OUTAGE_REVIEW:
                self._accept_outage(tx, review, session, by=by, note=note, now=now, gtin=gtin, qty=qty)
            else:
                self._accept_dispute(tx, review, by=by, note=note, now=now)
            for sid in sorted(touched):  # type: ignore[type-var]
                work += self._settle(tx, self._locked(tx, sid), now, review=review.id)
            # A clip nobody consented to is deleted once the review is decided (store_runtime/clips.py).
            drop = self.clips is not None and bool(review.event_id) and clip_unneeded(tx, review.event_id)
            view = review_view(tx, review, self.clips)
            # In the decision's own transaction: a decision is never without its audit row.
            append_audit(tx, t=now, actor=by, op="review_decision", customer=view.customer, detail={
                "review": view.id, "kind": view.kind, "decision": decision, "session": view.applied_session,
                "gtin": gtin, "qty": qty, "note": note[:500], **self._ordered(tx, work)})
        if drop:
            self.clips.delete([review.event_id])
        self._run(work)
        return view

    @staticmethod
    def _ordered(tx: Session, work: _Work) -> dict[str, list[dict[str, Any]]]:
        """The charges and refunds a decision ordered, for its audit row (their outcome, which the
        provider gives after the commit, is on the receipt)."""
        charges = [tx.get(ChargeRow, c) for c in work.charges]
        refunds = [tx.get(RefundRow, r) for r in work.refunds]
        return {"charges": [{"id": c.id, "kind": c.kind, "amount_cents": c.amount_cents} for c in charges if c],
                "refunds": [{"id": r.id, "charge": r.charge_id, "amount_cents": r.amount_cents} for r in refunds if r]}

    def _accept_dispute(self, tx: Session, review: ReviewRow, *, by: str, note: str, now: float) -> None:
        """The disputed quantity comes off the basket (the settlement then refunds it)."""
        target = self._locked(tx, review.session_id or "")
        gtin, qty = review.gtin or "", review.qty or 0
        # The correction comes after everything in the basket whatever the clocks say (a tie in
        # time would leave the order to the ids).
        last = max((row.t for row in basket_rows(tx, target.id)), default=now)
        add_basket_event(tx, target, id="d_" + review.id, t=max(now, last + 0.001), action="put", gtin=gtin, qty=qty,
                         unit_cents=self._line_price(tx, target, gtin), now=now, source="dispute",
                         review_id=review.id)
        self._decide(review, "accepted", by=by, note=note, now=now, applied=target.id)

    def _accept_outage(self, tx: Session, review: ReviewRow, session: str | None, *, by: str, note: str,
                       now: float, gtin: str | None, qty: int | None) -> None:
        """The basket as seen stands, or the person sets one product's quantity (the settlement that
        follows charges or refunds the difference on a charged receipt)."""
        if session is not None and session != review.session_id:
            raise ValueError(f"review {review.id} concerns session {review.session_id}; it cannot apply to {session}")
        if (gtin is None) != (qty is None):
            raise ValueError(f"review {review.id}: give both gtin and qty to set a product's quantity, or neither")
        if gtin is not None and qty is not None:
            if gtin not in self.store.catalog:
                raise ValueError(f"review {review.id}: product {gtin} is not in the catalog")
            target = self._locked(tx, review.session_id or "")
            rows = basket_rows(tx, target.id)
            held = {line.gtin: line.qty for line in fold(rows)}.get(gtin, 0)
            if qty != held:
                # After everything in the basket whatever the clocks say, as a dispute's correction.
                last = max((row.t for row in rows), default=now)
                add_basket_event(tx, target, id="b_" + review.id, t=max(now, last + 0.001),
                                 action="pick" if qty > held else "put", gtin=gtin, qty=abs(qty - held),
                                 unit_cents=self._line_price(tx, target, gtin), now=now, source="review",
                                 camera=review.camera, review_id=review.id)
        self._decide(review, "accepted", by=by, note=note, now=now, applied=review.session_id)

    def _accept_anonymous(self, tx: Session, review: ReviewRow, session: str | None, *, by: str, note: str,
                          now: float) -> _Work:
        if session is None:
            self._decide(review, "accepted", by=by, note=note or "acknowledged", now=now)
            return _NOTHING
        target = self._locked(tx, session)
        track = tx.scalars(select(TrackRow).where(TrackRow.camera == review.camera,
                                                  TrackRow.track == review.track)).first()
        if track is None:
            raise ValueError(f"review {review.id}: the anonymous track is not known any more")
        track.session_id = target.id
        self._decide(review, "accepted", by=by, note=note, now=now, applied=target.id)
        return self._settle_track_reviews(tx, track, now, note=f"{by} bound the person to {target.id}")

    def dispute(self, session_id: str, gtin: str, qty: int, reason: str, *, by: str,
                t: float | None = None) -> ReviewView:
        """A customer contests `qty` of `gtin` on a charged receipt: a review; if a person accepts
        it, the line is taken off and refunded. `by`: the person who took it down (the audit row,
        written in the same transaction). Raises NotFound, ValueError."""
        if isinstance(qty, bool) or not isinstance(qty, int) or qty < 1:
            raise ValueError(f"qty: expected a whole number of at least 1, got {qty!r}")
        if not isinstance(by, str) or not by:
            raise ValueError("by: expected the name of the person taking the dispute down")
        now = self._now(t)
        with self.db.transaction() as tx:
            session = self._locked(tx, session_id)
            if session.state != "charged":
                raise ValueError(f"session {session_id} is {session.state}: only a charged receipt can be disputed")
            held = {line.gtin: line.qty for line in fold(basket_rows(tx, session.id))}.get(gtin, 0)
            if qty > held:
                raise ValueError(f"the receipt of {session_id} has {held} of {gtin}, {qty} disputed")
            count = tx.scalar(select(func.count()).select_from(ReviewRow).where(
                ReviewRow.kind == "dispute", ReviewRow.session_id == session.id))
            row = open_review(tx, kind="dispute", id=review_id("dispute", session.id, count), t=now, now=now,
                              reasons=[("dispute", str(reason)[:300] or "no reason given")], session=session.id,
                              gtin=gtin, qty=qty, action="put")
            view = review_view(tx, row)
            append_audit(tx, t=now, actor=by, op="dispute_opened", customer=view.customer,
                         detail={"review": view.id, "session": session.id, "gtin": gtin, "qty": qty})
            return view

    # ------------------------------------------------------------------ exits and charges

    def exit_request(self, gate: str, session: str, *, key: str, body: dict[str, Any],
                     t: float | None = None) -> tuple[int, dict[str, Any]]:
        """POST /v1/exits: close `session` and charge its basket, idempotently by `key`.

        `body` is the request's JSON as received (its canonical hash is what a key is bound to).
        Returns (status, JSON body): 200 the receipt (`ReceiptView.to_json`, "charge" its id);
        402 payment declined (the session stays open for a person, a new key may retry); 404 no
        such session; 409 the key's first request is still in flight; 422 the key was used with
        another body, or `gate` is no exit gate. 200 and 402 are stored and replayed for
        `idempotency_retention_s`; 404 and 422 change nothing and are not stored. Raises ValueError
        for a key that is empty, longer than 255 characters or in the runtime's own namespace
        (`camera:`: a gate holding a camera exit's key would keep that exit from being charged),
        and lets a provider's error out (the key is released at once for a retry).
        """
        if isinstance(key, str) and key.startswith(CAMERA_KEY_PREFIX):
            raise ValueError(f"Idempotency-Key: keys starting with {CAMERA_KEY_PREFIX!r} are the runtime's own")
        now = self._now(t)
        body_hash = request_hash(body)
        with self.db.transaction() as tx:
            purge_keys(tx, now=now, retention_s=self.settings.idempotency_retention_s)
            claim = claim_key(tx, key, body_hash, now=now, lease_s=self.settings.in_flight_lease_s)
            if claim.outcome == "replay":
                assert claim.row is not None and claim.row.status is not None and claim.row.response is not None
                return claim.row.status, json.loads(claim.row.response)
            if claim.outcome == "mismatch":
                return 422, {"error": "key_reused", "message": "this Idempotency-Key was used with a different body"}
            if claim.outcome == "in_flight":
                return 409, {"error": "in_flight", "message": "a request with this Idempotency-Key is in flight"}
            assert claim.row is not None
            if claim.row.charge_id is not None:  # taken over from a request that died mid-charge
                work = _Work(charges=(claim.row.charge_id,))
                status, response = 0, {}
            else:
                refusal = self._exit_refusal(tx, gate, session)
                if refusal is not None:
                    tx.delete(claim.row)
                    return refusal
                locked = self._locked(tx, session)
                status, response, work = self._exit(tx, locked, gate=gate, key=key, body=body, exit_t=now, now=now,
                                                    row=claim.row)
        if not work.charges:
            return status, response
        return self._run(work, key=key)

    def _exit_refusal(self, tx: Session, gate: str, session: str) -> tuple[int, dict[str, Any]] | None:
        try:
            self._gate(gate, "exit")
        except UnknownGate as e:
            return 422, {"error": "not_an_exit_gate", "message": str(e)}
        if tx.get(SessionRow, session) is None:
            return 404, {"error": "unknown_session", "message": f"no session {session!r}"}
        return None

    def _exit(self, tx: Session, session: SessionRow, *, gate: str, key: str, body: dict[str, Any], exit_t: float,
              now: float, row: IdempotencyRow | None = None) -> tuple[int, dict[str, Any], _Work]:
        """The one exit path: claim (if not claimed yet), close, and decide the charge, all in `tx`."""
        if row is None:
            claim = claim_key(tx, key, request_hash(body), now=now, lease_s=self.settings.in_flight_lease_s)
            if not claim.ours:
                return 409, {}, _NOTHING  # a camera exit's key is unique to its event: never in practice
            row = claim.row
        assert row is not None
        row.session_id = session.id
        if session.state == "open":
            session.exited_t, session.exit_gate = exit_t, gate
        if session.state in ("open", "declined"):
            work = self._charge_or_hold(tx, session, now)
        elif session.state == "charging":  # an earlier exit's charge is under way: finish that one
            work = _Work(charges=tuple(c.id for c in self._charges(tx, session.id) if c.state == "pending"))
        else:
            work = _NOTHING
        if work.charges:
            row.charge_id = work.charges[-1]
            return 0, {}, work
        status, response = 200, self._receipt_view(tx, session).to_json()
        finish_key(row, status, response)
        return status, response, _NOTHING

    def _blocking_reviews(self, tx: Session, session: str) -> int:
        return tx.scalar(select(func.count()).select_from(ReviewRow).where(
            ReviewRow.session_id == session, ReviewRow.state == "open", ReviewRow.kind != "dispute")) or 0

    def _charge_or_hold(self, tx: Session, session: SessionRow, now: float) -> _Work:
        """A session that left: held for review, or its basket charged (a pending charge row)."""
        camera_outages.hold_session(tx, self.store.config, session, now, self.settings.outage_hold_s)
        if self._blocking_reviews(tx, session.id):
            session.state = "review"
            return _NOTHING
        total = sum(line.cents for line in fold(basket_rows(tx, session.id)))
        if total == 0:
            session.state = "charged"  # nothing to take: no charge at all
            return _NOTHING
        session.state = "charging"
        return _Work(charges=(self._new_charge(tx, session, "exit", total, now).id,))

    def _new_charge(self, tx: Session, session: SessionRow, kind: str, amount: int, now: float) -> ChargeRow:
        attempt = (tx.scalar(select(func.max(ChargeRow.attempt)).where(ChargeRow.session_id == session.id)) or 0) + 1
        charge = ChargeRow(id="ch_" + digest(session.id, attempt)[:20], session_id=session.id, attempt=attempt,
                           kind=kind, amount_cents=amount, currency=self.store.config.currency, state="pending",
                           created_t=now)
        tx.add(charge)
        tx.flush()
        return charge

    def _settle(self, tx: Session, session: SessionRow, now: float, review: str | None = None) -> _Work:
        """After a review or a dispute changed things: charge a session the review held, or settle
        the difference between a charged basket and the money taken."""
        if session.state == "review":
            return self._charge_or_hold(tx, session, now)
        if session.state != "charged":
            return _NOTHING
        total = sum(line.cents for line in fold(basket_rows(tx, session.id)))
        charges = self._charges(tx, session.id)
        refunds = self._refunds(tx, session.id)
        taken = sum(c.amount_cents for c in charges if c.state in ("captured", "pending"))
        given = sum(r.amount_cents for r in refunds)
        if total > taken - given:
            return _Work(charges=(self._new_charge(tx, session, "adjust", total - (taken - given), now).id,))
        owed, made = (taken - given) - total, []
        for charge in sorted((c for c in charges if c.state == "captured"), key=lambda c: c.attempt, reverse=True):
            room = charge.amount_cents - sum(r.amount_cents for r in refunds if r.charge_id == charge.id)
            amount = min(owed, room)
            if amount <= 0:
                continue
            refund = RefundRow(id="rf_" + digest(session.id, len(refunds) + len(made))[:20], session_id=session.id,
                               charge_id=charge.id, amount_cents=amount, state="pending", created_t=now,
                               review_id=review)
            tx.add(refund)
            made.append(refund.id)
            owed -= amount
        tx.flush()
        return _Work(refunds=tuple(made))

    def _run(self, work: _Work, key: str | None = None) -> tuple[int, dict[str, Any]]:
        """Make the provider calls `work` lists (after the commit that decided them); the answer of
        the last charge (for the exit request holding `key`)."""
        answer: tuple[int, dict[str, Any]] = (0, {})
        for charge_id in work.charges:
            answer = self._finish_charge(charge_id, key)
        for refund_id in work.refunds:
            self._finish_refund(refund_id)
        return answer

    def _finish_charge(self, charge_id: str, key: str | None = None) -> tuple[int, dict[str, Any]]:
        with self.db.transaction() as tx:
            charge = tx.get(ChargeRow, charge_id)
            assert charge is not None
            customer = tx.get(SessionRow, charge.session_id).customer  # type: ignore[union-attr]
            pending = charge.state == "pending"
        outcome = None
        if pending:
            try:
                outcome = run_charge(self.provider, charge_id=charge.id, customer=customer,
                                     amount_cents=charge.amount_cents, currency=charge.currency)
            except Exception:
                if key is not None:
                    with self.db.transaction() as tx:
                        row = tx.get(IdempotencyRow, key)
                        if row is not None and row.state == "in_flight":
                            release_key(row)
                raise
        now = self.clock()
        with self.db.transaction() as tx:
            charge = tx.get(ChargeRow, charge_id, with_for_update=True, populate_existing=True)
            assert charge is not None
            session = self._locked(tx, charge.session_id)
            if charge.state == "pending" and outcome is not None:
                charge.state = "captured" if outcome.captured else "declined"
                charge.authorisation, charge.capture = outcome.authorisation, outcome.capture
                charge.decline_reason, charge.done_t = outcome.decline_reason, now
                if charge.kind == "exit" and session.state == "charging":
                    session.state = "charged" if outcome.captured else "declined"
            status, response = self._charge_answer(tx, charge, session)
            for row in tx.scalars(select(IdempotencyRow).where(IdempotencyRow.charge_id == charge.id,
                                                               IdempotencyRow.state == "in_flight")):
                finish_key(row, status, response)
        return status, response

    def _charge_answer(self, tx: Session, charge: ChargeRow, session: SessionRow) -> tuple[int, dict[str, Any]]:
        if charge.state == "declined":
            return 402, {"error": "payment_declined", "message": charge.decline_reason or "declined",
                         "session": session.id, "charge": charge.id}
        return 200, self._receipt_view(tx, session).to_json()

    def _finish_refund(self, refund_id: str) -> None:
        with self.db.transaction() as tx:
            refund = tx.get(RefundRow, refund_id)
            assert refund is not None
            if refund.state != "pending":
                return
            capture = tx.get(ChargeRow, refund.charge_id).capture  # type: ignore[union-attr]
        ref = run_refund(self.provider, refund_id=refund.id, capture=capture or "", amount_cents=refund.amount_cents)
        with self.db.transaction() as tx:
            refund = tx.get(RefundRow, refund_id, with_for_update=True)
            if refund is not None and refund.state == "pending":
                refund.state, refund.provider_ref, refund.done_t = "done", ref, self.clock()

    def recover(self) -> int:
        """Finish every charge and refund left pending by a crash (call at boot); how many."""
        with self.db.transaction() as tx:
            charges = tx.scalars(select(ChargeRow.id).where(ChargeRow.state == "pending")
                                 .order_by(ChargeRow.created_t, ChargeRow.id)).all()
            refunds = tx.scalars(select(RefundRow.id).where(RefundRow.state == "pending")
                                 .order_by(RefundRow.created_t, RefundRow.id)).all()
        self._run(_Work(tuple(charges), tuple(refunds)))
        return len(charges) + len(refunds)

    def finish(self, t: float) -> None:
        """The end of a replay at store time `t`: pending provider calls are finished and old keys
        purged; sessions still inside stay open (their receipts say so)."""
        t = _finite(t)
        self.recover()
        with self.db.transaction() as tx:
            purge_keys(tx, now=t, retention_s=self.settings.idempotency_retention_s)

    # ------------------------------------------------------------------ reading

    def session(self, session_id: str) -> SessionView | None:
        """The session and its live basket (GET /v1/sessions/{session}); None if unknown."""
        with self.db.transaction() as tx:
            row = tx.get(SessionRow, session_id)
            return None if row is None else self._session_view(tx, row)

    def receipt(self, session_id: str) -> ReceiptView | None:
        """The receipt after exit (GET /v1/receipts/{session}); None if unknown or still inside."""
        with self.db.transaction() as tx:
            row = tx.get(SessionRow, session_id)
            return None if row is None or row.exited_t is None else self._receipt_view(tx, row)

    def receipts(self) -> list[ReceiptView]:
        """One receipt per session, in entry order, including sessions still inside (`open`)."""
        with self.db.transaction() as tx:
            rows = tx.scalars(select(SessionRow).order_by(SessionRow.entered_t, SessionRow.id)).all()
            return [self._receipt_view(tx, row) for row in rows]

    def basket_events(self) -> list[BasketEventView]:
        """Every pick and put as the system finally sees it, in time order (SPEC section 5's
        events.jsonl): those in baskets, and those held in open reviews under the believed
        customer (None: nobody's). Events a person rejected, dispute corrections and the lines a
        receipt keeps once its tracking data is gone (privacy retention) are left out."""
        with self.db.transaction() as tx:
            customers = {sid: customer for sid, customer in tx.execute(select(SessionRow.id, SessionRow.customer))}
            views = [BasketEventView(r.t, customers.get(r.session_id), r.session_id, r.action, r.gtin, r.qty,
                                     r.slot, r.camera, r.confidence)
                     for r in tx.scalars(select(BasketEventRow).where(BasketEventRow.source.in_(("camera", "review"))))]
            held = tx.scalars(select(ReviewRow).where(ReviewRow.kind == "shelf", ReviewRow.state == "open"))
            views += [BasketEventView(r.t, customers.get(r.session_id) if r.session_id else None, r.session_id,
                                      r.action or "", r.gtin or "", r.qty or 0, r.slot, r.camera, r.confidence, r.id)
                      for r in held]
        return sorted(views, key=lambda v: (v.t, v.session or "", v.gtin, v.action, v.review or ""))

    def entries(self, limit: int | None = None) -> list[EntryView]:
        """Every presented code (or the newest `limit`), admitted or refused with its reason, in time order."""
        with self.db.transaction() as tx:
            query = select(EntryRow).order_by(EntryRow.t.desc(), EntryRow.id.desc())
            rows = tx.scalars(query if limit is None else query.limit(limit)).all()[::-1]
            return [EntryView(r.t, r.gate, r.source, r.customer, r.admitted, r.reason, r.detail, r.session_id)
                    for r in rows]

    def receipts_of(self, customer: str) -> list[ReceiptView]:
        """Every receipt of `customer`, in entry order, those still inside included (`open`)."""
        with self.db.transaction() as tx:
            rows = tx.scalars(select(SessionRow).where(SessionRow.customer == customer)
                              .order_by(SessionRow.entered_t, SessionRow.id)).all()
            return [self._receipt_view(tx, row) for row in rows]

    # Bounded reads for pages open all day (the operator console): a fixed number of rows however
    # long the store has been open, never the whole receipts table.

    def inside(self, limit: int = 50) -> tuple[int, list[SessionView]]:
        """How many sessions are inside (not left yet), and the newest `limit` of them, newest first:
        a shopper still inside never drops off because many others came and went since."""
        with self.db.transaction() as tx:
            inside = SessionRow.exited_t.is_(None)
            count = tx.scalar(select(func.count()).select_from(SessionRow).where(inside)) or 0
            rows = tx.scalars(select(SessionRow).where(inside)
                              .order_by(SessionRow.entered_t.desc(), SessionRow.id.desc()).limit(limit)).all()
            return count, [self._session_view(tx, row) for row in rows]

    def recent_receipts(self, limit: int = 50, *, customer: str | None = None,
                        session: str | None = None) -> list[ReceiptView]:
        """Receipts of sessions that left, the last to leave first, at most `limit` (of `customer`, or
        the one of `session`, when given)."""
        with self.db.transaction() as tx:
            query = select(SessionRow).where(SessionRow.exited_t.is_not(None))
            if customer is not None:
                query = query.where(SessionRow.customer == customer)
            if session is not None:
                query = query.where(SessionRow.id == session)
            rows = tx.scalars(query.order_by(SessionRow.exited_t.desc(), SessionRow.id.desc()).limit(limit)).all()
            return [self._receipt_view(tx, row) for row in rows]

    def open_review_count(self) -> int:
        with self.db.transaction() as tx:
            return tx.scalar(select(func.count()).select_from(ReviewRow).where(ReviewRow.state == "open")) or 0

    def session_events(self, session_id: str) -> list[SessionEventView]:
        """Every basket event of a session in time order, with where it came from (the camera, a
        person's review decision, an accepted dispute); empty for an unknown session."""
        with self.db.transaction() as tx:
            return [SessionEventView(r.t, r.action, r.gtin, r.qty, r.unit_cents, r.slot, r.camera, r.confidence,
                                     r.source, r.review_id) for r in basket_rows(tx, session_id)]

    def reviews_of(self, session_id: str) -> list[ReviewView]:
        """The reviews believed to concern a session or applied to it (disputes included), in time order."""
        with self.db.transaction() as tx:
            rows = tx.scalars(select(ReviewRow).where(
                (ReviewRow.session_id == session_id) | (ReviewRow.applied_session_id == session_id))
                .order_by(ReviewRow.t, ReviewRow.id))
            return [review_view(tx, row, self.clips) for row in rows]

    # ------------------------------------------------------------------ cameras

    def camera_health(self, outages: int = 20) -> list[dict[str, Any]]:
        """One plain dict per camera of the store layout: camera, state (ok | stalled | disconnected |
        unknown), last_event_t, reconnects, lag_s, and its newest `outages` outages, each with the
        sessions it flags (`store_runtime/outages.py`; GET /v1/cameras and the operator console)."""
        with self.db.transaction() as tx:
            return camera_outages.camera_health(tx, self.store.config, now=self.clock(),
                                                silence_s=self.settings.camera_silence_s, outages=outages)

    # ------------------------------------------------------------------ privacy

    def stop_customer(self, customer: str, *, why: Literal["withdrawn", "erased"],
                      then: Callable[[Session, list[str]], _T], t: float | None = None) -> _T:
        """Stop tracking `customer` (consent to checkout withdrawn, or erased) from now on.

        Every session of theirs not stopped yet is marked, and its people's tracks still in view
        noted as stopped, so their node events that arrive later are discarded (`apply`). A session
        still open is closed now and its basket so far charged, as an exit would (held while a
        review is open on it): the goods taken while consent held were sold, and charging them
        needs no more tracking. `then(tx, closed)` runs in the same transaction (the privacy
        side's consent and audit records); the provider is asked after the commit. Returns what
        `then` returned.
        """
        now = self._now(t)
        work, closed = _NOTHING, []
        with self.db.transaction() as tx:
            ids = tx.scalars(select(SessionRow.id).where(SessionRow.customer == customer,
                                                         SessionRow.stopped_t.is_(None))
                             .order_by(SessionRow.entered_t, SessionRow.id)).all()
            for session_id in ids:
                session = self._locked(tx, session_id)
                session.stopped_t, session.stopped_why = now, why
                for track in bound_tracks(tx, session.id):
                    if track.left_t is None and tx.get(StoppedTrackRow, (track.camera, track.track)) is None:
                        tx.add(StoppedTrackRow(camera=track.camera, track=track.track, reason=why, t=now))
                if session.state == "open":
                    session.exited_t = now  # exit_gate stays None: nobody walked through a gate
                    work += self._charge_or_hold(tx, session, now)
                    closed.append(session.id)
            result = then(tx, closed)
        try:
            self._run(work)
        except Exception:  # the provider away: the charge stays pending, finished by recover() or an exit retry
            log.warning("a charge of a stopped session is left pending", exc_info=True)
        return result

    # ------------------------------------------------------------------ helpers

    def _now(self, t: float | None) -> float:
        return _finite(self.clock() if t is None else t)

    def _gate(self, gate: str, kind: str) -> None:
        if self._gates.get(gate) != kind:
            known = ", ".join(sorted(g for g, k in self._gates.items() if k == kind)) or "none"
            raise UnknownGate(f"gate {gate!r} is not an {kind} gate of this store ({kind} gates: {known})")

    @staticmethod
    def _locked(tx: Session, session_id: str) -> SessionRow:
        # populate_existing: a copy read earlier in this transaction may be stale by the time we hold the lock.
        row = tx.get(SessionRow, session_id, with_for_update=True, populate_existing=True)
        if row is None:
            raise NotFound(f"no session {session_id!r}")
        return row

    @staticmethod
    def _charges(tx: Session, session_id: str) -> list[ChargeRow]:
        return list(tx.scalars(select(ChargeRow).where(ChargeRow.session_id == session_id)
                               .order_by(ChargeRow.attempt)))

    @staticmethod
    def _refunds(tx: Session, session_id: str) -> list[RefundRow]:
        return list(tx.scalars(select(RefundRow).where(RefundRow.session_id == session_id)
                               .order_by(RefundRow.created_t, RefundRow.id)))

    def _line_price(self, tx: Session, session: SessionRow, gtin: str) -> int:
        for line in fold(basket_rows(tx, session.id)):
            if line.gtin == gtin:
                return line.unit_cents
        return self.store.catalog.price(gtin) if gtin in self.store.catalog else 0

    def _session_view(self, tx: Session, row: SessionRow) -> SessionView:
        lines = fold(basket_rows(tx, row.id))
        return SessionView(row.id, row.customer, row.party, row.gate, row.entered_t, row.exited_t, row.state, lines,
                           sum(line.cents for line in lines), row.version, self.store.config.currency,
                           len(bound_tracks(tx, row.id)), self._blocking_reviews(tx, row.id),
                           tuple(camera_outages.session_flags(tx, self.store.config, row)))

    def _receipt_view(self, tx: Session, row: SessionRow) -> ReceiptView:
        lines = fold(basket_rows(tx, row.id))
        charges = self._charges(tx, row.id)
        refunds = self._refunds(tx, row.id)
        exit_charge = next((c.id for c in reversed(charges) if c.kind == "exit" and c.state == "captured"), None)
        return ReceiptView(
            customer=row.customer, session=row.id, entered_t=row.entered_t, exited_t=row.exited_t, lines=lines,
            total_cents=sum(line.cents for line in lines), status=_RECEIPT_STATUS[row.state], charge=exit_charge,
            charged_cents=sum(c.amount_cents for c in charges if c.state == "captured"),
            refunded_cents=sum(r.amount_cents for r in refunds if r.state == "done"),
            currency=self.store.config.currency,
            charges=tuple(ChargeView(c.id, c.kind, c.amount_cents, c.state, c.decline_reason, c.created_t)
                          for c in charges),
            refunds=tuple(RefundView(r.id, r.charge_id, r.amount_cents, r.state, r.review_id, r.created_t)
                          for r in refunds),
            camera_outages=tuple(camera_outages.session_flags(tx, self.store.config, row)))


@dataclass(frozen=True, slots=True)
class _Move:
    """A pick or put as the fold reads it, for an event not (yet) in a basket."""

    id: str
    t: float
    action: str
    gtin: str
    qty: int
    unit_cents: int = 0


def _event_of(review: ReviewRow) -> _Move:
    return _Move(review.event_id or review.id, review.t, review.action or "pick", review.gtin or "", review.qty or 0)
