"""The shoppers' privacy, store side: consent records, retention, access, erasure, and the audit log.

Consent. A customer consents per purpose: `checkout` (required to enter: tracking in the store and
charging the basket), `review_clips` and `analytics` (optional, off unless recorded). A record
keeps the notice version shown, the method (`app`, `gate_screen`), when it was given and when
withdrawn; a new grant is a new row, so the history stays as proof (GDPR art. 7(1)).

Consent at the entry gate. SPEC section 7's `POST /v1/entries` carries only `{gate, code}`, and
recorded scenarios hold no consent records. The shopper app issues a signed entry code only to a
customer who accepted its notice, so:
- an admitted code of a customer with no consent on file records `checkout` consent, method
  `app`, with store.yaml's `privacy.notice_version` at that moment, by `<source>:<gate>`;
- a customer whose `checkout` consent is on file as withdrawn is refused, reason `no_consent`
  (the refusal is recorded like any other; the API answers 403 with a body saying why);
- optional purposes are never assumed: only the operator endpoint records them.

Withdrawal (one call) takes effect at the next event: every session of the customer is marked
stopped and its people's tracks still in view noted as stopped (no customer id on the note, so it
outlives an erasure); node events of those tracks that arrive later (a pick, the track leaving)
are not applied, only noted as discarded with the reason (`StoreRuntime.apply`). A session still open is closed at that
moment and its basket so far charged, as an exit would (held while a review is open on it): the
goods taken while consent held were sold, accounting law keeps the sale, and charging needs no
more tracking. What the shopper takes or puts back afterwards is not seen; a person settles it
through a dispute (`POST /v1/disputes`).

Retention (`purge`, run by `walkout privacy purge` and every hour by `walkout serve`):
- private video and review clips (files under store.yaml's `privacy.media_dirs`) older than
  `video_days` (default 3, at most 30) by their modification time;
- tracking data older than `tracking_days`: person tracks, entry records, applied and discarded
  event ids, decided reviews, camera outages that ended by then (they tell which sessions a
  camera may have missed; one still holding a charge through an open review stays, and so does
  each camera's newest status); a session's shelf events are folded into its receipt lines
  (product, quantity, unit price), so the receipt keeps lines, amounts and charge ids but loses
  the events, times, cameras, slots and track ids behind them ("detached");
- receipts, charges, refunds and payment records after `receipt_years` (accounting law).

Access: `export` is everything held on a customer as JSON. Erasure removes what the law lets us
remove and says what it kept and why: receipts and payment records (accounting law, art. 17(3)(b)),
with the customer id on them, detached from tracking data at once; open reviews still holding a
charge (money owed, art. 17(3)(e)); the consent records with their withdrawal (proof, art. 7(1);
and what refuses the customer's codes from then on); the audit rows; exit answers kept for
idempotency (SPEC section 7, at most `idempotency_retention_s`).

Every privacy operation (consent given or withdrawn, export, erasure, purge; who asked) appends a
row to an append-only, hash-chained audit log: its sha256 covers its content and the previous
row's hash; `verify_audit` recomputes the chain and names the first broken row (`walkout privacy
verify-audit`; it only reads, so it runs on a backup too). Deleting the newest rows leaves a
shorter chain that still verifies, so the check prints the head hash, to be written down elsewhere.

`retention_status` says what the next purge would remove (counted with the purge's own conditions)
and when the last one ran; `recent_audit` lists the newest audit rows (the operator console).

`processing_record` is the GDPR art. 30 record of processing, generated from the store's running
configuration and the database's own tables (`walkout privacy record`, `GET /v1/privacy/record`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import stat
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

from sqlalchemy import and_, delete, func, or_, select, text
from sqlalchemy.orm import Session

from store_runtime.baskets import basket_rows, fold
from store_runtime.config import PrivacyConfig, Store
from store_runtime.db import (
    ROLES,
    AppliedEventRow,
    Base,
    BasketEventRow,
    CameraOutageRow,
    ChargeRow,
    ConsentRow,
    Database,
    DiscardedEventRow,
    EntryRow,
    IdempotencyRow,
    LedgerRow,
    PrivacyAuditRow,
    RefundRow,
    ReviewRow,
    SessionRow,
    StoppedTrackRow,
    TrackRow,
    digest,
)
from store_runtime.outages import OUTAGE_REVIEW

if TYPE_CHECKING:
    from store_runtime.runtime import StoreRuntime

__all__ = [
    "GENESIS",
    "METHODS",
    "PURPOSES",
    "RETENTION_EVERY_S",
    "AuditCheck",
    "PrivacyOffice",
    "Purpose",
    "admit_consent",
    "append_audit",
    "checkout_consent",
    "processing_record",
    "purge",
    "recent_audit",
    "record_text",
    "retention_status",
    "verify_audit",
]

log = logging.getLogger("walkout.privacy")

Purpose = Literal["checkout", "review_clips", "analytics"]
Method = Literal["app", "gate_screen"]
PURPOSES: tuple[str, ...] = get_args(Purpose)
METHODS: tuple[str, ...] = get_args(Method)
REQUIRED = "checkout"
PURPOSE_TEXT = {
    "checkout": "Enter the store with the app's code, be followed by the cameras as an anonymous track, "
                "have what you take put in a virtual basket and charged when you leave. Required to enter.",
    "review_clips": "Keep short blurred clips of an uncertain moment so a person can check it. Optional.",
    "analytics": "Count visits and baskets in aggregate to run the store. Optional.",
}
LAWFUL_BASIS = {
    "checkout": "consent (art. 6(1)(a)) for tracking; contract (art. 6(1)(b)) and legal obligation "
                "(art. 6(1)(c), accounting) for the charge and the receipt",
    "review_clips": "consent (art. 6(1)(a))",
    "analytics": "consent (art. 6(1)(a))",
}

DAY_S = 86_400.0
RETENTION_EVERY_S = 3600.0  # how often `walkout serve` runs the purge
GENESIS = "0" * 64  # the `prev_sha256` of the first audit row
MEDIA_SUFFIXES = frozenset({".mp4", ".mkv", ".avi", ".mov", ".webm", ".m4v", ".ts", ".jpg", ".jpeg", ".png"})
BATCH = 500  # sessions detached or deleted per transaction: a purge of years holds no big lock or list
_CUSTOMER = re.compile(r"[A-Za-z0-9._-]{1,64}")  # as an entry code's `cid` (SPEC section 4)
_AUDIT_LOCK = 0x77616C6B  # PostgreSQL advisory lock key of the audit chain ("walk")


def _check_customer(customer: object) -> str:
    if not isinstance(customer, str) or not _CUSTOMER.fullmatch(customer):
        raise ValueError("customer: expected 1 to 64 characters of A-Z a-z 0-9 . _ - (an entry code's cid)")
    return customer


def _check_purposes(purposes: Iterable[str]) -> list[str]:
    chosen = list(dict.fromkeys(purposes))
    if not chosen or any(p not in PURPOSES for p in chosen):
        raise ValueError(f"purposes: expected one or more of {', '.join(PURPOSES)}, got {chosen!r}")
    return chosen


def _check_method(method: str, allowed: Sequence[str] = METHODS) -> str:
    if method not in allowed:
        raise ValueError(f"method: expected one of {', '.join(allowed)}, got {method!r}")
    return method


# --------------------------------------------------------------------------------------------
# The audit log


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def _row_hash(seq: int, t: float, actor: str, op: str, customer: str | None, detail: Any, prev: str) -> str:
    return hashlib.sha256(_canonical({"seq": seq, "t": t, "actor": actor, "op": op, "customer": customer,
                                      "detail": detail, "prev": prev})).hexdigest()


def append_audit(tx: Session, *, t: float, actor: str, op: str, detail: dict[str, Any],
                 customer: str | None = None) -> PrivacyAuditRow:
    """Append one row to the audit chain, in the caller's transaction (so the row and the change it
    records commit together). Writers take turns: SQLite's BEGIN IMMEDIATE already serialises them,
    PostgreSQL takes an advisory lock until the commit; the unique `prev_sha256` is the backstop."""
    if tx.get_bind().dialect.name == "postgresql":
        tx.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _AUDIT_LOCK})
    head = tx.scalars(select(PrivacyAuditRow).order_by(PrivacyAuditRow.seq.desc()).limit(1)).first()
    seq, prev = (1, GENESIS) if head is None else (head.seq + 1, head.sha256)
    detail = json.loads(_canonical(detail))  # as the database will give it back: plain JSON
    row = PrivacyAuditRow(seq=seq, t=float(t), actor=actor[:64], op=op, customer=customer, detail=detail,
                          prev_sha256=prev, sha256=_row_hash(seq, float(t), actor[:64], op, customer, detail, prev))
    tx.add(row)
    tx.flush()
    return row


@dataclass(frozen=True, slots=True)
class AuditCheck:
    """The audit chain recomputed: `ok`, how many rows, the newest row's hash (`head`), and the
    first broken row (`broken_at`, its seq) with what is wrong with it."""

    ok: bool
    rows: int
    head: str
    broken_at: int | None = None
    problem: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "rows": self.rows, "head": self.head, "broken_at": self.broken_at,
                "problem": self.problem}


def verify_audit(db: Database) -> AuditCheck:
    """Recompute every row's hash and link, oldest first (streamed: bounded memory)."""
    prev, expected, rows = GENESIS, 1, 0
    with db.transaction() as tx:
        for row in tx.scalars(select(PrivacyAuditRow).order_by(PrivacyAuditRow.seq).execution_options(yield_per=1000)):
            problem = None
            if row.seq != expected:
                problem = f"row {expected} is missing (the next row is {row.seq})"
            elif row.prev_sha256 != prev:
                problem = f"its prev_sha256 is not the hash of row {row.seq - 1}" if row.seq > 1 else \
                    "the first row does not start the chain"
            elif row.sha256 != _row_hash(row.seq, row.t, row.actor, row.op, row.customer, row.detail,
                                         row.prev_sha256):
                problem = "its content does not match its sha256 (the row was edited)"
            if problem is not None:
                return AuditCheck(False, rows, prev, broken_at=row.seq if row.seq == expected else expected,
                                  problem=problem)
            prev, expected, rows = row.sha256, expected + 1, rows + 1
    return AuditCheck(True, rows, prev)


