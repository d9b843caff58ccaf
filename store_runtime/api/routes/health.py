"""GET /healthz (no credential: is it up, and can it read its database) and GET /metrics
(Prometheus text; an operator's credential unless the settings make it public)."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from store_runtime.api.deps import (
    AUTH_ERRORS,
    MetricsDep,
    RuntimeDep,
    SettingsDep,
    bearer_scheme,
    get_credential,
    require,
)
from store_runtime.api.errors import ApiError
from store_runtime.api.schemas import ErrorOut, HealthOut

router = APIRouter(tags=["health"])
log = logging.getLogger("walkout.api")


@router.get("/healthz", response_model=HealthOut, responses={503: {"model": ErrorOut}})
def healthz(runtime: RuntimeDep) -> HealthOut:
    """Up, with its database answering."""
    try:
        with runtime.db.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception:
        log.warning("healthz: the database does not answer", exc_info=True)
        raise ApiError(503, "database_unavailable", "the database does not answer") from None
    return HealthOut(status="ok", store=runtime.store.config.store_id)


def _metrics_reader(request: Request, settings: SettingsDep, runtime: RuntimeDep,
                    auth: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)]) -> None:
    if not settings.metrics_public:
        require("operator")(get_credential(request, runtime, auth))


@router.get("/metrics", dependencies=[Depends(_metrics_reader)], response_class=Response,
            responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format"},
                       **AUTH_ERRORS})
def metrics(metrics: MetricsDep) -> Response:
    """Request counts and latencies by route and status, and the store's own counts."""
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
