"""Request and response bodies of the API (SPEC section 7), kept apart: inputs refuse unknown
fields and bound every string and number, so nothing a client sends reaches the runtime in a shape
it does not expect; outputs say exactly what goes back (the OpenAPI document is built from them).
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Discriminator, Field, StringConstraints, Tag

from store_runtime.events import CameraStatus, EntryRead, ShelfAction, TrackZone

__all__ = [
    "AuditCheckOut",
    "CameraFlagOut",
    "CameraOut",
    "CameraOutageOut",
    "ConsentIn",
    "ConsentsOut",
    "DisputeIn",
    "EntryIn",
    "EntryOut",
    "ErasureOut",
    "ErrorOut",
    "EventsIn",
    "EventsOut",
    "ExitIn",
    "ExportOut",
    "HealthOut",
    "LineOut",
    "PurgeOut",
    "ReceiptOut",
    "RecordOut",
    "RefundOut",
    "ResolveIn",
    "ReviewOut",
    "SessionOut",
    "WithdrawIn",
    "WithdrawalOut",
]

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"  # gate, camera and session names (as store.yaml's ids)
MAX_CODE_CHARS = 4096  # a real entry code is ~250; longer ones are refused as malformed up to this
MAX_EVENTS = 500
MAX_INT = 2**31 - 1  # what every integer column holds on every backend
MAX_T = 1e11  # Unix seconds: year 5138; anything later is a mistake


def _sound_text(value: str) -> str:
    # JSON may carry lone surrogates ("\ud800") that no database or hash can encode, and NUL that
    # PostgreSQL refuses in text.
    if "\x00" in value:
        raise ValueError("text must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("text must be valid Unicode (no lone surrogates)") from None
    return value


def _text(max_length: int, min_length: int = 0) -> Any:
    return Annotated[str, StringConstraints(min_length=min_length, max_length=max_length),
                     AfterValidator(_sound_text)]


Code = _text(MAX_CODE_CHARS)
Note = _text(500)
Words = _text(300, min_length=1)
NoticeVersion = _text(200, min_length=1)
Name = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
Gtin = Annotated[str, StringConstraints(pattern=r"^\d{8,14}$")]
CUSTOMER_PATTERN = r"^[A-Za-z0-9._-]{1,64}$"  # an entry code's `cid` (SPEC section 4)
Purpose = Literal["checkout", "review_clips", "analytics"]  # as store_runtime.privacy.PURPOSES
ConsentMethod = Literal["app", "gate_screen"]  # as store_runtime.privacy.METHODS


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class _Out(BaseModel):
    model_config = ConfigDict(extra="ignore")


# --------------------------------------------------------------------------------------------
# Inputs


class EntryIn(_In):
    """A gate's scanner read an entry code."""

    gate: Name = Field(description="The entry gate that read it (the credential's own gate).")
    code: Code = Field(description="The QR code's text, WO1.<payload>.<sig> (SPEC section 4).")


class ExitIn(_In):
    """A shopper walks out through a gate."""

    gate: Name = Field(description="The exit gate (the credential's own gate).")
    session: Name = Field(description="The session leaving, as POST /v1/entries answered it.")


def _sound_event(event: EntryRead | TrackZone | ShelfAction | CameraStatus
                 ) -> EntryRead | TrackZone | ShelfAction | CameraStatus:
    # The event types say what an event is; here is what the API lets into the database.
    if not math.isfinite(event.t) or not 0 <= event.t <= MAX_T:
        raise ValueError(f"t: expected finite Unix seconds between 0 and {MAX_T:.0f}")
    for name, value in event.model_dump().items():
        if isinstance(value, str):
            if len(value) > MAX_CODE_CHARS:
                raise ValueError(f"{name}: expected at most {MAX_CODE_CHARS} characters")
            _sound_text(value)
        elif isinstance(value, int) and not isinstance(value, bool) and not -1 <= value <= MAX_INT:
            raise ValueError(f"{name}: expected a whole number from -1 to {MAX_INT}")
        elif isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{name}: expected a finite number")
    return event


# The event types say what an event is; these say it with the bounds `_sound_event` holds them to,
# so that the document tells a client (or a fuzzer) which events the API takes.
def _seconds() -> Any:
    return Field(ge=0, le=MAX_T, description="Unix seconds on the store clock (the scenario clock in a replay).")