def recent_audit(db: Database, limit: int = 20) -> list[dict[str, Any]]:
    """The newest `limit` rows of the audit log, newest first (the console's privacy page)."""
    with db.transaction() as tx:
        return [{"seq": r.seq, "t": r.t, "actor": r.actor, "op": r.op, "customer": r.customer, "sha256": r.sha256}
                for r in tx.scalars(select(PrivacyAuditRow).order_by(PrivacyAuditRow.seq.desc()).limit(limit))]


def _audit_rows(tx: Session, customer: str) -> list[dict[str, Any]]:
    return [{"seq": r.seq, "t": r.t, "op": r.op, "actor": r.actor, "detail": r.detail}
            for r in tx.scalars(select(PrivacyAuditRow).where(PrivacyAuditRow.customer == customer)
                                .order_by(PrivacyAuditRow.seq))]


# --------------------------------------------------------------------------------------------
# Consent records (inside the caller's transaction)


def _consents(tx: Session, customer: str, purpose: str | None = None) -> list[ConsentRow]:
    query = select(ConsentRow).where(ConsentRow.customer == customer)
    if purpose is not None:
        query = query.where(ConsentRow.purpose == purpose)
    return list(tx.scalars(query.order_by(func.coalesce(ConsentRow.given_t, ConsentRow.withdrawn_t), ConsentRow.id)))


def _active(rows: Iterable[ConsentRow]) -> list[ConsentRow]:
    return [r for r in rows if r.given_t is not None and r.withdrawn_t is None]


def _state(rows: Sequence[ConsentRow]) -> Literal["given", "withdrawn", "none"]:
    return "given" if _active(rows) else ("withdrawn" if rows else "none")


