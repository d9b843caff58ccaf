"""GET /v1/cameras: each camera of the store layout as its node last reported it — state (ok,
stalled, disconnected, unknown), frame lag, reconnects — and its newest outages with the sessions
each flags (`StoreRuntime.camera_health`, store_runtime/outages.py). Operators only."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from store_runtime.api.deps import AUTH_ERRORS, OperatorDep, RuntimeDep
from store_runtime.api.schemas import CameraOut

router = APIRouter(tags=["cameras"], responses=AUTH_ERRORS)


@router.get("/v1/cameras", response_model=list[CameraOut])
def list_cameras(_operator: OperatorDep, runtime: RuntimeDep,
                 outages: Annotated[int, Query(ge=0, le=200, description="How many of each camera's newest "
                                                                          "outages to list.")] = 20) -> list[CameraOut]:
    """Every camera of the store layout, in name order: how it is, and its newest outages."""
    return [CameraOut.model_validate(camera) for camera in runtime.camera_health(outages)]
