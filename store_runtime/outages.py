"""Camera outages: what a blind camera may have got wrong, and which sessions it concerns.

A live camera node reports its camera's health as `CameraStatus` events (store_runtime/events.py):
an outage that begins (`stalled`: the stream open, no frames; `disconnected`: the stream lost), its
end (`recovered`), and `ok` heartbeats with the frame lag. Here they become rows — one per outage,
keyed by camera and start, however many reports of it arrive and in whatever order, and one per
camera with its newest report — and flags on sessions.

What a flag is. A session is flagged by every outage during which it was inside the store (entered
before the outage ended, left after it began): the camera may have missed what it watches of that
visit. The flag names the camera, the window and what the camera watches that the session did
then (`affects`): `shelf` (the camera has shelf slots: picks and puts may be missing or wrong),
`entry` / `exit` (the camera watches the gate or zone the session came in or left through, and it
did so during the window). Flags are derived from the outage rows and the sessions' times when read
(session and receipt views, `StoreRuntime.camera_health`), so a session that comes in during an
outage that is still open is flagged too, and nothing is stored twice.

What a flag holds. An outage of a shelf camera that overlaps a session's time inside by more than
`RuntimeSettings.outage_hold_s` opens a review of kind `camera_outage` on that session, which holds
its charge like any open review: the store cannot tell what was taken while it was blind, and a
store owner would rather have a person look than silently undercharge (a pick missed) or overcharge
(a put back missed). The operator accepts the basket as the cameras saw it, or sets a product's
quantity (`gtin`, `qty`: the difference is added as a pick or a put), or rejects the review (the
outage did not concern this visit); either way the hold ends and the session is charged or settled.
Reviews are opened when the outage is reported (for the sessions inside so far, the charged ones
included: a late report still reaches the operator, and a correction is then charged or refunded)
and when a session leaves (for an outage it overlapped that is still open, or that it entered
during). Entry and exit cameras only flag: a person they missed comes in unbound or leaves without
a camera exit, and the runtime already sends those to review or waits for the gate.

Out of order. Reports of one outage share its start; `kind` keeps the worst (disconnected over
stalled) and `end_t` comes from `recovered`. An outage left open by a node that died (its
`recovered` never sent) is closed by the camera's next report that shows frames flowing: a
heartbeat, a recovery, or the start of a later outage (frames were flowing up to it), if that
report is newer than the store's hearing of the outage (a heartbeat overtaken by the outage's
report on the way ends nothing).

Functions here work inside the caller's transaction and never commit.
"""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from store_runtime.baskets import open_review, review_id
from store_runtime.config import StoreConfig
from store_runtime.db import CameraOutageRow, CameraStateRow, ReviewRow, SessionRow, digest
from store_runtime.events import CameraStatus

__all__ = [
    "OUTAGE_REVIEW",
    "apply_status",
    "camera_health",
    "camera_watches",
    "hold_for_outage",
    "hold_session",
    "outage_id",
    "session_flags",
]

OUTAGE_REVIEW = "camera_outage"
_WORSE = {"stalled": 0, "disconnected": 1}
_INF = math.inf


def outage_id(camera: str, start_t: float) -> str:
    """An outage's id: its camera and start (every report of one outage carries the same start)."""
    return "co_" + digest(camera, f"{start_t:.3f}")[:20]


def camera_watches(store: StoreConfig, camera: str) -> dict[str, set[str]]:
    """What `camera` watches: `shelf` (it has slots) and the entry and exit gates it sees people pass
    (a gate camera's own gate, a shelf camera's zones), as {"shelf": {...}, "entry": {gates}, "exit": {gates}}."""
    spec = store.cameras[camera]
    gates = set(spec.zones) | ({spec.gate} if spec.gate else set())
    return {"shelf": {"slots"} if spec.slots else set(),
            "entry": {g for g in gates if g in store.gates and store.gates[g].kind == "entry"},
            "exit": {g for g in gates if g in store.gates and store.gates[g].kind == "exit"}}


# --------------------------------------------------------------------------------------------
# Reports in


def _flowing_t(e: CameraStatus) -> float:
    """A time at which the report shows the camera's frames flowing."""
    if e.status == "ok":
        return e.t
    if e.status == "recovered":
        return e.end_t  # type: ignore[return-value]
    return e.start_t  # type: ignore[return-value]  # the last frame before this outage