def checkout_consent(tx: Session, customer: str) -> Literal["given", "withdrawn", "none"]:
    """Where `customer`'s consent to checkout stands: given, withdrawn, or none on file."""
    return _state(_consents(tx, customer, REQUIRED))


def _new_consent(tx: Session, customer: str, purpose: str, *, notice_version: str, method: str,
                 given_t: float | None, by: str, withdrawn_t: float | None = None,
                 withdrawn_method: str | None = None) -> ConsentRow:
    n = tx.scalar(select(func.count()).select_from(ConsentRow).where(
        ConsentRow.customer == customer, ConsentRow.purpose == purpose)) or 0
    # The time too: the purge removes old withdrawn rows, and a count alone would then come round again.
    when = given_t if given_t is not None else withdrawn_t
    row = ConsentRow(id="cn_" + digest(customer, purpose, repr(when), n)[:20], customer=customer, purpose=purpose,
                     notice_version=notice_version[:200], method=method, given_t=given_t, withdrawn_t=withdrawn_t,
                     withdrawn_method=withdrawn_method, recorded_by=by[:64])
    tx.add(row)
    tx.flush()
    return row


def admit_consent(tx: Session, customer: str, *, notice_version: str, t: float, by: str) -> None:
    """An entry code was admitted for `customer` with no checkout consent on file: the app issued
    it after the customer accepted its notice, so record that consent (see the module's docstring)."""
    if checkout_consent(tx, customer) != "none":
        return
    _new_consent(tx, customer, REQUIRED, notice_version=notice_version, method="app", given_t=t, by=by)
    append_audit(tx, t=t, actor=by, op="consent_given", customer=customer,
                 detail={"purposes": [REQUIRED], "notice_version": notice_version, "method": "app",
                         "how": "an admitted entry code: the app issues codes only after its notice is accepted"})


def _give(tx: Session, customer: str, purposes: Sequence[str], *, notice_version: str, method: str, t: float,
          by: str) -> list[str]:
    given = []
    for purpose in purposes:
        active = _active(_consents(tx, customer, purpose))
        if active and active[-1].notice_version == notice_version:
            continue  # given already, on this notice: nothing new to record
        _new_consent(tx, customer, purpose, notice_version=notice_version, method=method, given_t=t, by=by)
        given.append(purpose)
    return given


def _withdraw(tx: Session, customer: str, purposes: Sequence[str], *, method: str, t: float, by: str,
              notice_version: str) -> list[str]:
    withdrawn = []
    for purpose in purposes:
        rows = _consents(tx, customer, purpose)
        active = _active(rows)
        for row in active:
            row.withdrawn_t, row.withdrawn_method = t, method
        if not rows:  # nothing on file: recorded anyway, so that a later code of theirs is refused
            _new_consent(tx, customer, purpose, notice_version=notice_version, method=method, given_t=None,
                         withdrawn_t=t, withdrawn_method=method, by=by)
        if active or not rows:
            withdrawn.append(purpose)
    tx.flush()
    return withdrawn


def _consent_json(row: ConsentRow) -> dict[str, Any]:
    return {"purpose": row.purpose, "notice_version": row.notice_version, "method": row.method,
            "given_t": row.given_t, "withdrawn_t": row.withdrawn_t, "withdrawn_method": row.withdrawn_method,
            "recorded_by": row.recorded_by}


def _consents_json(tx: Session, customer: str) -> dict[str, Any]:
    rows = _consents(tx, customer)
    purposes = {}
    for purpose in PURPOSES:
        mine = [r for r in rows if r.purpose == purpose]
        active = _active(mine)
        latest = active[-1] if active else (mine[-1] if mine else None)
        purposes[purpose] = {"state": _state(mine), "required": purpose == REQUIRED,
                             "notice_version": latest.notice_version if latest else None,
                             "method": latest.method if latest else None,
                             "given_t": latest.given_t if latest else None,
                             "withdrawn_t": latest.withdrawn_t if latest else None}
    return {"customer": customer, "purposes": purposes, "history": [_consent_json(r) for r in rows]}


# --------------------------------------------------------------------------------------------
# Detaching and deleting (inside the caller's transaction)


def _count(tx: Session, statement: Any) -> int:
    return tx.execute(statement).rowcount or 0


def detach(tx: Session, session: SessionRow, now: float) -> dict[str, int]:
    """Remove `session`'s tracking data, keeping its receipt: its shelf events become one line each
    (product, quantity, unit price) and its tracks, entry records, decided reviews (disputes kept:
    they justify a refund) and discarded-event notes go. Open reviews stay: a person must still
    decide them. Running it again folds in whatever was added since; the receipt never changes."""
    rows = basket_rows(tx, session.id)
    removed = {"basket_events": sum(1 for r in rows if r.source != "receipt")}
    if removed["basket_events"]:
        lines = fold(rows)
        for row in rows:
            tx.delete(row)
        tx.flush()
        # Dated at entry, before anything a review still open could add later.
        tx.add_all(BasketEventRow(id="k_" + digest(session.id, line.gtin)[:20], session_id=session.id,
                                  t=session.entered_t, action="pick", gtin=line.gtin, qty=line.qty,
                                  unit_cents=line.unit_cents, source="receipt", applied_t=now) for line in lines)
    removed["tracks"] = _count(tx, delete(TrackRow).where(TrackRow.session_id == session.id))
    removed["entries"] = _count(tx, delete(EntryRow).where(EntryRow.session_id == session.id))
    removed["reviews"] = _count(tx, delete(ReviewRow).where(
        or_(ReviewRow.session_id == session.id, ReviewRow.applied_session_id == session.id),
        ReviewRow.state != "open", ReviewRow.kind != "dispute"))
    removed["discarded_events"] = _count(tx, delete(DiscardedEventRow).where(
        DiscardedEventRow.session_id == session.id))
    session.detached_t = now
    tx.flush()
    return removed