def _track(description: str) -> Any:
    return Field(ge=-1, le=MAX_INT, description=description)


# `kind` is required here (the event types default it): the API tells events apart by it.
class EntryReadIn(EntryRead):
    kind: Literal["entry"]
    t: float = _seconds()
    refusal: str | None = Field(default=None, max_length=MAX_CODE_CHARS)
    customer: str | None = Field(default=None, max_length=MAX_CODE_CHARS)
    jti: str | None = Field(default=None, max_length=MAX_CODE_CHARS)
    party: int | None = Field(default=None, ge=-1, le=MAX_INT)


class TrackZoneIn(TrackZone):
    t: float = _seconds()
    track: int = _track("The person track.")


class ShelfActionIn(ShelfAction):
    kind: Literal["shelf"]
    t: float = _seconds()
    track: int = _track("The person track the hand belongs to; -1 when nobody could be told.")


class _CameraStatusIn(CameraStatus):
    kind: Literal["camera"]
    t: float = _seconds()
    reconnects: int = Field(default=0, ge=0, le=MAX_INT, description="Times the node's source reconnected.")
    lag_s: float | None = Field(default=None, ge=0, le=MAX_T, description="The oldest frame age since the last "
                                                                          "report, seconds.")
    detail: str = Field(default="", max_length=300, description="The source's last error, without passwords.")


def _start() -> Any:
    return Field(ge=0, le=MAX_T, description="The outage's start: the last frame before it, or when the node "
                                             "started if it never had one (store clock).")


# One input type per status, so that the document says which fields each status has (an `ok` has
# no outage; a `recovered` has its end) and a client or a fuzzer cannot send one half filled.
class CameraOkIn(_CameraStatusIn):
    """A heartbeat: the camera is fine."""

    status: Literal["ok"]
    outage: None = None
    start_t: None = None
    end_t: None = None


class CameraStalledIn(_CameraStatusIn):
    """An outage began: the stream is open but no frame came for the stall threshold."""

    status: Literal["stalled"]
    outage: Literal["stalled"]
    start_t: float = _start()
    end_t: None = None


class CameraDisconnectedIn(_CameraStatusIn):
    """An outage began, or a stall became one: the stream is lost."""

    status: Literal["disconnected"]
    outage: Literal["disconnected"]
    start_t: float = _start()
    end_t: None = None


class CameraRecoveredIn(_CameraStatusIn):
    """An outage ended: frames again from `end_t`."""

    status: Literal["recovered"]
    outage: Literal["stalled", "disconnected"]
    start_t: float = _start()
    end_t: float = Field(ge=0, le=MAX_T, description="The first frame after the outage (store clock).")


def _event_tag(value: Any) -> str | None:
    """Which input type an event is: its `kind`, and for a camera's status its `status` too (one type
    each, see above). A tag the union does not know is refused naming the tags it knows."""
    if isinstance(value, dict):
        kind, status = value.get("kind"), value.get("status")
    else:
        kind, status = getattr(value, "kind", None), getattr(value, "status", None)
    if not isinstance(kind, str):
        return None
    return f"camera.{status}" if kind == "camera" else kind


# Tagged by a function rather than a plain `discriminator="kind"`: the camera's status types share
# their kind, and OpenAPI cannot say a discriminator within a discriminator.
EventIn = Annotated[
    Annotated[EntryReadIn, Tag("entry")] | Annotated[TrackZoneIn, Tag("entered")]
    | Annotated[TrackZoneIn, Tag("exited")] | Annotated[TrackZoneIn, Tag("appeared")]
    | Annotated[TrackZoneIn, Tag("lost")] | Annotated[ShelfActionIn, Tag("shelf")]
    | Annotated[CameraOkIn, Tag("camera.ok")] | Annotated[CameraStalledIn, Tag("camera.stalled")]
    | Annotated[CameraDisconnectedIn, Tag("camera.disconnected")]
    | Annotated[CameraRecoveredIn, Tag("camera.recovered")],
    Discriminator(_event_tag)]


