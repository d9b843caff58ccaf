"""Pictures for the operators: review clips, the drawn live view of each camera, the slot map.

| route | who | what |
|---|---|---|
| GET /v1/reviews/{review}/clip | operator | the review's blurred clip (`video/webm`); 404: none, or no consent |
| GET /v1/cameras/{camera}/slots | operator | shelf slots: product, polygon, count, capacity, occupancy, change |
| GET /operator/slots/{camera}.svg | operator (cookie or bearer) | the slot map, drawn here (no script) |
| GET /operator/live/{camera}.jpg | operator (cookie or bearer) | the newest blurred picture; `?overlay=1`: drawn |
| GET /operator/clips/{review}.webm | operator (cookie or bearer) | the same clip, for the console's `<video>` |

A clip is served only while every customer it may show has consented to review clips, and each
time it is, a `clip_viewed` row per customer goes into the privacy audit log. The drawn live view
(`walkout run` only) has the camera's person tracks (id, and session once bound), shelf slots
(coloured by occupancy) and entry and exit zones on it.

Every picture here was made of what a camera node's redactor let out (`vision.sinks`: clips of
`ClipFrame`s, JPEGs of `RedactedFrame`s); drawings go on the blurred picture only. Who may see a
clip, and how long it lives: store_runtime/clips.py. The slot counts and the drawings come from
what the nodes of `walkout run` believed (`LiveView`); `walkout serve`, which runs no node, says
`null` for them and takes a slot's last change from the shelf events it applied.

This router is included before the operator page's, so its `/operator/live/{camera}.jpg` (plain or
drawn) is the one served.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy import func, select
from starlette.concurrency import run_in_threadpool

from store_runtime.api.deps import AUTH_ERRORS, OperatorDep, RuntimeDep
from store_runtime.api.errors import ApiError
from store_runtime.api.routes.operator import BASE, OperatorCookieDep
from store_runtime.api.schemas import ID_PATTERN, ErrorOut
from store_runtime.clips import CONSOLE_CLIP, clip_customers, may_show
from store_runtime.db import BasketEventRow, ReviewRow, TrackRow
from store_runtime.privacy import append_audit
from store_runtime.runtime import StoreRuntime

__all__ = ["SlotOut", "router"]

router = APIRouter(responses=AUTH_ERRORS)
_ID = re.compile(ID_PATTERN)
MAX_CLIP_BYTES = 64 << 20  # a clip is a few hundred kB; a file this big is not one of ours
# Pictures are shown in pages or opened alone: nothing in them may run or load anything.
HEADERS = {"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'self'",
           "Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff"}


class SlotOut(BaseModel):
    slot: str
    gtin: str = Field(description="The planogram's product.")
    name: str = Field(description="The product's name in the catalog.")
    polygon: list[list[float]] = Field(description="The slot in the camera's pixels, [[x, y], ...].")
    capacity: int | None = Field(description="The most facings the shelf stage has counted in it (null: unknown).")
    count: int | None = Field(description="Facings the shelf stage counts now (null: not seen yet, or no node).")
    occupancy: float | None = Field(description="count / capacity, 0 to 1 (null when either is unknown).")
    changed_t: float | None = Field(description="Store time the count last changed, or of the newest shelf event "
                                                "applied at the slot (null: none seen).")


def _not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", what)


# ------------------------------------------------------------------------------------------ clips


@router.get("/v1/reviews/{review}/clip", tags=["reviews"], response_class=Response, responses={
    200: {"content": {"video/webm": {}}, "description": "the clip: WebM (VP8), every face blurred"},
    404: {"model": ErrorOut, "description": "no such review, no clip of it, or a customer it may show has not "
                                            "consented to review clips"},
})
def review_clip(review: str, operator: OperatorDep, runtime: RuntimeDep) -> Response:
    """The blurred clip of a review's shelf event. Served only while every customer it may show
    has `review_clips` consent; each time it is served, the operator and the review are recorded in
    the privacy audit log (one row per customer concerned, so their access export lists it)."""
    return _clip(review, operator.name, runtime)


@router.get(CONSOLE_CLIP.format(review="{review}"), include_in_schema=False)
def console_clip(review: str, operator: OperatorCookieDep, runtime: RuntimeDep) -> Response:
    """The same clip for the console's <video> (the login cookie is scoped to /operator)."""
    return _clip(review, operator.name, runtime)


def _clip(review: str, operator: str, runtime: StoreRuntime) -> Response:
    if not _ID.fullmatch(review) or runtime.clips is None:
        raise _not_found(f"no clip of review {review[:64]!r}")
    with runtime.db.transaction() as tx:
        row = tx.get(ReviewRow, review)
        path = runtime.clips.path(row.event_id) if row is not None else None
        if row is None or path is None or not may_show(tx, row):
            raise _not_found(f"no clip of review {review!r} to show (none was made, it was deleted, or a customer "
                             "it may show has not consented to review clips)")
        try:
            with path.open("rb") as f:
                data = f.read(MAX_CLIP_BYTES + 1)
        except OSError:  # deleted by a purge since we looked
            raise _not_found(f"no clip of review {review!r} any more") from None
        if len(data) > MAX_CLIP_BYTES:
            raise _not_found(f"the clip of review {review!r} is not one this store made")
        now = float(runtime.clock())
        for customer in clip_customers(tx, row) or []:
            append_audit(tx, t=now, actor=operator, op="clip_viewed", customer=customer,
                         detail={"review": row.id, "event": row.event_id, "camera": row.camera, "bytes": len(data)})
    return Response(data, media_type="video/webm", headers=HEADERS)


