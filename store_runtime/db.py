"""The store runtime's database: tables, how to open one, and the bearer credentials of the API.

`open_database(url)` gives a `Database`: SQLite by default (a file, or memory for tests), PostgreSQL
from a `postgresql://` URL. Opening runs the Alembic migrations in `store_runtime/migrations/` to
head, configured in code (no alembic.ini), so a fresh file and one written by an older walkout both
come out at the schema below. Nothing touches a database at import time.

SQLite is set up for money: WAL (readers never block the writer), `synchronous=FULL` (a committed
charge survives a power cut, not just a process crash), foreign keys on, and every transaction
`BEGIN IMMEDIATE`, so two writers queue on the lock instead of one failing half way through when
it tries to upgrade a read lock. PostgreSQL runs at READ COMMITTED; the code that must not race
(a session's basket, its charge) locks the session's row with `SELECT ... FOR UPDATE`.

Times are Unix seconds on the store clock (floats); money is integer cents.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from sqlalchemy import (
    JSON,
    Boolean,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    select,
    text,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, NoSuchModuleError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from sqlalchemy.pool import StaticPool

__all__ = [
    "Base",
    "BasketEventRow",
    "CameraOutageRow",
    "CameraStateRow",
    "ChargeRow",
    "ConsentRow",
    "Credential",
    "CredentialRow",
    "Database",
    "DiscardedEventRow",
    "EntryRow",
    "IdempotencyRow",
    "LedgerRow",
    "PrivacyAuditRow",
    "RefundRow",
    "ReviewRow",
    "Role",
    "SessionRow",
    "StoppedTrackRow",
    "TrackRow",
    "add_credential",
    "alembic_config",
    "check_credential",
    "digest",
    "open_database",
]

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
DEFAULT_URL = "sqlite:///walkout.db"
SQLITE_BUSY_TIMEOUT_S = 30.0  # a writer waits this long for the lock before giving up
MIGRATION_LOCK = 0x77616C6B6F7574  # "walkout": the PostgreSQL advisory lock that migrations take turns on

Role = Literal["gate", "node", "operator"]
ROLES: tuple[str, ...] = get_args(Role)

# Names that stay the same on every backend, so the migration and the models agree on them.
_NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=_NAMING)


def digest(*parts: object) -> str:
    """sha256 (hex) of `parts` joined by \x1f: the ids derived from what a row is about (so a replay
    names things the same), and the hashes kept of bearer tokens and entry codes."""
    return hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()


# --------------------------------------------------------------------------------------------
# Tables. The migrations (migrations/versions/) build exactly these; a change here needs a new
# revision (tests/store_runtime/test_db.py compares the two).


class CredentialRow(Base):
    """A bearer credential of the API; only the token's sha256 is kept."""

    __tablename__ = "credentials"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_t: Mapped[float] = mapped_column(Float)


class AppliedEventRow(Base):
    """Every node event applied, by id: a resent event is recognised and ignored."""

    __tablename__ = "applied_events"
    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    camera: Mapped[str] = mapped_column(String(64))
    t: Mapped[float] = mapped_column(Float)
    applied_t: Mapped[float] = mapped_column(Float)


class SessionRow(Base):
    """One admitted entry code: a customer's (or a family's) visit, and its basket's version.

    `state`: open (inside), review (left, an uncertain event waits for a person), charging (a
    charge is with the provider), charged, declined (left, the payment was declined).
    """

    __tablename__ = "sessions"
    # (0005) The recent receipts, the last to leave first (ties by id), of the store or of one
    # customer (the console): read in index order, nothing sorted.
    __table_args__ = (Index("ix_sessions_exited_t_id", "exited_t", "id"),
                      Index("ix_sessions_customer_exited_t_id", "customer", "exited_t", "id"))
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    customer: Mapped[str] = mapped_column(String(64))
    jti: Mapped[str] = mapped_column(String(64), unique=True)  # the used-token table: one session per code
    gate: Mapped[str] = mapped_column(String(64))
    party: Mapped[int] = mapped_column(Integer)
    entered_t: Mapped[float] = mapped_column(Float, index=True)
    exited_t: Mapped[float | None] = mapped_column(Float)
    exit_gate: Mapped[str | None] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), index=True)
    version: Mapped[int] = mapped_column(Integer, default=0)
    # Privacy (0002): when tracking stopped (consent withdrawn, customer erased), and when its
    # tracking data was removed, its basket kept as receipt lines.
    stopped_t: Mapped[float | None] = mapped_column(Float)
    stopped_why: Mapped[str | None] = mapped_column(String(16))  # withdrawn (consent to checkout) | erased
    detached_t: Mapped[float | None] = mapped_column(Float)