class EventsIn(_In):
    """Events of one camera node, oldest first; each is applied once, by its id."""

    events: list[Annotated[EventIn, AfterValidator(_sound_event)]] = Field(
        min_length=1, max_length=MAX_EVENTS,
        description="EntryRead, TrackZone, ShelfAction or CameraStatus events (by `kind`).")


class ResolveIn(_In):
    """An operator's decision on a review."""

    decision: Literal["accept", "reject"]
    note: Note = Field(default="", description="Why, for the record.")
    session: Name | None = Field(default=None, description="shelf/anonymous accept: the session it belongs to, "
                                                           "if not the one the system believed.")
    gtin: Gtin | None = Field(default=None, description="shelf accept: the product, if the camera got it wrong.")
    qty: int | None = Field(default=None, ge=0, le=99, description="shelf accept: the quantity, if wrong (at least "
                            "1); camera_outage accept: with gtin, the quantity of that product the basket should "
                            "hold (0 takes it off).")


class DisputeIn(_In):
    """A customer contests a line of a charged receipt."""

    session: Name
    gtin: Gtin
    qty: int = Field(ge=1, le=99)
    reason: Words = Field(description="What the customer says.")


class ConsentIn(_In):
    """A customer's consent, recorded by an operator for the app or the gate screen that took it."""

    purposes: list[Purpose] = Field(min_length=1, max_length=3, description="What the customer consents to.")
    method: ConsentMethod = Field(description="Where the customer gave it: the app, or a gate's screen.")
    notice_version: NoticeVersion | None = Field(
        default=None, description="The privacy notice version shown (default: store.yaml's privacy.notice_version).")


class WithdrawIn(_In):
    """A customer withdraws consent; withdrawing checkout stops tracking them at the next event."""

    purposes: list[Purpose] = Field(min_length=1, max_length=3, description="What the customer withdraws.")
    method: ConsentMethod = Field(description="Where the customer withdrew it: the app, or a gate's screen.")


# --------------------------------------------------------------------------------------------
# Outputs


class ErrorOut(_Out):
    """Every error: a code to branch on, a sentence for people; `fields` for a request that failed
    validation, `request_id` for an unexpected error."""

    error: str
    detail: str
    fields: list[dict[str, str]] | None = None
    request_id: str | None = None


class EntryOut(_Out):
    session: str
    customer: str
    party: int


class LineOut(_Out):
    gtin: str
    qty: int
    unit_cents: int


class CameraFlagOut(_Out):
    """A camera outage the session was inside during: the camera may have missed part of its visit."""

    camera: str
    kind: Literal["stalled", "disconnected"]
    start_t: float
    end_t: float | None = Field(description="None: the camera is still out.")
    affects: list[Literal["shelf", "entry", "exit"]] = Field(
        description="What the camera watches that the session did during the outage: shelf (picks and puts), "
                    "entry or exit (it came in or left through a gate the camera sees). Empty: it was inside.")
    review: str | None = Field(description="The camera_outage review on the session (it holds the charge while "
                                           "open), if the outage opened one.")


class SessionOut(_Out):
    """A session and its live basket. `status`: open (inside), review, charging, charged, declined
    (left, payment declined: open for a person to settle)."""

    session: str
    customer: str
    party: int
    gate: str
    entered_t: float
    exited_t: float | None
    status: str
    lines: list[LineOut]
    total_cents: int
    version: int = Field(description="Rises with every basket event.")
    currency: str
    tracks: int = Field(description="People bound to the session so far.")
    open_reviews: int = Field(description="Open reviews that hold its charge.")
    camera_outages: list[CameraFlagOut] = Field(default_factory=list,
                                                description="Camera outages while it was inside.")


class RefundOut(_Out):
    id: str
    amount_cents: int
    state: str


class ReceiptOut(_Out):
    """The receipt of SPEC section 5 (times in Unix seconds), with the exit charge's id."""

    customer: str
    session: str
    entered_t: float
    exited_t: float | None
    lines: list[LineOut]
    total_cents: int
    status: Literal["charged", "review", "open"]
    charge: str | None = Field(description="The exit charge's id once captured (None for a basket of 0).")
    currency: str
    charged_cents: int
    refunded_cents: int
    refunds: list[RefundOut]
    camera_outages: list[CameraFlagOut] = Field(default_factory=list,
                                                description="Camera outages while the shopper was inside.")


