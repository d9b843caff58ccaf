"""Review clips: a few blurred seconds around each shelf event, for the person who reviews it.

Camera node side (`ClipRecorder`). The node redacts every frame it lets out (`vision.privacy`);
the recorder keeps a sample of those redacted pictures at the clip rate (`fps`, 5 by default: a
third of a 15 fps camera) as small JPEGs (`vision.sinks.clip_frame`) in a ring bounded by count
(`buffer_s`) and bytes (`max_buffer_bytes`). A shelf event is decided seconds after the product
moved (when the shopper steps away: 0.5 to 3 s in the samples), so when one is published the
recorder waits until its pictures reach `after_s` past the event's time, then writes the pictures
from `before_s` before to `after_s` after it as one WebM (VP8) named by the event's id,
`<clips>/<event id>.webm`. Raw frames are never kept: only what the redactor let out, and no
redaction is run twice (the node pays for it once, for the private video or the live view). At most
`per_minute` clips a minute of camera time are written (the rest are counted, not written), so a
busy shelf cannot make the node spend its time encoding. The same recording gives the same clips,
byte for byte: the clock is the frames', the encoder single-threaded and bit-exact.

The node cannot know who the shopper is (it sees anonymous tracks) nor which events the store
runtime will doubt, so it writes a clip for every shelf event it can afford; the runtime decides
who may see one and how long it stays.

Store runtime side (`ClipStore` and the consent rules). A customer consents to `review_clips` or
not (store_runtime/privacy.py). An operator sees the clip of a review only when every customer it
may concern has that consent now: the session the system believes did it, or, for an event
nobody could be told for, every session inside at the time (whoever it was consented). Clips go:
- when a review closes, unless its customers consented (their clip stays for a later dispute,
  until retention ends);
- at every retention purge (`sweep`): a clip that no open review holds and whose event is not in
  the basket of a consenting customer; and every clip older than `video_days`, like private video
  (`privacy.media_dirs` lists `clips`);
- at once, on erasure of a customer or withdrawal of their `review_clips` (or `checkout`) consent:
  the clips of their sessions' events.
An operator's look at a clip is recorded in the privacy audit log (op `clip_viewed`, one row per
customer it concerns), so the customer's access export lists it.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from store_runtime.db import AppliedEventRow, BasketEventRow, ConsentRow, DiscardedEventRow, ReviewRow, SessionRow

if TYPE_CHECKING:
    from store_runtime.events import ShelfAction
    from vision.privacy import RedactedFrame
    from vision.sinks import ClipFrame

__all__ = ["CLIP_PURPOSE", "CONSOLE_CLIP", "ClipConfig", "ClipRecorder", "ClipStats", "ClipStore", "clip_customers",
           "clip_unneeded", "clip_url", "console_clip_url", "customer_event_ids", "may_show", "sweep"]

log = logging.getLogger("walkout.clips")

CLIP_PURPOSE = "review_clips"
CONSOLE_CLIP = "/operator/clips/{review}.webm"
SUFFIX = ".webm"
_EVENT_ID = re.compile(r"[0-9a-f]{24}")  # store_runtime.events.event_id
_MINUTE = 60.0


class ClipConfig(BaseModel):
    """How a camera node makes review clips. Strict: a wrong type or range names the field."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    before_s: Annotated[float, Field(ge=0, le=10, description="Seconds of picture before the event's time.")] = 2.0
    after_s: Annotated[float, Field(ge=0, le=10, description="Seconds of picture after the event's time.")] = 2.0
    fps: Annotated[float, Field(ge=0.5, le=30, description="Pictures a second kept for clips (a sample of the "
                                                           "camera's; the clip plays them at their own times).")] = 5.0
    max_side: Annotated[int, Field(ge=160, le=1920, description="Longer side of a clip's picture, pixels.")] = 640
    quality: Annotated[int, Field(ge=30, le=100, description="JPEG quality of the pictures kept.")] = 80
    buffer_s: Annotated[float, Field(ge=1, le=120, description="How far back the kept pictures reach: an event "
                                                               "decided later than this after it happened gets a "
                                                               "shorter clip, or none.")] = 20.0
    max_buffer_bytes: Annotated[int, Field(ge=1 << 20, le=1 << 30, description="Bytes of kept pictures at "
                                                                               "most; the oldest go first.")] = 16 << 20
    per_minute: Annotated[int, Field(ge=1, le=120, description="Clips written a minute of camera time at most; "
                                                               "events past it get no clip (counted).")] = 6
    bitrate: Annotated[int, Field(ge=100_000, le=8_000_000, description="VP8 bits a second.")] = 600_000

    @property
    def buffer_frames(self) -> int:
        return int(self.buffer_s * self.fps) + 1