class EntryRow(Base):
    """A presented entry code, admitted or refused, with the reason; a refusal opens nothing."""

    __tablename__ = "entries"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    t: Mapped[float] = mapped_column(Float, index=True)
    gate: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(16))  # api | camera
    event_id: Mapped[str | None] = mapped_column(String(24))
    code_sha256: Mapped[str] = mapped_column(String(64))  # the code itself is a bearer token: not kept
    customer: Mapped[str | None] = mapped_column(String(64))
    jti: Mapped[str | None] = mapped_column(String(64))
    party: Mapped[int | None] = mapped_column(Integer)
    admitted: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str | None] = mapped_column(String(16))
    detail: Mapped[str] = mapped_column(String(300))
    session_id: Mapped[str | None] = mapped_column(ForeignKey("sessions.id"))


class TrackRow(Base):
    """A person track of a camera that came in through an entry zone; bound to a session or not
    (anonymous). The tracker's ids restart with its process, so a re-used id replaces the row."""

    __tablename__ = "tracks"
    __table_args__ = (UniqueConstraint("camera", "track"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    camera: Mapped[str] = mapped_column(String(64))
    track: Mapped[int] = mapped_column(Integer)
    zone: Mapped[str] = mapped_column(String(64))
    entered_t: Mapped[float] = mapped_column(Float)
    session_id: Mapped[str | None] = mapped_column(ForeignKey("sessions.id"), index=True)
    left_t: Mapped[float | None] = mapped_column(Float)
    left_zone: Mapped[str | None] = mapped_column(String(64))  # "lost": lost, and found again as another track
    lost_t: Mapped[float | None] = mapped_column(Float)  # when the tracker lost it mid-floor, until it is found


class BasketEventRow(Base):
    """A pick or put in a session's basket; the basket is the fold of these in (t, id) order."""

    __tablename__ = "basket_events"
    __table_args__ = (Index("ix_basket_events_session_t", "session_id", "t"),)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id"))
    t: Mapped[float] = mapped_column(Float)
    action: Mapped[str] = mapped_column(String(4))  # pick | put
    gtin: Mapped[str] = mapped_column(String(14))
    qty: Mapped[int] = mapped_column(Integer)
    unit_cents: Mapped[int] = mapped_column(Integer)
    slot: Mapped[str | None] = mapped_column(String(64))
    camera: Mapped[str | None] = mapped_column(String(64))
    confidence: Mapped[float | None] = mapped_column(Float)
    source: Mapped[str] = mapped_column(String(16))  # camera | review | dispute
    review_id: Mapped[str | None] = mapped_column(String(40))
    applied_t: Mapped[float] = mapped_column(Float)


class ReviewRow(Base):
    """Something a person must decide: an uncertain shelf event, an anonymous person, a dispute.

    `session_id` is the session the system believes it concerns (None: nobody's); an open review
    with a session holds that session's charge. The event's content is kept as seen.
    """

    __tablename__ = "reviews"
    __table_args__ = (
        Index("ix_reviews_session_state", "session_id", "state"),
        Index("ix_reviews_camera_track", "camera", "track"),
    )
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # shelf | anonymous | dispute
    state: Mapped[str] = mapped_column(String(16), index=True)  # open | accepted | rejected
    t: Mapped[float] = mapped_column(Float)
    created_t: Mapped[float] = mapped_column(Float)
    session_id: Mapped[str | None] = mapped_column(ForeignKey("sessions.id"))
    candidates: Mapped[list] = mapped_column(JSON)
    reasons: Mapped[list] = mapped_column(JSON)
    event_id: Mapped[str | None] = mapped_column(String(24))
    camera: Mapped[str | None] = mapped_column(String(64))
    track: Mapped[int | None] = mapped_column(Integer)
    action: Mapped[str | None] = mapped_column(String(4))
    gtin: Mapped[str | None] = mapped_column(String(14))
    qty: Mapped[int | None] = mapped_column(Integer)
    slot: Mapped[str | None] = mapped_column(String(64))
    confidence: Mapped[float | None] = mapped_column(Float)
    decided_by: Mapped[str | None] = mapped_column(String(64))
    decided_t: Mapped[float | None] = mapped_column(Float)
    note: Mapped[str | None] = mapped_column(String(500))
    applied_session_id: Mapped[str | None] = mapped_column(ForeignKey("sessions.id"))


class ChargeRow(Base):
    """One attempt to take money for a session: `exit` when it leaves, `adjust` when a review or
    late event changed an already charged basket. Written (pending) before the provider is asked,
    in the transaction that decided it, so a crash leaves a row to finish rather than a mystery."""

    __tablename__ = "charges"
    __table_args__ = (UniqueConstraint("session_id", "attempt"),)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id"))
    attempt: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))  # exit | adjust
    amount_cents: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    state: Mapped[str] = mapped_column(String(16), index=True)  # pending | captured | declined
    authorisation: Mapped[str | None] = mapped_column(String(64))
    capture: Mapped[str | None] = mapped_column(String(64))
    decline_reason: Mapped[str | None] = mapped_column(String(300))
    created_t: Mapped[float] = mapped_column(Float)
    done_t: Mapped[float | None] = mapped_column(Float)