class EventsOut(_Out):
    received: int = Field(description="Events in the request; each was applied, or had been before.")


class ReviewOut(_Out):
    id: str
    kind: Literal["shelf", "anonymous", "dispute", "camera_outage"]
    status: Literal["open", "accepted", "rejected"]
    t: float
    session: str | None
    customer: str | None
    candidates: list[str]
    reasons: list[str]
    codes: list[str]
    event: dict[str, Any]
    decided_by: str | None
    decided_t: float | None
    note: str | None
    applied_session: str | None
    clip: str | None = Field(default=None, description="URL path of the event's blurred review clip "
                             "(GET it with an operator credential: video/webm), or null: no clip, or a customer it "
                             "may show has not consented to review clips.")


class CameraOutageOut(_Out):
    start_t: float
    end_t: float | None = Field(description="None: still going.")
    kind: Literal["stalled", "disconnected"]
    sessions: list[str] = Field(description="The sessions it flags: inside while it lasted.")


class CameraOut(_Out):
    """A camera of the store layout as its node last reported it (StoreRuntime.camera_health)."""

    camera: str
    state: Literal["ok", "stalled", "disconnected", "unknown"] = Field(
        description="An outage still open gives its kind; no report yet, or none for a while, is unknown.")
    last_event_t: float | None = Field(description="When its node last reported, store clock.")
    reconnects: int
    lag_s: float | None = Field(description="The oldest frame age in the node's last report, seconds.")
    outages: list[CameraOutageOut] = Field(description="Its newest outages, oldest first.")


class HealthOut(_Out):
    status: Literal["ok"]
    store: str


class ConsentStateOut(_Out):
    state: Literal["given", "withdrawn", "none"]
    required: bool = Field(description="Entering the store needs it (checkout).")
    notice_version: str | None
    method: str | None
    given_t: float | None
    withdrawn_t: float | None


class ConsentRecordOut(_Out):
    purpose: str
    notice_version: str
    method: str
    given_t: float | None = Field(description="None: a withdrawal recorded with no consent on file.")
    withdrawn_t: float | None
    withdrawn_method: str | None
    recorded_by: str


class ConsentsOut(_Out):
    """Where each purpose stands for a customer, and every consent record, oldest first."""

    customer: str
    purposes: dict[str, ConsentStateOut]
    history: list[ConsentRecordOut]


class WithdrawalOut(ConsentsOut):
    sessions_closed: list[str] = Field(description="Sessions that were open: closed now, their basket so far "
                                                   "charged (or held for an open review).")


class KeptOut(_Out):
    what: str
    why: str
    until: str


class ErasureOut(_Out):
    """What an erasure removed (counts by kind) and what it kept, why and until when."""

    customer: str
    t: float
    sessions_closed: list[str]
    consents_withdrawn: list[str]
    removed: dict[str, int]
    kept: list[KeptOut]


class ExportOut(_Out):
    """Everything held on a customer (an access request)."""

    customer: str
    store: str
    generated_t: float
    consents: list[ConsentRecordOut]
    sessions: list[dict[str, Any]] = Field(description="Each with its receipt, shelf events, tracks, reviews and "
                                                       "discarded events.")
    entries: list[dict[str, Any]]
    payments: list[dict[str, Any]]
    privacy_operations: list[dict[str, Any]]


class PurgeOut(_Out):
    t: float
    cutoffs: dict[str, float] = Field(description="Store times before which video, tracking data and receipts go.")
    video_files: int
    video_bytes: int
    removed: dict[str, int]
    problems: list[str]


class AuditCheckOut(_Out):
    ok: bool
    rows: int
    head: str = Field(description="sha256 of the newest row: write it down elsewhere to detect a cut-off tail.")
    broken_at: int | None = Field(description="The first broken row's seq.")
    problem: str | None


class RecordOut(_Out):
    """The GDPR art. 30(1) record of processing, from the running configuration."""

    record: str
    store: str
    controller: dict[str, str]
    notice_version: str
    purposes: list[dict[str, Any]]
    data_subjects: list[str]
    categories: list[dict[str, Any]]
    recipients: list[str]
    transfers: str
    retention: dict[str, Any]
    safeguards: list[str]