def delete_session(tx: Session, session_id: str) -> None:
    """Remove a session and everything that hangs on it, its money included (the caller decided
    that no law keeps it any more)."""
    tx.execute(delete(DiscardedEventRow).where(DiscardedEventRow.session_id == session_id))
    tx.execute(delete(BasketEventRow).where(BasketEventRow.session_id == session_id))
    tx.execute(delete(TrackRow).where(TrackRow.session_id == session_id))
    tx.execute(delete(EntryRow).where(EntryRow.session_id == session_id))
    tx.execute(delete(ReviewRow).where(or_(ReviewRow.session_id == session_id,
                                           ReviewRow.applied_session_id == session_id)))
    tx.execute(delete(RefundRow).where(RefundRow.session_id == session_id))
    tx.execute(delete(ChargeRow).where(ChargeRow.session_id == session_id))
    tx.execute(delete(IdempotencyRow).where(IdempotencyRow.session_id == session_id))
    tx.execute(delete(SessionRow).where(SessionRow.id == session_id))


def _add(total: dict[str, int], part: dict[str, int]) -> None:
    for key, n in part.items():
        total[key] = total.get(key, 0) + n


# --------------------------------------------------------------------------------------------
# Retention


def _years_before(t: float, years: int) -> float:
    """`t` moved `years` calendar years back (forward, for a negative `years`)."""
    when = datetime.fromtimestamp(t, UTC)
    try:
        return when.replace(year=when.year - years).timestamp()
    except ValueError:  # 29 February, in a year that has none
        return when.replace(year=when.year - years, day=28).timestamp()


@dataclass(frozen=True, slots=True)
class Cutoffs:
    """Store times before which each kind of data is gone, for a purge at `now`."""

    video: float
    tracking: float
    receipts: float

    @classmethod
    def at(cls, now: float, config: PrivacyConfig) -> Cutoffs:
        return cls(now - config.video_days * DAY_S, now - config.tracking_days * DAY_S,
                   _years_before(now, config.receipt_years))


def purge_media(root: Path, dirs: Sequence[Any], before: float,
                keep: frozenset[Path] = frozenset()) -> tuple[int, int, list[str]]:
    """Delete the video and picture files under `dirs` (relative to `root`) last modified before
    `before`: (files, bytes, problems). Only regular files with a media suffix go, never one of
    `keep` (the catalog's product photos); links are never followed, and a folder that leads
    outside `root` is left alone and reported."""
    files = size = 0
    problems: list[str] = []
    base = root.resolve()
    for rel in dirs:
        folder = root / str(rel)
        if not folder.exists():
            continue
        resolved = folder.resolve()
        if not resolved.is_relative_to(base) or not resolved.is_dir():
            problems.append(f"media folder {rel}: not a folder inside {root}; left alone")
            continue
        for dirpath, _dirnames, filenames in os.walk(resolved, followlinks=False):
            for name in filenames:
                path = Path(dirpath) / name
                try:
                    info = os.lstat(path)
                    if (not stat.S_ISREG(info.st_mode) or path.suffix.lower() not in MEDIA_SUFFIXES
                            or path in keep):
                        continue
                    if info.st_mtime < before:
                        path.unlink()
                        files, size = files + 1, size + info.st_size
                except FileNotFoundError:
                    continue  # gone already: another purge, or its writer rotated it
                except OSError as e:
                    problems.append(f"{path}: {e.strerror or e}")
    return files, size, problems


def _activity() -> Any:
    return func.coalesce(SessionRow.exited_t, SessionRow.entered_t)


def _held_by_review() -> Any:
    return select(ReviewRow.id).where(ReviewRow.session_id == SessionRow.id, ReviewRow.state == "open").exists()


def _batches(db: Database, query: Any, each: Callable[[Session, SessionRow], None]) -> int:
    """Run `each` on the sessions `query` selects, BATCH a transaction, until none is left."""
    done = 0
    while True:
        with db.transaction() as tx:
            rows = tx.scalars(query.limit(BATCH)).all()
            for row in rows:
                each(tx, row)
        done += len(rows)
        if len(rows) < BATCH:
            return done


def _expired_sessions(cut: Cutoffs) -> Any:
    return _activity() < cut.receipts


def _sessions_to_detach(cut: Cutoffs) -> Any:
    stale = select(BasketEventRow.id).where(BasketEventRow.session_id == SessionRow.id,
                                            BasketEventRow.source != "receipt").exists()
    return and_(_activity() < cut.tracking, ~_held_by_review(), or_(SessionRow.detached_t.is_(None), stale))


def _expired_rows(cut: Cutoffs) -> dict[str, tuple[type[Base], Any]]:
    """What the purge deletes outright, after the sessions: name -> (table, which rows)."""
    return {
        "tracks": (TrackRow, and_(TrackRow.session_id.is_(None), TrackRow.entered_t < cut.tracking)),
        # Decided ones, and alerts nobody decided that hold no charge (no session).
        "reviews": (ReviewRow, and_(ReviewRow.t < cut.tracking, ReviewRow.kind != "dispute",
                                    or_(ReviewRow.state != "open", ReviewRow.session_id.is_(None)))),
        "entries": (EntryRow, EntryRow.t < cut.tracking),
        "applied_events": (AppliedEventRow, AppliedEventRow.t < cut.tracking),
        "discarded_events": (DiscardedEventRow, DiscardedEventRow.t < cut.tracking),
        "stopped_tracks": (StoppedTrackRow, StoppedTrackRow.t < cut.tracking),
        "payment_records": (LedgerRow, LedgerRow.t < cut.receipts),
        "consents": (ConsentRow, ConsentRow.withdrawn_t < cut.receipts),
        # Ended ones (they flag sessions by time), unless an open review of one still holds a charge.
        "camera_outages": (CameraOutageRow, and_(CameraOutageRow.end_t < cut.tracking, ~select(ReviewRow.id).where(
            ReviewRow.kind == OUTAGE_REVIEW, ReviewRow.state == "open", ReviewRow.camera == CameraOutageRow.camera,
            ReviewRow.t == CameraOutageRow.start_t).exists())),
    }