class RefundRow(Base):
    """Money given back against one captured charge (a dispute accepted, a basket corrected)."""

    __tablename__ = "refunds"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id"), index=True)
    charge_id: Mapped[str] = mapped_column(ForeignKey("charges.id"))
    review_id: Mapped[str | None] = mapped_column(String(40))
    amount_cents: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16), index=True)  # pending | done
    provider_ref: Mapped[str | None] = mapped_column(String(64))
    created_t: Mapped[float] = mapped_column(Float)
    done_t: Mapped[float | None] = mapped_column(Float)


class IdempotencyRow(Base):
    """An exit request's idempotency key: claimed in flight, then done with its first response."""

    __tablename__ = "idempotency_keys"
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_sha256: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))  # in_flight | done
    status: Mapped[int | None] = mapped_column(Integer)
    response: Mapped[str | None] = mapped_column(Text)  # the exact JSON text first answered
    session_id: Mapped[str | None] = mapped_column(String(40))
    charge_id: Mapped[str | None] = mapped_column(String(40))
    created_t: Mapped[float] = mapped_column(Float, index=True)
    claimed_t: Mapped[float] = mapped_column(Float)


class LedgerRow(Base):
    """The local payment provider's books: one row per operation, by the caller's key."""

    __tablename__ = "payment_ledger"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), unique=True)
    op: Mapped[str] = mapped_column(String(16))  # authorise | capture | refund
    customer: Mapped[str | None] = mapped_column(String(64))
    amount_cents: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str | None] = mapped_column(String(3))
    # A capture's authorisation, a refund's capture.
    parent: Mapped[str | None] = mapped_column(String(40), index=True)
    ok: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str | None] = mapped_column(String(300))
    t: Mapped[float] = mapped_column(Float)


class ConsentRow(Base):
    """One consent of a customer to one purpose: given (with the notice version shown and how), and
    withdrawn when it is. A new grant is a new row, so the history stays as proof (GDPR art. 7(1)).
    `given_t` is None for a withdrawal recorded with no consent on file (it refuses entry)."""

    __tablename__ = "consents"
    __table_args__ = (Index("ix_consents_customer_purpose", "customer", "purpose"),)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    customer: Mapped[str] = mapped_column(String(64))
    purpose: Mapped[str] = mapped_column(String(16))  # checkout | review_clips | analytics
    notice_version: Mapped[str] = mapped_column(String(200))
    method: Mapped[str] = mapped_column(String(16))  # app | gate_screen
    given_t: Mapped[float | None] = mapped_column(Float)
    withdrawn_t: Mapped[float | None] = mapped_column(Float)
    withdrawn_method: Mapped[str | None] = mapped_column(String(16))  # app | gate_screen | erasure
    recorded_by: Mapped[str] = mapped_column(String(64))


