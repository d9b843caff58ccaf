"""The events a camera node sends to the store runtime: ids, times, tracks, zones, products; no pixels.

Every event has an `id` derived from what it says (camera, kind, frame, track, slot...), so a
replay of the same recording gives the same ids, and a node that resends an event after a crash
sends the same id: the store runtime applies each id once.

Besides what its camera saw, a node reports how its camera is (`CameraStatus`, kind `camera`): an
outage (stalled: the stream is open but no frame comes; disconnected: the stream is lost), its
recovery, and a heartbeat (`ok`) now and then with the frame lag. Only live nodes send them; a
replay reads files, which never stall, so its events are what they always were.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[0-9a-f]{24}$", description="Stable id: the same event always has the same id.")
    t: float = Field(description="Seconds on the store clock (the scenario clock in a replay).")
    camera: str = Field(max_length=64)

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), separators=(",", ":"), sort_keys=True)


class EntryRead(_Event):
    """A gate camera read an entry code and checked it (SPEC section 4)."""

    kind: Literal["entry"] = "entry"
    gate: str = Field(max_length=64)
    # One past the longest code a verifier accepts (vision.entry_code.MAX_CODE_LENGTH): a longer code is
    # cut to this by the node and stays refused as too long when the runtime checks it again.
    code: str = Field(max_length=1025, description="The code's text, for the runtime's own check.")
    admitted: bool
    refusal: str | None = None
    detail: str = Field(max_length=300)
    customer: str | None = None
    jti: str | None = None
    party: int | None = None


class TrackZone(_Event):
    """A person track came in through an entry zone, left through an exit zone, appeared in the
    middle of the floor (a person the tracker had lost, found again under a new id; dated when first
    seen), or was lost there (vision.gates.ZoneWatcher). `zone` is "" for the last two."""

    kind: Literal["entered", "exited", "appeared", "lost"]
    track: int
    zone: str = Field(max_length=64)


class ShelfAction(_Event):
    """A pick or put at a shelf slot, charged to a person track."""

    kind: Literal["shelf"] = "shelf"
    action: Literal["pick", "put"]
    track: int = Field(description="The person track the hand belongs to; -1 when nobody could be told.")
    gtin: str = Field(pattern=r"^\d{8,14}$")
    qty: int = Field(ge=1, le=99)
    slot: str = Field(max_length=64)
    confidence: float = Field(ge=0, le=1, description="The product identity's confidence.")
    track_confidence: float = Field(default=1.0, ge=0, le=1,
                                    description="Confidence that the hand belongs to `track`.")
    doubt: Literal["two_hands", "track_regained"] | None = Field(
        default=None, description="A reason the node itself doubts who did it: two hands in the slot at once, "
        "or the person's track lost and found again around the event; the runtime sends it to review.")
    sources: tuple[Literal["planogram", "label", "memory", "appearance"], ...] = Field(
        default=(), max_length=4, description="The shelf stage's evidence for `gtin` (vision.shelf): the slot's "
        "planned product, its shelf-edge label, what the slot remembers was stocked or put there, the product's "
        "look. A product other than the slot's planned one needs label, memory or appearance (a misplaced item).")
    rivals: tuple[tuple[Annotated[int, Field(ge=0)], Annotated[float, Field(ge=0, le=1)]], ...] = Field(
        default=(), max_length=3, description="Other person tracks the attribution's votes went to, (track, share) "
        "by share: the runtime adds up the shares of the persons who came in on `track`'s code (a family).")


class CameraStatus(_Event):
    """How a node's camera is: `stalled` or `disconnected` (an outage began at `start_t`; the same
    outage may be reported stalled first and disconnected later, with the same `start_t`),
    `recovered` (frames again from `end_t`; `outage` says what it was at worst), or `ok` (a
    heartbeat: no outage). Times are on the store clock; `t` is when the node reported it."""

    kind: Literal["camera"] = "camera"
    status: Literal["ok", "stalled", "disconnected", "recovered"]
    outage: Literal["stalled", "disconnected"] | None = Field(
        default=None, description="The outage reported or ended: stalled (open, no frames) or disconnected "
                                  "(the stream lost); None for ok.")
    start_t: float | None = Field(default=None, ge=0, description="The outage's start: the last frame before it, "
                                                                  "or when the node started if it never had one.")
    end_t: float | None = Field(default=None, ge=0, description="recovered: the first frame after the outage.")
    reconnects: int = Field(default=0, ge=0, description="Times the node's source reconnected since it started.")
    lag_s: float | None = Field(default=None, ge=0, description="The oldest frame age (seconds from the camera to "
                                                                "the node's pipeline) since the last report.")
    detail: str = Field(default="", max_length=300, description="The source's last error, without passwords.")

    @model_validator(mode="after")
    def _consistent(self) -> CameraStatus:
        if self.status == "ok":
            if self.outage is not None or self.start_t is not None or self.end_t is not None:
                raise ValueError("an ok status has no outage, start_t or end_t")
            return self
        if self.outage is None or self.start_t is None:
            raise ValueError(f"a {self.status} status needs outage and start_t")
        if self.status != "recovered":
            if self.outage != self.status or self.end_t is not None:
                raise ValueError(f"a {self.status} status has outage {self.status!r} and no end_t")
        elif self.end_t is None:
            raise ValueError("a recovered status needs end_t")
        # The times are not held to each other (start_t <= end_t <= t): a node's clock may step, and
        # a forged window is no worse ordered than not; the runtime reads an end before the start as
        # the start (store_runtime/outages.py).
        return self


NodeEvent = Annotated[EntryRead | TrackZone | ShelfAction | CameraStatus, Field(discriminator="kind")]
_ADAPTER: TypeAdapter[NodeEvent] = TypeAdapter(NodeEvent)


def camera_status_id(camera: str, status: str, start_t: float | None, t: float) -> str:
    """A camera status's id: an outage's reports by its start (a resend is the same event), heartbeats
    by their time."""
    when = t if status == "ok" else start_t
    return event_id(camera, "camera", status, f"{when:.3f}")


def parse_event(text: str | bytes) -> EntryRead | TrackZone | ShelfAction | CameraStatus:
    """An event from the bus; raises pydantic's ValidationError naming the field on anything else."""
    return _ADAPTER.validate_json(text)


def event_id(*parts: object) -> str:
    """The id of the event that these parts identify (e.g. camera, kind, frame index, track, slot)."""
    return hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()[:24]
