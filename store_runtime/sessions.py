"""Entry codes -> sessions -> person tracks (SPEC sections 4 and 7).

- `check_entry` re-checks a presented code with the store's own key, clock and used-token table
  (the sessions' unique `jti`): a camera node's verdict is never trusted. Every presentation is
  recorded, admitted or refused with its reason; an admitted code opens exactly one session. A
  customer whose consent to checkout is on file as withdrawn is refused (`no_consent`); one with
  none on file has it recorded from the code itself (`store_runtime/privacy.py` says why).
- `bind_track` gives a person track that came in through an entry zone to the oldest admitted
  session at that gate still waiting for people (up to its `party`) within `window_s` of its code
  being read: people pass a gate in the order they scanned (the rule of `vision.gates.EntryBinder`,
  kept in the database so a restart loses nothing). A track with no session waiting is anonymous.
- `adopt_early_tracks` is the same rule run the other way, for a code read that reaches the
  runtime after the tracks it let in (two camera nodes, two clocks of delivery).
- `pair_lost_and_found`: the tracker loses people (behind another shopper, missed detections) and
  finds them again under a new id, in the middle of the floor (`track_lost`, `track_appeared`). When
  exactly one bound person of a camera is lost and exactly one unbound person appeared there close
  to that time, they are the same: the found track takes the lost one's session, and the lost one
  counts as gone (`left_zone` "lost"), so the session's exit is seen. With several candidates
  nothing is guessed: what the found person does goes to review as anyone unbound's does.

Functions here work inside the caller's transaction and never commit.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from store_runtime.config import StoreConfig
from store_runtime.db import EntryRow, SessionRow, TrackRow, digest
from store_runtime.privacy import admit_consent, checkout_consent
from vision.entry_code import Refusal, verify_code

__all__ = [
    "REFUSAL_STATUS",
    "EntryRefused",
    "adopt_early_tracks",
    "bind_track",
    "bound_tracks",
    "check_entry",
    "everyone_left",
    "pair_lost_and_found",
    "sessions_inside",
    "track_appeared",
    "track_left",
    "track_lost",
]

# A person found again this long before (a box splitting from another shopper's, while the lost
# track still coasts) or after (hidden, then seen again) the loss of a bound person is a candidate.
FOUND_BEFORE_LOSS_S = 3.0
FOUND_AFTER_LOSS_S = 10.0

# SPEC section 7's names and HTTP answers for a refused code.
_REASON = {
    Refusal.MALFORMED: "malformed",
    Refusal.BAD_SIGNATURE: "signature",
    Refusal.OTHER_STORE: "other_store",
    Refusal.EXPIRED: "expired",
    Refusal.REUSED: "used",
}
# no_consent is ours, not the code's: the customer withdrew consent to checkout (privacy.py).
REFUSAL_STATUS = {"malformed": 422, "signature": 401, "other_store": 403, "expired": 410, "used": 409,
                  "no_consent": 403}


class EntryRefused(Exception):
    """A presented code opened nothing. `reason` is one of malformed, signature, other_store,
    expired, used, no_consent; `status` its HTTP answer (SPEC section 7, and 403 for no_consent);
    the refusal is already recorded."""

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.status = REFUSAL_STATUS[reason]
        self.detail = detail
        super().__init__(f"entry code refused ({reason}): {detail}")


def session_id(store_id: str, jti: str) -> str:
    """A session's id: derived from the code's single-use token, so a replay names it the same."""
    return "s_" + digest(store_id, jti)[:20]


@dataclass(frozen=True, slots=True)
class Entry:
    """What `check_entry` decided: the session opened (None when refused) and the record."""

    session: SessionRow | None
    record: EntryRow

    @property
    def refused(self) -> EntryRefused | None:
        r = self.record
        return None if r.admitted else EntryRefused(r.reason or "malformed", r.detail)


def check_entry(tx: Session, store: StoreConfig, *, gate: str, code: str, t: float, source: str,
                event_id: str | None = None) -> Entry:
    """Check `code` presented at `gate` at store time `t`; record it; open a session if admitted.

    A code's `jti` opens one session ever: a second presentation is refused as `used`, even when
    two gates present it at the same instant (the second insert fails on the unique `jti`).
    """
    def used(jti: str) -> bool:
        return tx.scalar(select(func.count()).select_from(SessionRow).where(SessionRow.jti == jti)) > 0

    verdict = verify_code(code, key=store.entry_key_bytes, store_id=store.store_id, now=t, is_used=used)
    claims = verdict.claims
    code_hash = digest(code)
    ok, outcome = verdict.ok, "admitted" if verdict.ok else str(verdict.refusal)
    reason, detail = (None, verdict.detail) if verdict.ok else (_REASON[verdict.refusal], verdict.detail)
    if ok and claims is not None and checkout_consent(tx, claims.cid) == "withdrawn":
        ok, outcome, reason = False, "no_consent", "no_consent"
        detail = f"customer {claims.cid!r} has withdrawn consent to checkout, which entering needs"
    record = EntryRow(
        id="en_" + digest(source, event_id or "", gate, repr(t), code_hash, outcome)[:20],
        t=t, gate=gate, source=source, event_id=event_id, code_sha256=code_hash,
        customer=claims.cid if claims else None, jti=claims.jti if claims else None,
        party=claims.party if claims else None, admitted=ok, reason=reason, detail=detail[:300], session_id=None)
    session = None
    if ok and claims is not None:
        session = SessionRow(id=session_id(store.store_id, claims.jti), customer=claims.cid, jti=claims.jti,
                             gate=gate, party=claims.party, entered_t=t, exited_t=None, exit_gate=None,
                             state="open", version=0)
        try:
            with tx.begin_nested():
                tx.add(session)
        except IntegrityError:  # the same code admitted a moment ago by another request
            session = None
            record.admitted, record.reason = False, "used"
            record.detail = f"token {claims.jti!r} was used before"
        else:
            record.session_id = session.id
            admit_consent(tx, claims.cid, notice_version=store.privacy.notice_version, t=t, by=f"{source}:{gate}")
    if tx.get(EntryRow, record.id) is None:  # else: the very same presentation, told twice at one instant
        tx.add(record)
    return Entry(session, record)


def bound_tracks(tx: Session, session: str) -> list[TrackRow]:
    return list(tx.scalars(select(TrackRow).where(TrackRow.session_id == session).order_by(TrackRow.entered_t)))


def _waiting(tx: Session, gate: str, t: float, window_s: float) -> SessionRow | None:
    """The oldest open session admitted at `gate` within `window_s` before `t` with a seat left."""
    seated = select(func.count()).select_from(TrackRow).where(TrackRow.session_id == SessionRow.id).scalar_subquery()
    return tx.scalars(
        select(SessionRow)
        .where(SessionRow.gate == gate, SessionRow.state == "open",
               SessionRow.entered_t <= t, SessionRow.entered_t >= t - window_s, seated < SessionRow.party)
        .order_by(SessionRow.entered_t, SessionRow.id)
        .limit(1)
    ).first()


def bind_track(tx: Session, *, camera: str, track: int, zone: str, t: float, window_s: float) -> TrackRow:
    """Record track `track` of `camera` coming in through entry zone `zone` at `t`, bound to the
    session waiting at that gate (see the module's docstring), or to none: anonymous."""
    row = tx.scalars(select(TrackRow).where(TrackRow.camera == camera, TrackRow.track == track)).first()
    if row is None:
        row = TrackRow(camera=camera, track=track, zone=zone, entered_t=t)
        tx.add(row)
    else:
        # The tracker's ids restart with the node's process: this is another person now.
        row.zone, row.entered_t, row.left_t, row.left_zone, row.session_id, row.lost_t = zone, t, None, None, None, None
    waiting = _waiting(tx, zone, t, window_s)
    row.session_id = waiting.id if waiting is not None else None
    tx.flush()
    return row


def adopt_early_tracks(tx: Session, session: SessionRow, *, window_s: float) -> list[TrackRow]:
    """Bind to a just-opened `session` the anonymous tracks that came through its gate within
    `window_s` after its code was read (their events reached us before the code's)."""
    seats = session.party - len(bound_tracks(tx, session.id))
    if seats <= 0:
        return []
    early = tx.scalars(
        select(TrackRow)
        .where(TrackRow.zone == session.gate, TrackRow.session_id.is_(None),
               TrackRow.entered_t >= session.entered_t, TrackRow.entered_t <= session.entered_t + window_s)
        .order_by(TrackRow.entered_t, TrackRow.id)
        .limit(seats)
    ).all()
    for row in early:
        row.session_id = session.id
    tx.flush()
    return list(early)


def track_left(tx: Session, *, camera: str, track: int, zone: str, t: float) -> TrackRow | None:
    """Track `track` of `camera` left through exit zone `zone`; None if it never came in."""
    row = tx.scalars(select(TrackRow).where(TrackRow.camera == camera, TrackRow.track == track)).first()
    if row is None:
        return None
    row.left_t, row.left_zone = t, zone
    tx.flush()
    return row


def track_lost(tx: Session, *, camera: str, track: int, t: float) -> TrackRow | None:
    """Track `track` of `camera` vanished mid-floor at `t`; None if it never came in or has left."""
    row = tx.scalars(select(TrackRow).where(TrackRow.camera == camera, TrackRow.track == track)).first()
    if row is None or row.left_t is not None:
        return None
    row.lost_t = t
    tx.flush()
    return row


def track_appeared(tx: Session, *, camera: str, track: int, t: float) -> TrackRow:
    """Record track `track` of `camera`, first seen mid-floor at `t`, unbound; a bound track that
    appears again under its own id (the tracker kept it) is simply no longer lost."""
    row = tx.scalars(select(TrackRow).where(TrackRow.camera == camera, TrackRow.track == track)).first()
    if row is not None and row.session_id is not None and row.left_t is None:
        row.lost_t = None
    elif row is None:
        row = TrackRow(camera=camera, track=track, zone="", entered_t=t)
        tx.add(row)
    else:  # the tracker's ids restart with the node's process: another person
        row.zone, row.entered_t, row.left_t, row.left_zone, row.session_id, row.lost_t = "", t, None, None, None, None
    tx.flush()
    return row


def pair_lost_and_found(tx: Session, *, camera: str) -> TrackRow | None:
    """The found track bound to the session of the person lost on `camera`, when exactly one such
    pair is close in time (see the module's docstring); None otherwise."""
    lost = tx.scalars(
        select(TrackRow).join(SessionRow, SessionRow.id == TrackRow.session_id)
        .where(TrackRow.camera == camera, TrackRow.lost_t.is_not(None), TrackRow.left_t.is_(None),
               SessionRow.state == "open")
    ).all()
    if not lost:
        return None
    found = tx.scalars(
        select(TrackRow).where(TrackRow.camera == camera, TrackRow.zone == "", TrackRow.session_id.is_(None),
                               TrackRow.left_t.is_(None), TrackRow.lost_t.is_(None))
    ).all()
    pairs = [(gone, again) for gone in lost for again in found
             if gone.lost_t - FOUND_BEFORE_LOSS_S <= again.entered_t <= gone.lost_t + FOUND_AFTER_LOSS_S]
    if len(pairs) != 1:
        return None
    gone, again = pairs[0]
    again.session_id = gone.session_id
    gone.left_t, gone.left_zone = gone.lost_t, "lost"
    tx.flush()
    return again


def everyone_left(tx: Session, session: str) -> bool:
    """Whether every person bound to `session` has left (for a party of one: that person)."""
    tracks = bound_tracks(tx, session)
    return bool(tracks) and all(row.left_t is not None for row in tracks)


def sessions_inside(tx: Session, t: float) -> list[SessionRow]:
    """Sessions open at `t` (admitted by then and not yet left), oldest first."""
    return list(tx.scalars(
        select(SessionRow)
        .where(SessionRow.state == "open", SessionRow.entered_t <= t)
        .order_by(SessionRow.entered_t, SessionRow.id)
    ))
