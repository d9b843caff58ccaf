"""POST /v1/events: a camera node posts its events (entry reads, zone crossings, shelf actions, and
its camera's status: outages, recoveries, heartbeats)."""

from __future__ import annotations

from fastapi import APIRouter

from store_runtime.api.deps import AUTH_ERRORS, MetricsDep, NodeDep, RuntimeDep, act_for_camera
from store_runtime.api.errors import ApiError
from store_runtime.api.schemas import ErrorOut, EventsIn, EventsOut

router = APIRouter(prefix="/v1/events", tags=["events"], responses=AUTH_ERRORS)


@router.post("", response_model=EventsOut, responses={
    403: {"model": ErrorOut, "description": "not a node credential, or events of another camera"},
    422: {"model": ErrorOut, "description": "an event is not valid (the field is named)"},
})
def post_events(body: EventsIn, node: NodeDep, runtime: RuntimeDep, metrics: MetricsDep) -> EventsOut:
    """Apply the events in order. Each is applied once by its id: a node that resends its outbox
    after a crash changes nothing that was applied already."""
    for event in body.events:
        act_for_camera(node, event.camera, runtime)
    for n, event in enumerate(body.events):
        try:
            runtime.apply(event)
        except ValueError as e:
            raise ApiError(422, "invalid_event", f"body.events[{n}]: {e}", applied=n) from None
        metrics.events.labels(event.kind).inc()
    return EventsOut(received=len(body.events))