class StoppedTrackRow(Base):
    """A person track whose customer's tracking stopped while it was in view: its later events are
    discarded. No customer or session here, so it outlives an erasure; gone when the track leaves,
    when a new person takes its id, or with the tracking data."""

    __tablename__ = "stopped_tracks"
    camera: Mapped[str] = mapped_column(String(64), primary_key=True)
    track: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    reason: Mapped[str] = mapped_column(String(16))  # withdrawn | erased
    t: Mapped[float] = mapped_column(Float, index=True)


class DiscardedEventRow(Base):
    """A node event of a stopped track: not applied, only this note of it (with its session while
    one is kept)."""

    __tablename__ = "discarded_events"
    id: Mapped[str] = mapped_column(String(24), primary_key=True)  # the event's id
    kind: Mapped[str] = mapped_column(String(16))
    camera: Mapped[str] = mapped_column(String(64))
    t: Mapped[float] = mapped_column(Float, index=True)
    session_id: Mapped[str | None] = mapped_column(ForeignKey("sessions.id"), index=True)
    reason: Mapped[str] = mapped_column(String(16))  # the stopped track's reason
    discarded_t: Mapped[float] = mapped_column(Float)


class PrivacyAuditRow(Base):
    """Append-only, hash-chained log of every privacy operation: `sha256` covers the row's content
    and `prev_sha256` (the row before's `sha256`), so an edited or removed row breaks the chain.
    `prev_sha256` is unique: two writers can never both append after the same row."""

    __tablename__ = "privacy_audit"
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    t: Mapped[float] = mapped_column(Float)
    actor: Mapped[str] = mapped_column(String(64))
    op: Mapped[str] = mapped_column(String(32))
    customer: Mapped[str | None] = mapped_column(String(64), index=True)
    detail: Mapped[dict] = mapped_column(JSON)
    prev_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    sha256: Mapped[str] = mapped_column(String(64))


class CameraOutageRow(Base):
    """A camera's outage as its node reported it (0003): `kind` the worst seen (stalled: the stream
    open, no frames; disconnected: the stream lost), from `start_t` (the last frame before it) to
    `end_t` (the first frame after; None while it lasts). Keyed by camera and start, so every report
    of one outage (stalled, then disconnected, then recovered, in any order) lands on one row.
    The sessions it may have affected are the ones inside during it (store_runtime/outages.py)."""

    __tablename__ = "camera_outages"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    camera: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # stalled | disconnected
    start_t: Mapped[float] = mapped_column(Float, index=True)
    end_t: Mapped[float | None] = mapped_column(Float, index=True)  # (0005) the purge finds ended ones by it
    reconnects: Mapped[int] = mapped_column(Integer)
    detail: Mapped[str] = mapped_column(String(300))
    reported_t: Mapped[float] = mapped_column(Float)  # store clock when the runtime first heard of it


class CameraStateRow(Base):
    """The newest status a camera's node reported (0003): one row per camera, so it stays small."""

    __tablename__ = "camera_states"
    camera: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))  # ok | stalled | disconnected | recovered
    t: Mapped[float] = mapped_column(Float)  # when the node made that report
    lag_s: Mapped[float | None] = mapped_column(Float)
    reconnects: Mapped[int] = mapped_column(Integer)


# --------------------------------------------------------------------------------------------
# Opening