def apply_status(tx: Session, e: CameraStatus, now: float) -> CameraOutageRow | None:
    """Record a camera status report: the camera's newest status, and for an outage report its
    outage row (made, worsened or ended); returns that row (None for a heartbeat)."""
    state = tx.get(CameraStateRow, e.camera, with_for_update=True)
    newer = state is not None and state.t > e.t
    if state is None:
        tx.add(CameraStateRow(camera=e.camera, status=e.status, t=e.t, lag_s=e.lag_s, reconnects=e.reconnects))
    elif not newer:
        state.status, state.t, state.lag_s, state.reconnects = e.status, e.t, e.lag_s, e.reconnects
    own = None if e.status == "ok" else outage_id(e.camera, e.start_t)  # type: ignore[arg-type]
    _close_older(tx, e.camera, before=_flowing_t(e), but=own)
    if own is None:
        return None
    end = None if e.end_t is None else max(e.end_t, e.start_t)  # type: ignore[type-var]
    row = tx.get(CameraOutageRow, own, with_for_update=True)
    if row is None:
        row = CameraOutageRow(id=own, camera=e.camera, kind=e.outage, start_t=e.start_t, end_t=end,
                              reconnects=e.reconnects, detail=e.detail, reported_t=now)
        if e.end_t is None and newer and state is not None and state.status in ("ok", "recovered"):
            row.end_t = max(state.t, e.start_t)  # a later report said frames flowed: it ended by then
        tx.add(row)
    else:
        if _WORSE[e.outage] > _WORSE[row.kind]:  # type: ignore[index]
            row.kind = e.outage  # type: ignore[assignment]
        if end is not None:
            row.end_t = end
        row.reconnects = max(row.reconnects, e.reconnects)
        row.detail = e.detail or row.detail
    tx.flush()
    return row


def _close_older(tx: Session, camera: str, *, before: float, but: str | None) -> None:
    """Open outages of `camera` that began before `before`, when frames were flowing: they ended by
    then. Only those the store had heard of by then: a heartbeat sent just before a stall was
    noticed, and delivered after the stall's report, must not end it."""
    for row in tx.scalars(select(CameraOutageRow).where(
            CameraOutageRow.camera == camera, CameraOutageRow.end_t.is_(None), CameraOutageRow.start_t < before,
            CameraOutageRow.reported_t <= before)):
        if row.id != but:
            row.end_t = before


# --------------------------------------------------------------------------------------------
# Which sessions, and what it may have missed of each


def _overlapping(start: float, end: float | None):
    """SQL: sessions inside at some moment of [start, end] (end None: still going)."""
    clause = or_(SessionRow.exited_t.is_(None), SessionRow.exited_t >= start)
    return clause if end is None else clause & (SessionRow.entered_t <= end)


def sessions_during(tx: Session, outage: CameraOutageRow, limit: int | None = None) -> list[SessionRow]:
    query = (select(SessionRow).where(_overlapping(outage.start_t, outage.end_t))
             .order_by(SessionRow.entered_t, SessionRow.id))
    return list(tx.scalars(query if limit is None else query.limit(limit)))


def _overlap_s(outage: CameraOutageRow, session: SessionRow) -> float:
    end = min(_INF if outage.end_t is None else outage.end_t, _INF if session.exited_t is None else session.exited_t)
    return end - max(outage.start_t, session.entered_t)


def _within(t: float | None, outage: CameraOutageRow) -> bool:
    return t is not None and outage.start_t <= t and (outage.end_t is None or t <= outage.end_t)


def _affects(store: StoreConfig, outage: CameraOutageRow, session: SessionRow) -> list[str]:
    if outage.camera not in store.cameras:
        return []
    watches = camera_watches(store, outage.camera)
    found = ["shelf"] if watches["shelf"] else []
    if session.gate in watches["entry"] and _within(session.entered_t, outage):
        found.append("entry")
    if session.exit_gate in watches["exit"] and _within(session.exited_t, outage):
        found.append("exit")
    return found


def _outages_of(tx: Session, session: SessionRow) -> list[CameraOutageRow]:
    """The outages during which `session` was inside, oldest first."""
    query = select(CameraOutageRow).where(or_(CameraOutageRow.end_t.is_(None),
                                              CameraOutageRow.end_t >= session.entered_t))
    if session.exited_t is not None:
        query = query.where(CameraOutageRow.start_t <= session.exited_t)
    return list(tx.scalars(query.order_by(CameraOutageRow.start_t, CameraOutageRow.id)))


def session_flags(tx: Session, store: StoreConfig, session: SessionRow) -> list[dict[str, Any]]:
    """The outages `session` was inside during, oldest first: camera, kind, window, what the camera
    watches that the session did then, and the camera_outage review that holds it (None if none)."""
    flags = []
    for row in _outages_of(tx, session):
        review = tx.get(ReviewRow, _review_id(row, session))
        flags.append({"camera": row.camera, "kind": row.kind, "start_t": row.start_t, "end_t": row.end_t,
                      "affects": _affects(store, row, session), "review": None if review is None else review.id})
    return flags