def retention_status(db: Database, store: Store, *, now: float) -> dict[str, Any]:
    """What a purge at store time `now` would remove — the sessions it deletes or detaches (with
    their events, tracks and entries), then the rows it deletes outright, counted with the purge's
    own conditions; video files are not walked: those older than `cutoffs.video` go — and the last
    purge from the audit log. Only reads."""
    cut = Cutoffs.at(now, store.config.privacy)
    with db.transaction() as tx:
        would = {"sessions_deleted": tx.scalar(select(func.count()).select_from(SessionRow)
                                               .where(_expired_sessions(cut))) or 0,
                 "sessions_detached": tx.scalar(select(func.count()).select_from(SessionRow)
                                                .where(_sessions_to_detach(cut))) or 0}
        would.update({name: tx.scalar(select(func.count()).select_from(table).where(clause)) or 0
                      for name, (table, clause) in _expired_rows(cut).items()})
        last = tx.scalars(select(PrivacyAuditRow).where(PrivacyAuditRow.op == "purge")
                          .order_by(PrivacyAuditRow.seq.desc()).limit(1)).first()
    return {"t": now, "cutoffs": {"video": cut.video, "tracking": cut.tracking, "receipts": cut.receipts},
            "would_remove": would,
            "last_purge": None if last is None else {"t": last.t, "by": last.actor, "seq": last.seq,
                                                     "removed": last.detail.get("removed", {}),
                                                     "video_files": last.detail.get("video_files", 0)}}


def purge(db: Database, store: Store, *, now: float, by: str) -> dict[str, Any]:
    """The retention job, once, at store time `now` (see the module's docstring); what it removed.
    Appends one audit row."""
    config = store.config.privacy
    cut = Cutoffs.at(now, config)
    photos = frozenset(image.resolve() for product in store.catalog.products.values() for image in product.images)
    files, size, problems = purge_media(store.root, config.media_dirs, cut.video, keep=photos)
    removed: dict[str, int] = {}

    def delete_one(tx: Session, row: SessionRow) -> None:
        delete_session(tx, row.id)

    removed["sessions_deleted"] = _batches(db, select(SessionRow).where(_expired_sessions(cut))
                                           .order_by(SessionRow.id), delete_one)

    def detach_one(tx: Session, row: SessionRow) -> None:
        _add(removed, detach(tx, row, now))

    removed["sessions_detached"] = _batches(db, select(SessionRow).where(_sessions_to_detach(cut))
                                            .order_by(SessionRow.id), detach_one)
    with db.transaction() as tx:
        _add(removed, {name: _count(tx, delete(table).where(clause))
                       for name, (table, clause) in _expired_rows(cut).items()})
        report = {"cutoffs": {"video": cut.video, "tracking": cut.tracking, "receipts": cut.receipts},
                  "video_files": files, "video_bytes": size, "removed": removed, "problems": problems}
        append_audit(tx, t=now, actor=by, op="purge", detail=report)
    return {"t": now, **report}


# --------------------------------------------------------------------------------------------
# The record of processing (GDPR art. 30)

# Every table of the database, with the category of data it holds and the retention rule that ends
# it. A table added without a line here shows up in the record as undocumented (and fails a test).
TABLE_CATEGORIES: dict[str, tuple[str, str]] = {
    "sessions": ("visits and receipts: customer id, entry token id, gate, party size, times, state; detached "
                 "from tracking data once tracking retention ends", "receipts"),
    "basket_events": ("shelf events: product, quantity, price, time, camera, slot, confidence; folded into "
                      "receipt lines once tracking retention ends", "tracking"),
    "charges": ("charges: amount, currency, payment provider references", "receipts"),
    "refunds": ("refunds: amount, the charge refunded, provider reference", "receipts"),
    "payment_ledger": ("the built-in payment provider's books: customer id, amounts, references", "receipts"),
    "entries": ("entry code presentations: sha256 of the code, customer id, token id, gate, time, refusal "
                "reason", "tracking"),
    "tracks": ("person tracks: camera, tracker id, entry and exit zone, times (no picture, no face)", "tracking"),
    "reviews": ("review items: uncertain shelf events, anonymous people, disputes (with the customer's words), "
                "decisions and who made them", "tracking"),
    "applied_events": ("ids, kinds, cameras and times of the camera events applied (no content)", "tracking"),
    "discarded_events": ("ids and times of camera events discarded after a customer's tracking stopped",
                         "tracking"),
    "stopped_tracks": ("camera track ids in view when a customer's tracking stopped (no customer id)",
                       "tracking"),
    "idempotency_keys": ("exit requests' keys and first answers (a receipt)", "idempotency"),
    "consents": ("consent records: purpose, notice version, method, when given and withdrawn", "consents"),
    "privacy_audit": ("the privacy audit log: operation, who did it, customer id, counts", "audit"),
    "credentials": ("staff and device credentials: name, role, sha256 of the token (no shopper data)",
                    "credentials"),
    "camera_outages": ("camera outages: camera, stalled or disconnected, start and end, reconnections (no shopper "
                       "id, but they tell which sessions a camera may have missed, found by time)", "tracking"),
    "camera_states": ("each camera's newest reported status: time, frame lag, reconnections (no shopper data)",
                      "operations"),
}

ROLE_TEXT = {
    "gate": "an entry or exit gate: opens sessions from entry codes, closes and charges them; reads only the "
            "session and receipt of whoever passes it",
    "node": "a camera node: posts its camera's events (ids, tracks, zones, products, times; no pixels); reads nothing",
    "operator": "a person at the back office: review queue, disputes, receipts, and every privacy request "
                "(consents, export, erasure, purge, audit check, this record)",
}


def _retention_text(rule: str, config: PrivacyConfig, idempotency_s: float) -> str:
    return {
        "receipts": f"{config.receipt_years} years after the visit (privacy.receipt_years; accounting law), then "
                    "deleted",
        "tracking": f"{config.tracking_days} days (privacy.tracking_days), then deleted",
        "idempotency": f"{idempotency_s / 3600:g} hours (SPEC section 7: a retried exit gets the same answer)",
        "consents": f"while given; once withdrawn, {config.receipt_years} years (proof of consent, art. 7(1))",
        "audit": "for the life of the store: append-only, hash-chained (walkout privacy verify-audit)",
        "credentials": "until the credential is revoked",
        "operations": "for the life of the store (no personal data; one row per camera, its newest status)",
        "video": f"{config.video_days} days (privacy.video_days, at most 30), then deleted",
    }[rule]