@dataclass
class ClipStats:
    """What a recorder did: clips written, events it gave no clip and why, the time spent."""

    written: int = 0
    over_budget: int = 0  # events past `per_minute`
    no_pictures: int = 0  # events whose window was no longer (or never) in the buffer
    failed: int = 0  # a write that raised (disk full...): counted, logged, the node goes on
    frames_kept: int = 0
    encode_seconds: float = 0.0
    last_error: str | None = None

    @property
    def ms_per_clip(self) -> float | None:
        return round(1000 * self.encode_seconds / self.written, 1) if self.written else None

    def as_dict(self) -> dict[str, object]:
        return {"written": self.written, "over_budget": self.over_budget, "no_pictures": self.no_pictures,
                "failed": self.failed, "frames_kept": self.frames_kept, "ms_per_clip": self.ms_per_clip,
                "last_error": self.last_error}


@dataclass(frozen=True)
class _Pending:
    event: str
    start: float
    end: float


class ClipRecorder:
    """One camera's review clips (see the module's docstring). The node calls `frame` with every
    redacted picture it lets out, `event` with every shelf event it publishes, and `flush` when the
    recording ends."""

    def __init__(self, folder: Path, camera: str, config: ClipConfig | None = None) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.camera = camera
        self.config = config or ClipConfig()
        self.stats = ClipStats()
        self._ring: deque[ClipFrame] = deque()
        self._bytes = 0
        self._next_t: float | None = None
        self._pending: list[_Pending] = []
        self._accepted: deque[float] = deque()  # event times of the clips accepted in the last minute
        self._newest = -float("inf")

    @property
    def memory(self) -> dict[str, int]:
        """Pictures and bytes held, and events waiting: bounded by the config."""
        return {"frames": len(self._ring), "bytes": self._bytes, "pending": len(self._pending)}

    def frame(self, picture: RedactedFrame) -> None:
        from vision.sinks import clip_frame, require_redacted

        require_redacted(picture, "ClipRecorder.frame")
        cfg = self.config
        self._newest = max(self._newest, picture.t)
        # A sample at the clip rate, on the frames' own clock: the same recording keeps the same pictures.
        if self._next_t is None or picture.t >= self._next_t - 1e-6:
            kept = clip_frame(picture, cfg.max_side, cfg.quality)
            self._ring.append(kept)
            self._bytes += len(kept.jpeg)
            self.stats.frames_kept += 1
            step = 1.0 / cfg.fps
            self._next_t = picture.t + step if self._next_t is None else self._next_t + step
            if self._next_t <= picture.t:  # frames were dropped: start the rate again from this one
                self._next_t = picture.t + step
            while len(self._ring) > cfg.buffer_frames or self._bytes > cfg.max_buffer_bytes:
                self._bytes -= len(self._ring.popleft().jpeg)
        self._write_due()

    def event(self, action: ShelfAction) -> None:
        """A shelf event was published: its clip is written once its pictures are in."""
        cfg = self.config
        while self._accepted and self._accepted[0] <= action.t - _MINUTE:
            self._accepted.popleft()
        if len(self._accepted) >= cfg.per_minute:
            self.stats.over_budget += 1
            return
        self._accepted.append(action.t)
        self._pending.append(_Pending(action.id, action.t - cfg.before_s, action.t + cfg.after_s))
        self._write_due()

    def flush(self) -> None:
        """The recording ended: write what is waiting with the pictures there are."""
        waiting, self._pending = self._pending, []
        for pending in waiting:
            self._write(pending)

    def _write_due(self) -> None:
        due = [p for p in self._pending if p.end <= self._newest]
        if due:
            self._pending = [p for p in self._pending if p.end > self._newest]
            for pending in due:
                self._write(pending)

    def _write(self, pending: _Pending) -> None:
        from vision.sinks import ClipWriter

        frames = [f for f in self._ring if pending.start - 1e-6 <= f.t <= pending.end + 1e-6]
        if not frames:
            self.stats.no_pictures += 1
            return
        path = self.folder / f"{pending.event}{SUFFIX}"
        # Written beside and renamed: a reader never sees half a clip. The name keeps the media suffix,
        # so that the retention purge removes one a crash left behind.
        part = self.folder / f".{pending.event}.part{SUFFIX}"
        started = time.perf_counter()
        try:
            metadata = {"WALKOUT_EVENT": pending.event, "WALKOUT_CAMERA": self.camera,
                        "WALKOUT_FRAMES": ",".join(str(f.index) for f in frames)}
            with ClipWriter(part, frames[0].size, bitrate=self.config.bitrate, metadata=metadata) as writer:
                for kept in frames:
                    writer.write(kept)
            os.replace(part, path)
        except Exception as e:  # a clip is a help for a person, never a reason to stop seeing the shelf
            self.stats.failed += 1
            self.stats.last_error = f"{path.name}: {e}"[:300]
            log.warning("review clip %s not written: %s", path, e)
            part.unlink(missing_ok=True)
            return
        self.stats.written += 1
        self.stats.encode_seconds += time.perf_counter() - started


# --------------------------------------------------------------------------------------------
# The store runtime's side