# ------------------------------------------------------------------------------------------ slots


def _camera(runtime: StoreRuntime, camera: str) -> Any:
    spec = runtime.store.config.cameras.get(camera) if _ID.fullmatch(camera) else None
    if spec is None:
        raise _not_found(f"no camera {camera[:64]!r} in this store")
    return spec


def _slots(request: Request, runtime: StoreRuntime, camera: str) -> list[SlotOut]:
    spec = _camera(runtime, camera)
    live_view = getattr(request.app.state, "live_view", None)
    ledger = live_view.ledgers.get(camera) if live_view is not None else None
    with runtime.db.transaction() as tx:
        applied = dict(tx.execute(select(BasketEventRow.slot, func.max(BasketEventRow.t)).where(
            BasketEventRow.camera == camera).group_by(BasketEventRow.slot)).all())
    out = []
    for slot in spec.slots:
        count = ledger.count.get(slot.id) if ledger is not None else None
        capacity = ledger.capacity.get(slot.id) if ledger is not None else None
        seen = [t for t in ((ledger.changed_t.get(slot.id) if ledger else None), applied.get(slot.id)) if t is not None]
        product = runtime.store.catalog.products.get(slot.gtin)
        out.append(SlotOut(slot=slot.id, gtin=slot.gtin, name=product.name if product else "",
                           polygon=[[float(x), float(y)] for x, y in slot.polygon], capacity=capacity or None,
                           count=count, occupancy=(min(1.0, count / capacity) if count is not None and capacity
                                                   else None), changed_t=max(seen) if seen else None))
    return out


@router.get("/v1/cameras/{camera}/slots", tags=["cameras"], response_model=list[SlotOut], responses={
    404: {"model": ErrorOut, "description": "no such camera in this store"}})
def camera_slots(camera: str, request: Request, _operator: OperatorDep, runtime: RuntimeDep) -> list[SlotOut]:
    """A camera's shelf slots and what is believed of them now (empty for a camera without slots)."""
    return _slots(request, runtime, camera)


@router.get(BASE + "/slots/{camera}.svg", include_in_schema=False)
def slot_map(camera: str, request: Request, _operator: OperatorCookieDep, runtime: RuntimeDep) -> Response:
    """The slot map of a camera: its slots in its own pixel space, coloured by occupancy."""
    from vision.overlay import SlotView, slot_map_svg

    slots = _slots(request, runtime, camera)
    spec = runtime.store.config.cameras[camera]
    views = [SlotView(s.slot, tuple((x, y) for x, y in s.polygon), s.count, s.capacity) for s in slots]
    svg = slot_map_svg(tuple(spec.size), views, title=f"camera {camera}: shelf slots",
                       names={s.slot: s.name for s in slots})
    return Response(svg, media_type="image/svg+xml", headers=HEADERS)


# ------------------------------------------------------------------------------------------ live view


def _bound_tracks(runtime: StoreRuntime, camera: str) -> dict[int, str]:
    with runtime.db.transaction() as tx:
        return {track: session for track, session in tx.execute(select(TrackRow.track, TrackRow.session_id).where(
            TrackRow.camera == camera, TrackRow.session_id.is_not(None), TrackRow.left_t.is_(None)))}


@router.get(BASE + "/live/{camera}.jpg", include_in_schema=False)
async def live_picture(camera: str, request: Request, _operator: OperatorCookieDep, runtime: RuntimeDep,
                       overlay: Annotated[bool, Query(description="draw tracks, slots and zones")] = False
                       ) -> Response:
    """The newest picture of `camera`, every face blurred (a RedactedFrame, as JPEG), plain or drawn."""
    from vision.overlay import Scene, SlotView, ZoneView, draw

    live_view = getattr(request.app.state, "live_view", None)
    if live_view is None or camera not in live_view.sizes:
        raise _not_found(f"no live view of camera {camera[:64]!r} here")
    if not overlay:
        data = await run_in_threadpool(live_view.jpeg, camera)
    else:
        spec = runtime.store.config.cameras[camera]
        sessions = await run_in_threadpool(_bound_tracks, runtime, camera)
        ledger = live_view.ledgers[camera]
        slots = [SlotView(s.id, tuple(s.polygon), ledger.count.get(s.id), ledger.capacity.get(s.id) or None)
                 for s in spec.slots]
        zones = [ZoneView(name, runtime.store.config.gates[name].kind, tuple(polygon))
                 for name, polygon in sorted((spec.zones or {}).items())]

        def drawn(image: Any, state: Any) -> Any:
            return draw(image, Scene(tracks=state.tracks if state else None, sessions=sessions, slots=slots,
                                     zones=zones))

        data = await run_in_threadpool(live_view.drawn_jpeg, camera, drawn)
    if data is None:
        raise ApiError(503, "no_picture_yet", f"camera {camera!r} has sent no picture yet",
                       headers={"Retry-After": "1"})
    return Response(data, media_type="image/jpeg", headers=HEADERS)