class Database:
    """An engine and one way to use it: `with db.transaction() as tx:` is one transaction, committed
    when the block ends and rolled back if it raises."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # SQLite has one writer at a time and every transaction here is a writer (BEGIN IMMEDIATE),
        # so this process's threads take turns on a lock of ours, in order, instead of in SQLite's
        # busy handler, which sleeps and polls (up to 100 ms a try): under load that gave exits a
        # p99 of seconds (`walkout bench load`). Other processes on the file still meet the busy
        # handler. An in-memory database is one shared connection: the lock keeps it to one thread.
        one_writer = engine.dialect.name == "sqlite"
        self._lock: AbstractContextManager[Any] = threading.RLock() if one_writer else nullcontext()

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        with self._lock, Session(self.engine, expire_on_commit=False) as tx, tx.begin():
            yield tx

    def close(self) -> None:
        self.engine.dispose()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # The driver's own transaction handling is switched off so that ours (BEGIN IMMEDIATE) rules.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")  # memory databases answer "memory": fine
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
    finally:
        cursor.close()


def _begin_immediate(connection: Any) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def _engine(url: str) -> Engine:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ValueError(f"database URL {url!r}: expected sqlite:///PATH, sqlite:// (memory) "
                         "or postgresql://USER@HOST/DB") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.drivername not in ("sqlite", "sqlite+pysqlite"):
            raise ValueError(f"database URL {url!r}: SQLite is served by its built-in driver only")
        memory = parsed.database in (None, "", ":memory:")
        if not memory:
            folder = Path(parsed.database).expanduser().resolve().parent
            if not folder.is_dir():
                raise ValueError(f"database URL {url!r}: folder {folder} does not exist")
        extra: dict[str, Any] = {"poolclass": StaticPool} if memory else {}
        engine = create_engine(parsed, connect_args={"check_same_thread": False,
                                                     "timeout": SQLITE_BUSY_TIMEOUT_S}, **extra)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _begin_immediate)
        return engine
    if backend == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")  # psycopg 3, the `scale` extra
        try:
            return create_engine(parsed, pool_pre_ping=True)
        except (ModuleNotFoundError, NoSuchModuleError) as e:
            raise ValueError(f"database URL {parsed.render_as_string(hide_password=True)!r}: PostgreSQL "
                             f"driver {parsed.drivername!r} is not installed (psycopg 3 comes with "
                             f"walkout[scale]): {e}") from None
    raise ValueError(f"database URL {parsed.render_as_string(hide_password=True)!r}: expected sqlite:///PATH, "
                     "sqlite:// (memory) or postgresql://USER@HOST/DB")


def alembic_config(connection: Any = None) -> Any:
    """Alembic's configuration, in code: the migrations folder, and the connection to run on.

    A new revision, after changing the tables above:
    `python -c "from alembic import command; from store_runtime.db import alembic_config, open_database;
    command.revision(alembic_config(open_database('sqlite:///x.db').engine.connect()), 'what', autogenerate=True)"`
    """
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def _migrate(engine: Engine) -> None:
    from alembic import command

    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            # Two processes opening a new database at once (two `walkout serve` behind one load
            # balancer) would both create the tables, and the second fail on the first's. The
            # second waits here until the first has committed, then finds the schema at head.
            # (SQLite's BEGIN IMMEDIATE already makes them take turns.)
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        command.upgrade(alembic_config(connection), "head")


def open_database(url: str | None = None) -> Database:
    """The database at `url`, migrated to the newest schema.

    `url`: None (`sqlite:///walkout.db` in the working folder), `sqlite:///PATH`, `sqlite://` (in
    memory, for tests: one connection shared by every thread) or `postgresql://USER:PW@HOST/DB`
    (psycopg 3). A URL that names none of these raises ValueError naming it (password hidden).
    """
    engine = _engine(DEFAULT_URL if url is None else url)
    try:
        _migrate(engine)
    except Exception:
        engine.dispose()
        raise
    return Database(engine)


# --------------------------------------------------------------------------------------------
# Credentials


@dataclass(frozen=True, slots=True)
class Credential:
    name: str
    role: Role


def add_credential(db: Database, role: Role, name: str, *, t: float = 0.0) -> str:
    """A new bearer token for `name` with `role`; returned once, only its sha256 is stored.

    Raises ValueError for an unknown role, a bad name, or a name that already has a credential.
    """
    if role not in ROLES:
        raise ValueError(f"credential role: expected one of {', '.join(ROLES)}, got {role!r}")
    if not isinstance(name, str) or not 1 <= len(name) <= 64 or not name.isprintable():
        raise ValueError(f"credential name: expected 1 to 64 printable characters, got {name!r}")
    token = f"wo_{role}_{secrets.token_urlsafe(32)}"
    try:
        with db.transaction() as tx:
            tx.add(CredentialRow(name=name, role=role, token_sha256=digest(token), created_t=t))
    except IntegrityError:
        raise ValueError(f"credential name {name!r} is already taken") from None
    return token


def check_credential(db: Database, token: str) -> Credential | None:
    """Who holds `token`, or None. Looked up by hash, so timing says nothing about the token."""
    if not isinstance(token, str) or not 1 <= len(token) <= 200:
        return None
    with db.transaction() as tx:
        row = tx.scalars(select(CredentialRow).where(CredentialRow.token_sha256 == digest(token))).first()
        return None if row is None else Credential(row.name, row.role)  # type: ignore[arg-type]