class ClipStore:
    """The folder the camera nodes write clips into, as the store runtime reads it: one file per
    event id. Names are checked, so no request can reach a file outside it."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def path(self, event_id: str | None) -> Path | None:
        """The clip of `event_id` when there is one (a regular file, not a link), else None."""
        if not isinstance(event_id, str) or not _EVENT_ID.fullmatch(event_id):
            return None
        path = self.folder / f"{event_id}{SUFFIX}"
        try:
            return path if path.is_file() and not path.is_symlink() else None
        except OSError:
            return None

    def ids(self) -> list[str]:
        """Event ids of every clip in the folder, sorted."""
        try:
            names = os.listdir(self.folder)
        except FileNotFoundError:
            return []
        ids = (n[:-len(SUFFIX)] for n in names if n.endswith(SUFFIX))
        return sorted(i for i in ids if self.path(i) is not None)

    def delete(self, event_ids: Iterable[str]) -> int:
        """Remove the clips of `event_ids`; how many there were."""
        removed = 0
        for event_id in sorted(set(event_ids)):
            path = self.path(event_id)
            if path is not None:
                path.unlink(missing_ok=True)
                removed += 1
        return removed


def clip_url(review_id: str) -> str:
    """The API's path of a review's clip (bearer credential)."""
    return f"/v1/reviews/{review_id}/clip"


def console_clip_url(review_id: str) -> str:
    """The console's path of the same clip: a browser's `<video>` sends the login cookie, which is
    scoped to /operator, not the bearer credential that /v1 takes."""
    return CONSOLE_CLIP.format(review=review_id)


def _consented(tx: Session, customers: Sequence[str]) -> bool:
    if not customers:
        return False
    active = set(tx.scalars(select(ConsentRow.customer).where(
        ConsentRow.customer.in_(customers), ConsentRow.purpose == CLIP_PURPOSE,
        ConsentRow.given_t.is_not(None), ConsentRow.withdrawn_t.is_(None))))
    return all(c in active for c in customers)


def clip_customers(tx: Session, review: ReviewRow) -> list[str] | None:
    """The customers a review's clip may show: its session's, or for an event nobody could be told
    for, those of every session inside at the time. None when one of those sessions has no customer
    left (erased, detached): then nobody can have consented."""
    sessions = [review.session_id] if review.session_id else list(review.candidates or [])
    customers = []
    for sid in sessions:
        session = tx.get(SessionRow, sid)
        if session is None or not session.customer:
            return None
        customers.append(session.customer)
    return sorted(set(customers))


def may_show(tx: Session, review: ReviewRow) -> bool:
    """Whether an operator may see `review`'s clip: a shelf event's, every customer it may concern
    has `review_clips` consent now."""
    if review.kind != "shelf" or not review.event_id:
        return False
    customers = clip_customers(tx, review)
    return customers is not None and _consented(tx, customers)


def customer_event_ids(tx: Session, customer: str) -> set[str]:
    """Ids of the node events behind `customer`'s sessions: their baskets' shelf events and the
    shelf events of reviews believed to be theirs or decided into their baskets."""
    sessions = select(SessionRow.id).where(SessionRow.customer == customer)
    ids = set(tx.scalars(select(BasketEventRow.id).where(BasketEventRow.session_id.in_(sessions))))
    ids |= set(tx.scalars(select(ReviewRow.event_id).where(
        ReviewRow.event_id.is_not(None),
        or_(ReviewRow.session_id.in_(sessions), ReviewRow.applied_session_id.in_(sessions)))))
    return ids


def _still_needed(tx: Session, event_id: str) -> bool:
    """An open review holds it (a person must decide, and consent may still come), or it is in the
    basket of a customer who consented (a later dispute may need it, until retention ends)."""
    reviews = list(tx.scalars(select(ReviewRow).where(ReviewRow.event_id == event_id)))
    if any(r.state == "open" for r in reviews):
        return True
    sessions = {r.applied_session_id or r.session_id for r in reviews} - {None}
    row = tx.get(BasketEventRow, event_id)
    if row is not None:
        sessions.add(row.session_id)
    customers = [s.customer for sid in sorted(sessions) if (s := tx.get(SessionRow, sid)) is not None and s.customer]
    return bool(customers) and _consented(tx, sorted(set(customers)))


def clip_unneeded(tx: Session, event_id: str) -> bool:
    """Whether the clip of `event_id` may go now: no open review holds it and no customer who
    consented to review clips has its event in their basket (a review just decided, say)."""
    return not _still_needed(tx, event_id)


def sweep(tx: Session, clips: ClipStore, batch: int = 500) -> int:
    """Delete the clips nothing needs any more (see the module's docstring); how many. A clip of an
    event the runtime has not applied (or discarded) yet is left for the next sweep: a node may
    write a clip before its event comes over the bus."""
    ids = clips.ids()
    done = []
    for at in range(0, len(ids), batch):
        part = ids[at:at + batch]
        known = set(tx.scalars(select(AppliedEventRow.id).where(AppliedEventRow.id.in_(part)))) | set(
            tx.scalars(select(DiscardedEventRow.id).where(DiscardedEventRow.id.in_(part))))
        done += [i for i in part if i in known and not _still_needed(tx, i)]
    return clips.delete(done)