# --------------------------------------------------------------------------------------------
# Holding charges


def _review_id(outage: CameraOutageRow, session: SessionRow) -> str:
    return review_id(OUTAGE_REVIEW, outage.id, session.id)


def _words(outage: CameraOutageRow, session: SessionRow) -> list[tuple[str, str]]:
    lasted = "still going" if outage.end_t is None else f"{outage.end_t - outage.start_t:.1f} s"
    overlap = _overlap_s(outage, session)
    within = "until it left" if math.isinf(overlap) else f"{overlap:.1f} s of its visit"
    reasons = [(OUTAGE_REVIEW, f"shelf camera {outage.camera} was {outage.kind} ({lasted}) while this session was "
                               f"inside ({within}): picks and puts there may be missing or wrong")]
    whole = outage.start_t <= session.entered_t and session.exited_t is not None and \
        (outage.end_t is None or outage.end_t >= session.exited_t)
    if whole:
        reasons.append(("whole_visit", f"camera {outage.camera} saw none of this visit"))
    return reasons


def _holds(outage: CameraOutageRow, session: SessionRow, store: StoreConfig, hold_s: float | None) -> bool:
    if hold_s is None or outage.camera not in store.cameras or not store.cameras[outage.camera].slots:
        return False
    return _overlap_s(outage, session) > hold_s


def _open_or_refresh(tx: Session, outage: CameraOutageRow, session: SessionRow, now: float) -> bool:
    """The camera_outage review of this outage and session, opened or (while open) its words brought
    up to date; True if it was opened now."""
    rid = _review_id(outage, session)
    review = tx.get(ReviewRow, rid)
    if review is not None:
        if review.state == "open":
            review.reasons = [list(r) for r in _words(outage, session)]
        return False
    # No event id: the review is about the outage (its camera and start), found again by its own id.
    open_review(tx, kind=OUTAGE_REVIEW, id=rid, t=outage.start_t, now=now, reasons=_words(outage, session),
                session=session.id, camera=outage.camera)
    return True


def hold_for_outage(tx: Session, store: StoreConfig, outage: CameraOutageRow, now: float,
                    hold_s: float | None) -> list[str]:
    """Reviews for the sessions inside during `outage` that it holds (see the module's docstring);
    the ids of the sessions a review was opened for now."""
    opened = []
    for session in sessions_during(tx, outage):
        if _holds(outage, session, store, hold_s) and _open_or_refresh(tx, outage, session, now):
            opened.append(session.id)
    return opened


def hold_session(tx: Session, store: StoreConfig, session: SessionRow, now: float, hold_s: float | None) -> bool:
    """At a session's exit (its `exited_t` set): reviews for the outages it was inside during that
    hold it and have none yet; whether one was opened."""
    opened = False
    for row in _outages_of(tx, session):
        if _holds(row, session, store, hold_s):
            opened = _open_or_refresh(tx, row, session, now) or opened
    return opened


# --------------------------------------------------------------------------------------------
# Reading


def camera_health(tx: Session, store: StoreConfig, *, now: float, silence_s: float,
                  outages: int = 20, sessions: int = 500) -> list[dict[str, Any]]:
    """One plain dict per camera of the store layout, in name order (the operator console shows
    exactly these keys): `camera`; `state` ok | stalled | disconnected | unknown (an outage still
    open gives its kind; no report yet, or none for `silence_s`, unknown); `last_event_t` (the newest
    report's time, store clock, or None); `reconnects` and `lag_s` (seconds, or None) of the newest
    report; `outages`, the newest `outages` of the camera, oldest first, each {start_t, end_t or
    None, kind, sessions: [ids of the sessions flagged, at most `sessions` of them]}."""
    states = {row.camera: row for row in tx.scalars(select(CameraStateRow))}
    result = []
    for camera in sorted(store.cameras):
        rows = list(tx.scalars(select(CameraOutageRow).where(CameraOutageRow.camera == camera)
                               .order_by(CameraOutageRow.start_t.desc(), CameraOutageRow.id.desc())
                               .limit(outages)))[::-1]
        state = states.get(camera)
        still = [row for row in rows if row.end_t is None]
        if still:
            health = max((row.kind for row in still), key=_WORSE.__getitem__)
        elif state is None or now - state.t > silence_s:
            health = "unknown"
        else:
            health = "ok"
        result.append({
            "camera": camera, "state": health, "last_event_t": None if state is None else state.t,
            "reconnects": 0 if state is None else state.reconnects, "lag_s": None if state is None else state.lag_s,
            "outages": [{"start_t": row.start_t, "end_t": row.end_t, "kind": row.kind,
                         "sessions": [s.id for s in sessions_during(tx, row, sessions)]} for row in rows]})
    return result