def processing_record(store: Store, *, idempotency_retention_s: float | None = None) -> dict[str, Any]:
    """The GDPR art. 30(1) record of processing activities of this store, built from its running
    configuration (store.yaml and its `privacy:` section, the runtime's settings) and the tables of
    the database, so the documentation cannot drift from what the system does."""
    from store_runtime.runtime import RuntimeSettings

    config = store.config.privacy
    idempotency_s = (idempotency_retention_s if idempotency_retention_s is not None
                     else RuntimeSettings().idempotency_retention_s)
    categories = []
    for name, table in sorted(Base.metadata.tables.items()):
        what, rule = TABLE_CATEGORIES.get(name, ("UNDOCUMENTED: add it to privacy.TABLE_CATEGORIES", "tracking"))
        categories.append({"category": what, "where": f"database table {name}",
                           "fields": [column.name for column in table.columns],
                           "retention": _retention_text(rule, config, idempotency_s)})
    categories.append({"category": "private video and review clips: blurred video of the store (every face and "
                                   "head blurred on the camera node before anything leaves it)",
                       "where": f"files under {', '.join(str(d) for d in config.media_dirs)} (store.yaml's folder)",
                       "fields": [], "retention": _retention_text("video", config, idempotency_s)})
    return {
        "record": "GDPR article 30(1): record of processing activities",
        "store": store.config.store_id,
        "controller": {"name_and_contact": config.controller or "not set (store.yaml privacy.controller)",
                       "dpo": config.dpo or "not set (store.yaml privacy.dpo)"},
        "notice_version": config.notice_version,
        "purposes": [{"purpose": p, "required": p == REQUIRED, "what": PURPOSE_TEXT[p],
                      "lawful_basis": LAWFUL_BASIS[p]} for p in PURPOSES],
        "data_subjects": [
            "shoppers: customers of the app who enter with an entry code, and the people entering on their code",
            "anyone in a camera's view: an anonymous track id and blurred video only; nobody is recognised by face",
        ],
        "categories": categories,
        "recipients": [
            "the payment service provider: customer id and amounts of charges and refunds",
            *(f"role {role}: {ROLE_TEXT[role]}" for role in ROLES),
        ],
        "transfers": "none made by walkout; the payment provider's own processing is under its contract",
        "retention": {"video_days": config.video_days, "tracking_days": config.tracking_days,
                      "receipt_years": config.receipt_years, "idempotency_hours": idempotency_s / 3600,
                      "purge": f"every {RETENTION_EVERY_S / 3600:g} hour in walkout serve; walkout privacy purge"},
        "safeguards": [
            "faces and heads blurred on the camera node: a redacted frame is the only picture that leaves it",
            "no face recognition: people are anonymous track ids bound to a session by the entry code they scanned",
            "entry codes and credentials kept only as sha256 hashes",
            "bearer credentials per role (gate, node, operator); privacy requests are operator-only",
            "consent to checkout required to enter; withdrawal stops tracking at the next event",
            "tracking data detached from receipts and deleted on schedule (retention above)",
            "every privacy operation in an append-only, hash-chained audit log (walkout privacy verify-audit)",
        ],
    }


def record_text(record: dict[str, Any]) -> str:
    """The record as Markdown, for `walkout privacy record`."""
    out = [f"# {record['record']}", "", f"Store: {record['store']}",
           f"Controller: {record['controller']['name_and_contact']}",
           f"Data protection officer: {record['controller']['dpo']}",
           f"Privacy notice version: {record['notice_version']}", "", "## Purposes", ""]
    out += [f"- **{p['purpose']}** ({'required' if p['required'] else 'optional'}): {p['what']} "
            f"Lawful basis: {p['lawful_basis']}." for p in record["purposes"]]
    out += ["", "## Data subjects", "", *(f"- {s}" for s in record["data_subjects"]), "",
            "## Categories of personal data, where they are and how long they are kept", ""]
    for c in record["categories"]:
        fields = f" Fields: {', '.join(c['fields'])}." if c["fields"] else ""
        out.append(f"- {c['category']} ({c['where']}).{fields} Kept: {c['retention']}.")
    out += ["", "## Recipients", "", *(f"- {r}" for r in record["recipients"]), "",
            "## Transfers to third countries", "", record["transfers"], "", "## Technical and organisational "
            "safeguards", "", *(f"- {s}" for s in record["safeguards"]), ""]
    return "\n".join(out)


# --------------------------------------------------------------------------------------------
# The operations an operator asks for


@dataclass(slots=True)
class _Erasure:
    removed: dict[str, int] = field(default_factory=dict)
    kept: list[dict[str, str]] = field(default_factory=list)

    def keep(self, what: str, why: str, until: str) -> None:
        self.kept.append({"what": what, "why": why, "until": until})


def _when(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).date().isoformat()


