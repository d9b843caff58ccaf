"""The exit-gate API (SPEC section 7) and the operators' routes, as a FastAPI app.

Nothing happens at import: `create_app(settings)` builds the app, and the store runtime (store
files, database, payment provider) is either handed to it — `walkout serve` opens it first, so a
wrong store.yaml is a one-line error before any port is opened — or opened by the app's lifespan.

Routes (one router per resource, in `routes/`):

| route | who | what |
|---|---|---|
| POST /v1/entries | gate | an entry code read: 201 session; 401/403/409/410/422 refusals |
| POST /v1/exits (+ Idempotency-Key) | gate | close and charge: 200 receipt, 402, 404, 409, 422 |
| GET /v1/sessions/{session} | gate, operator | the live basket |
| GET /v1/receipts/{session} | gate, operator | the receipt after exit |
| GET /v1/receipts | operator | every receipt |
| POST /v1/events | node | camera-node events, applied once each by id |
| GET /v1/reviews, POST /v1/reviews/{id}/decision | operator | the review queue |
| POST /v1/disputes | operator | a customer contests a receipt line |
| /v1/privacy/... | operator | consents, export, erasure, retention purge, audit check, art. 30 record |
| GET /v1/reviews/{id}/clip | operator | a review's blurred clip (WebM), with consent only; audited (`media.py`) |
| GET /v1/cameras/{camera}/slots | operator | a camera's shelf slots: product, count, occupancy, last change |
| GET /v1/cameras | operator | each camera's state, lag, reconnects and outages with the sessions they flag |
| GET /healthz | anyone | up, database answering |
| GET /metrics | operator (or anyone, if public) | Prometheus text |
| GET /operator (and /) | operator (login form, cookie) | the operator page (`routes/operator.py`) |
| GET /operator/live/{camera}.jpg[?overlay=1] | operator (cookie) | a camera's blurred picture, drawn (`media.py`) |
| GET /operator/slots/{camera}.svg | operator (cookie) | the slot map of a shelf camera (`media.py`) |

Each call of the runtime is its own database transaction (an exit is a few, by design: the charge
row is committed before the provider is asked); errors are JSON (`errors.py`).

With `retention_every_s` (`walkout serve`: every hour) the app runs the privacy retention purge in
the background, once at start and then at that interval, for as long as it serves.

`api_server(app, ...)` is the uvicorn server `walkout serve` and `walkout run` use: its shutdown
first sets `app.state.stopping`, which ends the console's event streams (GET /operator/stream) at
once. uvicorn waits for open responses before the app's lifespan hears of the shutdown, so without
it an open console would hold the shutdown until its stream ended, or be cancelled with an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI

from store_runtime.api.errors import install_handlers
from store_runtime.api.metrics import Metrics
from store_runtime.api.middleware import JsonLogFormatter, RequestLog
from store_runtime.api.routes import (
    cameras,
    entries,
    events,
    exits,
    health,
    media,
    operator,
    privacy,
    reviews,
    sessions,
)
from store_runtime.api.schemas import ErrorOut
from store_runtime.api.settings import ApiSettings, load_store_for
from store_runtime.clips import ClipStore
from store_runtime.db import Database, open_database
from store_runtime.payments import PaymentProvider
from store_runtime.privacy import PrivacyOffice
from store_runtime.runtime import RuntimeSettings, StoreRuntime

if TYPE_CHECKING:
    import uvicorn

__all__ = ["ApiSettings", "api_server", "configure_logging", "create_app", "open_runtime"]

log = logging.getLogger("walkout.api")

API_VERSION = "1"


def open_runtime(settings: ApiSettings, *, provider: Callable[[Database], PaymentProvider] | None = None,
                 clock: Callable[[], float] = time.time, runtime_settings: RuntimeSettings | None = None
                 ) -> StoreRuntime:
    """The store runtime `settings` describe: store files, then the database (migrated), then the
    payment provider (`provider(db)`, default the local one); charges a crash left pending are
    finished. Review clips are read from the `clips` folder beside store.yaml, where the camera
    nodes write them (`walkout node --clips`). Raises ConfigError / ValueError naming what is wrong."""
    store = load_store_for(settings)
    db = open_database(settings.db_url)
    try:
        runtime = StoreRuntime(db, store, provider=provider(db) if provider else None, clock=clock,
                               settings=runtime_settings)
        runtime.clips = ClipStore(store.root / "clips")
        try:
            finished = runtime.recover()
        except Exception:  # the provider away at boot: the first retry of each exit finishes its charge
            log.warning("could not finish the charges left pending at boot", exc_info=True)
        else:
            if finished:
                log.info("finished %d charges and refunds left pending", finished)
    except Exception:
        db.close()
        raise
    return runtime


async def _retention_job(app: FastAPI, every_s: float) -> None:
    """The privacy retention purge, now and then every `every_s`; a failed run is logged and the
    next one tries again (nothing it removes is needed by anything else)."""
    while True:
        try:
            report = await asyncio.to_thread(PrivacyOffice(app.state.runtime).purge, by="retention-job")
        except Exception:
            log.exception("the retention purge failed; it runs again in %g s", every_s)
        else:
            log.info("retention purge: %d video files, %s", report["video_files"], report["removed"])
        await asyncio.sleep(every_s)


def create_app(settings: ApiSettings, *, runtime: StoreRuntime | None = None,
               retention_every_s: float | None = None) -> FastAPI:
    """The API app. With `runtime`, the app serves it (and leaves closing it to the caller);
    without, the app opens one from `settings` when it starts and closes it when it stops. With
    `retention_every_s`, it runs the privacy retention purge at start and at that interval."""
    metrics = Metrics(lambda: getattr(app.state, "runtime", None))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if runtime is None:
            app.state.runtime = open_runtime(settings)
        job = asyncio.create_task(_retention_job(app, retention_every_s)) if retention_every_s else None
        try:
            yield
        finally:
            if job is not None:
                job.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await job
            if runtime is None:
                app.state.runtime.db.close()

    # Every refusal is an ErrorOut (errors.py), a request that fails validation included: the
    # document says so for every route, instead of FastAPI's own 422 shape, which is never sent.
    invalid = {413: {"model": ErrorOut, "description": "the body is larger than the server takes (max_body_bytes)"},
               422: {"model": ErrorOut, "description": "the request is not valid: `fields` names what and why"}}
    app = FastAPI(title="walkout store runtime", version=API_VERSION, lifespan=lifespan, responses=invalid,
                  description="The exit-gate API of SPEC section 7 and the operators' routes. Every /v1 call "
                              "carries `Authorization: Bearer <credential>` (walkout credentials add).")
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.runtime = runtime
    app.state.stopping = threading.Event()  # set by api_server's shutdown: long responses end
    install_handlers(app)
    app.add_middleware(RequestLog, metrics=metrics, max_body_bytes=settings.max_body_bytes)
    # media before operator: its /operator/live/{camera}.jpg also draws (?overlay=1).
    for module in (entries, exits, sessions, events, reviews, privacy, health, cameras, media, operator):
        app.include_router(module.router)
    return app


def api_server(app: FastAPI, **config: Any) -> uvicorn.Server:
    """A uvicorn server of `app` (`config`: uvicorn.Config's keywords) whose shutdown sets
    `app.state.stopping` before it waits for the open responses (see the module's docstring)."""
    import uvicorn

    class Server(uvicorn.Server):
        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            app.state.stopping.set()
            await super().shutdown(sockets)

    return Server(uvicorn.Config(app, **config))


def configure_logging(level: int = logging.INFO) -> None:
    """JSON lines on stderr for walkout's loggers and uvicorn's (its access log is off: ours says more)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLogFormatter())
    for name in ("walkout", "uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level)
        logger.propagate = False
