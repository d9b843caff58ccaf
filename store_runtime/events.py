"""The events a camera node sends to the store runtime: ids, times, tracks, zones, products; no pixels.

Every event has an `id` derived from what it says (camera, kind, frame, track, slot...), so a
replay of the same recording gives the same ids, and a node that resends an event after a crash
sends the same id: the store runtime applies each id once.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter


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
    """A person track came in through an entry zone, or left through an exit zone."""

    kind: Literal["entered", "exited"]
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


NodeEvent = Annotated[EntryRead | TrackZone | ShelfAction, Field(discriminator="kind")]
_ADAPTER: TypeAdapter[NodeEvent] = TypeAdapter(NodeEvent)


def parse_event(text: str | bytes) -> EntryRead | TrackZone | ShelfAction:
    """An event from the bus; raises pydantic's ValidationError naming the field on anything else."""
    return _ADAPTER.validate_json(text)


def event_id(*parts: object) -> str:
    """The id of the event that these parts identify (e.g. camera, kind, frame index, track, slot)."""
    return hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()[:24]