class PrivacyOffice:
    """The privacy requests of one store's runtime: consents, withdrawal, access export, erasure,
    retention, the audit check and the record of processing. `by` names who asked (an operator's
    credential name); every request appends an audit row."""

    def __init__(self, runtime: StoreRuntime) -> None:
        self.runtime = runtime
        self.db = runtime.db
        self.config = runtime.store.config.privacy

    def _now(self, t: float | None) -> float:
        return float(self.runtime.clock() if t is None else t)

    def consents(self, customer: str) -> dict[str, Any]:
        """Where each purpose stands for `customer`, and every consent record, oldest first."""
        _check_customer(customer)
        with self.db.transaction() as tx:
            return _consents_json(tx, customer)

    def give(self, customer: str, purposes: Sequence[str], *, method: str, by: str,
             notice_version: str | None = None, t: float | None = None) -> dict[str, Any]:
        """Record consent to `purposes` (on the store's current notice unless told otherwise);
        a purpose given already on that notice records nothing new."""
        _check_customer(customer)
        chosen, method = _check_purposes(purposes), _check_method(method)
        notice = notice_version or self.config.notice_version
        now = self._now(t)
        with self.db.transaction() as tx:
            given = _give(tx, customer, chosen, notice_version=notice, method=method, t=now, by=by)
            append_audit(tx, t=now, actor=by, op="consent_given", customer=customer,
                         detail={"purposes": chosen, "recorded": given, "notice_version": notice, "method": method})
            return _consents_json(tx, customer)

    def withdraw(self, customer: str, purposes: Sequence[str], *, method: str, by: str,
                 t: float | None = None) -> dict[str, Any]:
        """Withdraw consent to `purposes`. Withdrawing checkout stops tracking the customer at the
        next event and closes a session still open, its basket so far charged (module docstring)."""
        _check_customer(customer)
        chosen, method = _check_purposes(purposes), _check_method(method)
        now = self._now(t)

        def record(tx: Session, closed: list[str]) -> dict[str, Any]:
            withdrawn = _withdraw(tx, customer, chosen, method=method, t=now, by=by,
                                  notice_version=self.config.notice_version)
            clips = self._delete_clips(tx, customer) if {"review_clips", REQUIRED} & set(chosen) else 0
            append_audit(tx, t=now, actor=by, op="consent_withdrawn", customer=customer,
                         detail={"purposes": chosen, "recorded": withdrawn, "method": method,
                                 "sessions_closed": closed, "review_clips_deleted": clips})
            return {**_consents_json(tx, customer), "sessions_closed": closed}

        if REQUIRED not in chosen:
            with self.db.transaction() as tx:
                return record(tx, [])
        return self.runtime.stop_customer(customer, why="withdrawn", then=record, t=now)

    def export(self, customer: str, *, by: str, t: float | None = None) -> dict[str, Any]:
        """Everything held on `customer`, as JSON (an access request, GDPR art. 15)."""
        _check_customer(customer)
        now = self._now(t)
        receipts = {r.session: r.to_json() for r in self.runtime.receipts_of(customer)}
        with self.db.transaction() as tx:
            sessions = tx.scalars(select(SessionRow).where(SessionRow.customer == customer)
                                  .order_by(SessionRow.entered_t, SessionRow.id)).all()
            out = {
                "customer": customer, "store": self.runtime.store.config.store_id, "generated_t": now,
                "consents": _consents_json(tx, customer)["history"],
                "sessions": [self._session_json(tx, s, receipts.get(s.id)) for s in sessions],
                "entries": [{"t": e.t, "gate": e.gate, "source": e.source, "admitted": e.admitted,
                             "reason": e.reason, "detail": e.detail, "session": e.session_id}
                            for e in tx.scalars(select(EntryRow).where(EntryRow.customer == customer)
                                                .order_by(EntryRow.t, EntryRow.id))],
                "payments": [{"t": r.t, "op": r.op, "amount_cents": r.amount_cents, "currency": r.currency,
                              "ok": r.ok, "reason": r.reason, "reference": r.id}
                             for r in tx.scalars(select(LedgerRow).where(LedgerRow.customer == customer)
                                                 .order_by(LedgerRow.t, LedgerRow.id))],
                "privacy_operations": _audit_rows(tx, customer),
            }
            counts = {k: len(v) for k, v in out.items() if isinstance(v, list)}
            append_audit(tx, t=now, actor=by, op="export", customer=customer, detail={"counts": counts})
        return out

    @staticmethod
    def _session_json(tx: Session, s: SessionRow, receipt: dict[str, Any] | None) -> dict[str, Any]:
        reviews = tx.scalars(select(ReviewRow).where(or_(ReviewRow.session_id == s.id,
                                                         ReviewRow.applied_session_id == s.id))
                             .order_by(ReviewRow.t, ReviewRow.id))
        return {
            "session": s.id, "gate": s.gate, "party": s.party, "entered_t": s.entered_t, "exited_t": s.exited_t,
            "exit_gate": s.exit_gate, "state": s.state, "tracking_stopped_t": s.stopped_t,
            "tracking_stopped_why": s.stopped_why, "detached_t": s.detached_t, "receipt": receipt,
            "events": [{"t": e.t, "action": e.action, "gtin": e.gtin, "qty": e.qty, "unit_cents": e.unit_cents,
                        "slot": e.slot, "camera": e.camera, "confidence": e.confidence, "source": e.source}
                       for e in basket_rows(tx, s.id)],
            "tracks": [{"camera": r.camera, "track": r.track, "zone": r.zone, "entered_t": r.entered_t,
                        "left_t": r.left_t, "left_zone": r.left_zone}
                       for r in tx.scalars(select(TrackRow).where(TrackRow.session_id == s.id)
                                           .order_by(TrackRow.entered_t, TrackRow.id))],
            "reviews": [{"kind": r.kind, "state": r.state, "t": r.t, "action": r.action, "gtin": r.gtin,
                         "qty": r.qty, "camera": r.camera, "slot": r.slot, "reasons": [w for _, w in r.reasons],
                         "decided_by": r.decided_by, "decided_t": r.decided_t, "note": r.note} for r in reviews],
            "discarded_events": [{"t": d.t, "kind": d.kind, "camera": d.camera, "reason": d.reason}
                                 for d in tx.scalars(select(DiscardedEventRow).where(
                                     DiscardedEventRow.session_id == s.id).order_by(DiscardedEventRow.t))],
        }

    def erase(self, customer: str, *, by: str, t: float | None = None) -> dict[str, Any]:
        """Erase `customer` (GDPR art. 17): tracking stops now (a session still open is closed and
        charged, as on withdrawal), every consent is withdrawn, and everything is removed but what
        the law keeps, which the answer lists with why and until when."""
        _check_customer(customer)
        now = self._now(t)

        def erase_in(tx: Session, closed: list[str]) -> dict[str, Any]:
            # Checkout always (a withdrawal on file refuses their codes from now on), the others if given.
            purposes = [p for p in PURPOSES if p == REQUIRED or _active(_consents(tx, customer, p))]
            withdrawn = _withdraw(tx, customer, purposes, method="erasure", t=now, by=by,
                                  notice_version=self.config.notice_version)
            clips = self._delete_clips(tx, customer)  # first: the rows that name their events go next
            result = self._erase_rows(tx, customer, now, in_store=bool(closed))
            result.removed["review_clips"] = clips
            answer = {"customer": customer, "t": now, "sessions_closed": closed, "consents_withdrawn": withdrawn,
                      "removed": result.removed, "kept": result.kept}
            append_audit(tx, t=now, actor=by, op="erasure", customer=customer,
                         detail={k: v for k, v in answer.items() if k not in ("customer", "t")})
            return answer

        return self.runtime.stop_customer(customer, why="erased", then=erase_in, t=now)

    def _erase_rows(self, tx: Session, customer: str, now: float, *, in_store: bool) -> _Erasure:
        done = _Erasure({"sessions": 0})
        kept_receipts, held = [], []
        for s in tx.scalars(select(SessionRow).where(SessionRow.customer == customer)
                            .order_by(SessionRow.entered_t, SessionRow.id)).all():
            money = tx.scalar(select(func.count()).select_from(ChargeRow).where(ChargeRow.session_id == s.id))
            if not money and s.state == "charged":  # a basket of 0 that left: no sale, no accounting record
                rows = {"basket_events": len(basket_rows(tx, s.id))}
                delete_session(tx, s.id)
                _add(done.removed, {**rows, "sessions": 1})
                continue
            _add(done.removed, detach(tx, s, now))
            kept_receipts.append(s.id)
            if tx.scalar(select(func.count()).select_from(ReviewRow).where(
                    ReviewRow.session_id == s.id, ReviewRow.state == "open")):
                held.append(s.id)
        _add(done.removed, {"entries": _count(tx, delete(EntryRow).where(EntryRow.customer == customer))})
        years = self.config.receipt_years
        until = _when(_years_before(now, -years))
        if kept_receipts:
            done.keep(f"receipts of sessions {', '.join(kept_receipts)}: customer id, entry and exit times, lines, "
                      "totals, charges and refunds (their shelf events, tracks and entry records are removed)",
                      f"accounting law keeps receipts and payment records {years} years (GDPR art. 17(3)(b)); "
                      "money still owed is a legal claim (art. 17(3)(e))", until)
        if held:
            done.keep(f"open reviews of sessions {', '.join(held)}: the event a person must still decide",
                      "they hold the session's charge; removed with the tracking data once decided",
                      f"decided, then {self.config.tracking_days} days")
        if kept_receipts or tx.scalar(select(func.count()).select_from(LedgerRow).where(
                LedgerRow.customer == customer)):
            done.keep("payment records of the payment provider (amounts and references)",
                      f"accounting law keeps payment records {years} years (GDPR art. 17(3)(b))", until)
        if tx.scalar(select(func.count()).select_from(IdempotencyRow).where(
                IdempotencyRow.session_id.in_(kept_receipts))):
            hours = self.runtime.settings.idempotency_retention_s / 3600
            done.keep("the stored answers of exit requests (the receipt as answered to the gate)",
                      "SPEC section 7: a gate's retry of an exit gets the same answer",
                      f"{hours:g} hours after the exit")
        if in_store:
            done.keep("the camera track ids of the shopper still in the store, with no customer id or session",
                      "their later camera events are recognised and discarded, not recorded as someone's",
                      f"the track leaves, or {self.config.tracking_days} days")
        done.keep("consent records, with their withdrawal",
                  "proof that the processing before erasure had consent (GDPR art. 7(1)); the withdrawal refuses "
                  "this customer's entry codes from now on", f"{years} years after the withdrawal")
        done.keep("privacy audit log rows naming the customer (operations and counts; no basket, track or picture)",
                  "the append-only proof of how each request was handled (GDPR art. 5(2)); a removed row would "
                  "break the chain", "the life of the store")
        done.keep("nothing in private video is linked to a customer (faces blurred on the camera; the review "
                  "clips of their events are deleted above)",
                  "video cannot be searched by person; it is deleted by retention",
                  f"{self.config.video_days} days after recording")
        return done

    def _delete_clips(self, tx: Session, customer: str) -> int:
        """Delete the review clips of `customer`'s events (store_runtime/clips.py); how many."""
        from store_runtime.clips import customer_event_ids

        clips = getattr(self.runtime, "clips", None)
        return clips.delete(customer_event_ids(tx, customer)) if clips is not None else 0

    def purge(self, *, by: str, now: float | None = None) -> dict[str, Any]:
        """The retention job, once, on the store clock (or at `now`). The review clips' folder first
        (store_runtime/clips.py): clips nothing needs any more, then those older than `video_days`
        (wherever the folder is); one audit row says how many."""
        from store_runtime.clips import sweep

        now = self._now(now)
        clips = getattr(self.runtime, "clips", None)
        if clips is not None:
            with self.db.transaction() as tx:
                unneeded = sweep(tx, clips)
                folder = clips.folder.absolute()
                aged, size, problems = purge_media(folder.parent, [folder.name],
                                                   Cutoffs.at(now, self.config).video)
                append_audit(tx, t=now, actor=by, op="clip_purge", detail={
                    "unneeded": unneeded, "expired": aged, "bytes": size, "problems": problems})
        return purge(self.db, self.runtime.store, now=now, by=by)

    def retention_status(self, *, now: float | None = None) -> dict[str, Any]:
        """What the next purge would remove, and the last purge (only reads)."""
        return retention_status(self.db, self.runtime.store, now=self._now(now))

    def verify_audit(self) -> AuditCheck:
        """Recompute the audit chain. Only reads: a check changes nothing, and runs on a backup too."""
        return verify_audit(self.db)

    def record(self) -> dict[str, Any]:
        """The GDPR art. 30 record of processing of this store, from its running configuration."""
        return processing_record(self.runtime.store,
                                 idempotency_retention_s=self.runtime.settings.idempotency_retention_s)
