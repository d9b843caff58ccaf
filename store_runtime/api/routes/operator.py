"""The operator console's routes: live store, review queue, receipts and disputes, a shopper's
timeline, camera health, privacy screens (pages in `store_runtime/api/console/`).

| route | what |
|---|---|
| GET / | redirects to the console |
| GET /operator | the live store: pictures, sessions inside with baskets, who left, entry codes (or the login form) |
| GET /operator/panel | the live store's changing part (the page reads it again when the stream says so) |
| GET /operator/stream | server-sent events: `change` with the store's change counter, whenever it moves |
| POST /operator/login, /operator/logout | form field `token`: an operator credential; the cookie (`console/auth.py`) |
| GET /operator/reviews | the open review queue: what the system believed, why, the clip; one-click decisions |
| POST /operator/reviews/{id}/decision | `decision` accept/reject, optional `gtin`, `qty`, `session`, `note` |
| GET /operator/receipts?q= | receipts of those who left (of a customer or session), disputes and refunds |
| POST /operator/disputes | `session`, `gtin`, `qty`, `reason`: a customer contests a line (a review) |
| GET /operator/sessions/{session} | a shopper's timeline: entry, takes and puts, reviews, exit, charges |
| GET /operator/cameras | camera health (state, last event, lag, reconnects, outages) and the nodes' frame counts |
| GET /operator/privacy?verify=1 | retention status, the newest audit rows, the audit chain checked |
| GET /operator/privacy/customers/{customer} | consents and visits; POST .../export downloads the access export |
| GET, POST /operator/privacy/customers/{customer}/erase | erasure: confirm (type the id), then what was removed, kept |
| POST /operator/privacy/purge | the retention purge, now |
| GET /operator/live/..., /operator/clips/..., /operator/slots/... | pictures and clips: `routes/media.py` |
| GET /operator/static/{file} | the console's stylesheet and script |

Who: an operator, by the credential itself, either in `Authorization: Bearer` (scripts) or in the
cookie that the login form sets (HttpOnly, SameSite=Strict, scoped to /operator: the /v1 API takes
bearer credentials only). The pages change things (review decisions, disputes, erasure, purge), so
every form carries a per-login CSRF token that the server checks against the cookie
(`console/auth.py`); a POST without it is refused (403).

Every action — login, logout, review decisions (with the charges and refunds they ordered),
disputes, and the privacy requests — appends a row to the hash-chained audit log
(`store_runtime/privacy.py`) under the operator's credential name. Decisions and disputes are
audited by the runtime in the transaction that makes them (the /v1 API's alike); the privacy office
does the same for its requests; login and logout write their own row.

Pages read bounded queries only (the newest 50 of a table, counts by SQL): a page open all day
costs the same on the store's first hour as on its thousandth. The live page reads its panel again
only when the runtime's change counter (`store_runtime/changes.py`) moves: the stream compares an
integer in memory four times a second and sends `change` when it has moved. A stream ends after
`STREAM_S` (the browser reconnects at once), or as soon as the server starts stopping
(`app.state.stopping`, set by `api.api_server`'s shutdown): a server stopping waits for no page.

The live view comes from `app.state.live_view` (`walkout run` puts its `LiveView` there; `walkout
serve` runs no camera nodes and shows none): JPEG of redacted frames only. Camera health comes from
`StoreRuntime.camera_health()` where the runtime has it, frame counts from `app.state.live_status`.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import re
import time
from collections.abc import AsyncIterator
from functools import cache
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from store_runtime.api.console import pages
from store_runtime.api.console.auth import (
    BASE,
    COOKIE,
    COOKIE_MAX_AGE_S,
    ActionDep,
    FormDep,
    Operator,
    ViewerDep,
    audit,
    cookie_value,
    csrf_for,
    holder,
    read_form,
    security_headers,
)
from store_runtime.api.console.html import Page, login_document
from store_runtime.api.deps import RuntimeDep, bearer_scheme
from store_runtime.api.errors import ApiError
from store_runtime.api.schemas import CUSTOMER_PATTERN, ID_PATTERN, DisputeIn, ResolveIn
from store_runtime.baskets import ReviewView
from store_runtime.db import check_credential
from store_runtime.outages import OUTAGE_REVIEW
from store_runtime.privacy import PrivacyOffice, recent_audit
from store_runtime.runtime import NotFound, ReviewClosed, StoreRuntime

__all__ = ["BASE", "COOKIE", "STREAM_S", "OperatorCookieDep", "router"]

STREAM_S = 8.0  # a stream's life (it ends sooner when the server stops: app.state.stopping)
POLL_S = 0.25
KEEPALIVE_S = 4.0
STATIC = Path(__file__).resolve().parents[1] / "console" / "static"
STATIC_TYPES = {"console.css": "text/css; charset=utf-8", "console.js": "text/javascript; charset=utf-8",
                "favicon.svg": "image/svg+xml"}
SLOTS_ROUTE = BASE + "/slots/{camera}.svg"
_ID = re.compile(ID_PATTERN)
_CUSTOMER = re.compile(CUSTOMER_PATTERN)
DONE = {"accept": "Review {id} accepted.", "reject": "Review {id} rejected: it goes in no basket.",
        "dispute": "Dispute {id} opened: it waits in the review queue.", "purge": "The retention purge ran."}

router = APIRouter(include_in_schema=False)
Auth = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)]


def _html(body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(body, status_code=status, headers=security_headers())


def _login(message: str | None = None, status: int = 401) -> HTMLResponse:
    return _html(login_document(base=BASE, message=message), status)


def _who(request: Request, runtime: StoreRuntime, auth: HTTPAuthorizationCredentials | None
         ) -> Operator | HTMLResponse:
    """The operator looking at a page, or the login form to answer instead."""
    credential, operator, presented = holder(request, runtime, auth)
    if credential is None:
        return _login("That credential is not known here any more." if presented else None)
    if operator is None:
        return _login(f"{credential.name!r} is a {credential.role} credential: these pages are for operators.", 403)
    return operator


def _page(runtime: StoreRuntime, operator: Operator) -> Page:
    store = runtime.store
    return Page(base=BASE, store_id=store.config.store_id, currency=store.config.currency, operator=operator.name,
                csrf=operator.csrf, open_reviews=runtime.open_review_count(),
                names={g: p.name for g, p in store.catalog.products.items()})


def _done(request: Request) -> str | None:
    what, ident = request.query_params.get("done", ""), request.query_params.get("id", "")
    if what not in DONE or (ident and not _ID.fullmatch(ident)):
        return None
    return DONE[what].format(id=ident)


def _after(path: str, **query: str) -> RedirectResponse:
    """Post/redirect/get: the page again, saying what was done."""
    return RedirectResponse(f"{BASE}{path}?{urlencode(query)}", status_code=303, headers=security_headers())


# --------------------------------------------------------------------------------------------
# Login, static files, pictures


@router.get("/")
def root() -> RedirectResponse:
    return RedirectResponse(BASE, status_code=307)


@router.post(BASE + "/login")
async def login(request: Request, runtime: RuntimeDep) -> Response:
    try:  # the form has one field: a body with many is refused, not parsed at length
        form = await read_form(request)
    except ApiError:
        form = {}
    token = form.get("token", "").strip()
    # No credential holds a '.', the cookie's separator (`cookie_value`).
    credential = await run_in_threadpool(check_credential, runtime.db, token) if "." not in token else None
    if credential is None or credential.role != "operator":
        return _login("That is not an operator credential of this store.")
    request.state.credential = credential.name
    await run_in_threadpool(audit, runtime, credential.name, "operator_login",
                            {"client": request.client.host if request.client else None})
    response = RedirectResponse(BASE, status_code=303, headers=security_headers())
    response.set_cookie(COOKIE, cookie_value(token), max_age=COOKIE_MAX_AGE_S, path=BASE, httponly=True,
                        samesite="strict", secure=request.url.scheme == "https")
    return response


@router.post(BASE + "/logout")
def logout(request: Request, runtime: RuntimeDep, auth: Auth, form: FormDep) -> Response:
    """Forgets the cookie; the audit row is written when the form was the console's own."""
    _, operator, _ = holder(request, runtime, auth)
    if operator is not None and operator.by_cookie and hmac.compare_digest(form.get("csrf", "").encode(),
                                                                            operator.csrf.encode()):
        audit(runtime, operator.name, "operator_logout", {})
    response = RedirectResponse(BASE, status_code=303, headers=security_headers())
    response.delete_cookie(COOKIE, path=BASE, httponly=True, samesite="strict")
    return response


@cache
def _static(name: str) -> bytes:
    return (STATIC / name).read_bytes()


@router.get(BASE + "/static/{name}")
def static(name: str) -> Response:
    """The stylesheet and the script: no secret in them, so the login form has them too."""
    if name not in STATIC_TYPES:
        raise ApiError(404, "not_found", f"no console file {name[:64]!r}")
    return Response(_static(name), media_type=STATIC_TYPES[name],
                    headers={**security_headers(), "Cache-Control": "no-cache"})


# The names the media routes (routes/media.py) know the console's guard and headers by.
OperatorCookieDep = ViewerDep


def _security_headers() -> dict[str, str]:
    return security_headers()




# --------------------------------------------------------------------------------------------
# Live store


def _live_data(request: Request, runtime: StoreRuntime) -> pages.LiveData:
    count, inside = runtime.inside(pages.SHOWN)
    live_view = getattr(request.app.state, "live_view", None)
    status = getattr(request.app.state, "live_status", None)
    return pages.LiveData(inside_count=count, inside=inside, left=runtime.recent_receipts(10),
                          entries=runtime.entries(20)[::-1], status=status() if status is not None else None,
                          cameras=dict(live_view.sizes) if live_view is not None else {},
                          overlay=_has_route(request, SLOTS_ROUTE))


def _has_route(request: Request, path: str) -> bool:
    # The overlay and the slot maps come with another part of the console: used once it is there.
    return any(getattr(route, "path", None) == path for route in request.app.routes)


@router.get(BASE, response_class=HTMLResponse)
def live(request: Request, runtime: RuntimeDep, auth: Auth) -> HTMLResponse:
    operator = _who(request, runtime, auth)
    if isinstance(operator, HTMLResponse):
        return operator
    return _html(pages.live_page(_page(runtime, operator), _live_data(request, runtime)))


@router.get(BASE + "/panel", response_class=HTMLResponse)
def live_panel(request: Request, runtime: RuntimeDep, operator: ViewerDep) -> HTMLResponse:
    return _html(pages.panel(_page(runtime, operator), _live_data(request, runtime)))


@router.get(BASE + "/stream")
async def stream(request: Request, _operator: ViewerDep) -> StreamingResponse:
    """`change` events carrying the store's change counter (with the database it counts, which a new
    store day of `walkout run` replaces), sent when it moves; a comment now and then keeps proxies
    from closing a quiet stream."""
    app = request.app

    async def events() -> AsyncIterator[str]:
        yield "retry: 1000\n\n"
        started = last_sent = time.monotonic()
        last = None
        while time.monotonic() - started < STREAM_S:
            stopping = getattr(app.state, "stopping", None)
            if stopping is not None and stopping.is_set():
                return
            changes = app.state.runtime.changes
            version = f"{id(changes):x}-{changes.version}"
            if version != last:
                yield f"event: change\ndata: {version}\n\n"
                last, last_sent = version, time.monotonic()
            elif time.monotonic() - last_sent > KEEPALIVE_S:
                yield ": still here\n\n"
                last_sent = time.monotonic()
            await asyncio.sleep(POLL_S)

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={**security_headers(), "X-Accel-Buffering": "no"})


# --------------------------------------------------------------------------------------------
# Reviews and disputes


def _choices(runtime: StoreRuntime) -> list[pages.Choice]:
    _, inside = runtime.inside(pages.SHOWN)
    left = runtime.recent_receipts(10)
    return ([pages.Choice(v.session, v.customer, "inside") for v in inside]
            + [pages.Choice(r.session, r.customer, "left") for r in left])


def _outage_flags(runtime: StoreRuntime, reviews: list[ReviewView]) -> dict[str, dict[str, Any]]:
    """camera_outage review id -> the outage flag of its session (camera, window, what it may have
    missed): one session read per shopper such a review concerns, of the reviews shown."""
    flags: dict[str, dict[str, Any]] = {}
    for session in sorted({r.session for r in reviews if r.kind == OUTAGE_REVIEW and r.session}):
        view = runtime.session(session)
        flags.update({str(f["review"]): dict(f) for f in (view.camera_outages if view else ()) if f.get("review")})
    return flags


def _reviews(request: Request, runtime: StoreRuntime, operator: Operator, *, error: str | None = None,
             status: int = 200) -> HTMLResponse:
    shown = runtime.reviews(limit=pages.SHOWN)
    body = pages.reviews_page(_page(runtime, operator), shown, _choices(runtime),
                              outages=_outage_flags(runtime, shown),
                              flash=_done(request) if error is None else None, error=error)
    return _html(body, status)


@router.get(BASE + "/reviews", response_class=HTMLResponse)
def reviews(request: Request, runtime: RuntimeDep, auth: Auth) -> HTMLResponse:
    operator = _who(request, runtime, auth)
    if isinstance(operator, HTMLResponse):
        return operator
    return _reviews(request, runtime, operator)


def _optional(form: dict[str, str], *names: str) -> dict[str, Any]:
    return {n: form[n].strip() for n in names if form.get(n, "").strip()}


@router.post(BASE + "/reviews/{review}/decision")
def decide(review: str, request: Request, runtime: RuntimeDep, operator: ActionDep, form: FormDep) -> Response:
    """A decision from the review queue: as POST /v1/reviews/{id}/decision, from the page."""
    try:
        body = ResolveIn.model_validate({"decision": form.get("decision", ""), "note": form.get("note", ""),
                                         **_optional(form, "session", "gtin", "qty")})
    except ValidationError as e:
        return _reviews(request, runtime, operator, error=f"review {review[:64]}: {_first_error(e)}", status=422)
    try:
        view = runtime.resolve_review(review, body.decision, by=operator.name, note=body.note,
                                      session=body.session, gtin=body.gtin, qty=body.qty)
    except NotFound as e:
        return _reviews(request, runtime, operator, error=str(e), status=404)
    except ReviewClosed as e:
        return _reviews(request, runtime, operator, error=str(e), status=409)
    except ValueError as e:
        return _reviews(request, runtime, operator, error=str(e), status=422)
    request.app.state.metrics.decisions.labels(view.kind, body.decision).inc()
    return _after("/reviews", done=body.decision, id=view.id)


def _first_error(error: ValidationError) -> str:
    first = error.errors(include_input=False, include_url=False)[0]
    return f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"


def _receipts(request: Request, runtime: StoreRuntime, operator: Operator, query: str, *,
              error: str | None = None, status: int = 200) -> HTMLResponse:
    if query and not _CUSTOMER.fullmatch(query):
        error, status, found = f"q: expected a customer or session id, got {query[:64]!r}", 422, []
    elif query:
        found = runtime.recent_receipts(pages.SHOWN, customer=query) or runtime.recent_receipts(1, session=query)
    else:
        found = runtime.recent_receipts(pages.SHOWN)
    disputes = {r.session: [v for v in runtime.reviews_of(r.session) if v.kind == "dispute"] for r in found}
    body = pages.receipts_page(_page(runtime, operator), found, disputes, query=query,
                               flash=_done(request) if error is None else None, error=error)
    return _html(body, status)


@router.get(BASE + "/receipts", response_class=HTMLResponse)
def receipts(request: Request, runtime: RuntimeDep, auth: Auth,
             q: Annotated[str, Query(max_length=64)] = "") -> HTMLResponse:
    operator = _who(request, runtime, auth)
    if isinstance(operator, HTMLResponse):
        return operator
    return _receipts(request, runtime, operator, q.strip())


@router.post(BASE + "/disputes")
def open_dispute(request: Request, runtime: RuntimeDep, operator: ActionDep, form: FormDep) -> Response:
    """A customer contests a line: as POST /v1/disputes, from the receipts page."""
    session = form.get("session", "")
    try:
        body = DisputeIn.model_validate({"session": session, "gtin": form.get("gtin", ""),
                                         "qty": form.get("qty", ""), "reason": form.get("reason", "")})
    except ValidationError as e:
        return _receipts(request, runtime, operator, "", error=f"dispute: {_first_error(e)}", status=422)
    try:
        view = runtime.dispute(body.session, body.gtin, body.qty, body.reason, by=operator.name)
    except NotFound as e:
        return _receipts(request, runtime, operator, "", error=str(e), status=404)
    except ValueError as e:
        return _receipts(request, runtime, operator, "", error=str(e), status=422)
    request.app.state.metrics.disputes.inc()
    return _after("/receipts", done="dispute", id=view.id)


@router.get(BASE + "/sessions/{session}", response_class=HTMLResponse)
def session_timeline(session: str, request: Request, runtime: RuntimeDep, auth: Auth) -> HTMLResponse:
    operator = _who(request, runtime, auth)
    if isinstance(operator, HTMLResponse):
        return operator
    view = runtime.session(session) if _ID.fullmatch(session) else None
    if view is None:
        raise ApiError(404, "unknown_session", f"no session {session[:64]!r}")
    body = pages.session_page(_page(runtime, operator), view, runtime.receipt(session),
                              runtime.session_events(session), runtime.reviews_of(session), now=runtime.clock())
    return _html(body)


# --------------------------------------------------------------------------------------------
# Cameras


@router.get(BASE + "/cameras", response_class=HTMLResponse)
def cameras(request: Request, runtime: RuntimeDep, auth: Auth) -> HTMLResponse:
    operator = _who(request, runtime, auth)
    if isinstance(operator, HTMLResponse):
        return operator
    health = getattr(runtime, "camera_health", None)  # the runtime's own camera health, where it has one
    status = getattr(request.app.state, "live_status", None)
    live_view = getattr(request.app.state, "live_view", None)
    maps = _has_route(request, SLOTS_ROUTE)
    data = pages.CameraData(
        configured={c: {"role": spec.role, "size": spec.size, "fps": spec.fps}
                    for c, spec in runtime.store.config.cameras.items()},
        health=health() if callable(health) else None, status=status() if status is not None else None,
        cameras=dict(live_view.sizes) if live_view is not None else {}, overlay=maps, slot_maps=maps)
    return _html(pages.cameras_page(_page(runtime, operator), data, now=runtime.clock()))


# --------------------------------------------------------------------------------------------
# Privacy

Customer = Annotated[str, PathParam(pattern=CUSTOMER_PATTERN, max_length=64)]


def _privacy(request: Request, runtime: StoreRuntime, operator: Operator, *, check: bool = False,
             error: str | None = None, status: int = 200) -> HTMLResponse:
    office = PrivacyOffice(runtime)
    body = pages.privacy_page(_page(runtime, operator), office.retention_status(), recent_audit(runtime.db),
                              check=office.verify_audit().to_json() if check else None,
                              flash=_done(request) if error is None else None, error=error)
    return _html(body, status)


@router.get(BASE + "/privacy", response_class=HTMLResponse)
def privacy(request: Request, runtime: RuntimeDep, auth: Auth, verify: bool = False) -> HTMLResponse:
    operator = _who(request, runtime, auth)
    if isinstance(operator, HTMLResponse):
        return operator
    return _privacy(request, runtime, operator, check=verify)


@router.get(BASE + "/privacy/customer")
def privacy_lookup(request: Request, runtime: RuntimeDep, operator: ViewerDep,
                   customer: Annotated[str, Query(max_length=200)] = "") -> Response:
    customer = customer.strip()
    if not _CUSTOMER.fullmatch(customer):
        return _privacy(request, runtime, operator, status=422,
                        error=f"customer: expected 1 to 64 letters, digits, '.', '_' or '-', got {customer[:64]!r}")
    return RedirectResponse(f"{BASE}/privacy/customers/{customer}", status_code=303, headers=security_headers())


@router.get(BASE + "/privacy/customers/{customer}", response_class=HTMLResponse)
def privacy_customer(customer: Customer, request: Request, runtime: RuntimeDep, auth: Auth) -> HTMLResponse:
    operator = _who(request, runtime, auth)
    if isinstance(operator, HTMLResponse):
        return operator
    body = pages.privacy_customer_page(_page(runtime, operator), PrivacyOffice(runtime).consents(customer),
                                       runtime.recent_receipts(pages.SHOWN, customer=customer))
    return _html(body)


@router.post(BASE + "/privacy/customers/{customer}/export")
def privacy_export(customer: Customer, runtime: RuntimeDep, operator: ActionDep) -> Response:
    """The access export as a JSON download (the privacy office writes its audit row)."""
    data = PrivacyOffice(runtime).export(customer, by=operator.name)
    return Response(json.dumps(data, indent=2, ensure_ascii=False), media_type="application/json",
                    headers={**security_headers(),
                             "Content-Disposition": f'attachment; filename="walkout-export-{customer}.json"'})


@router.get(BASE + "/privacy/customers/{customer}/erase", response_class=HTMLResponse)
def erase_confirm(customer: Customer, request: Request, runtime: RuntimeDep, auth: Auth) -> HTMLResponse:
    operator = _who(request, runtime, auth)
    if isinstance(operator, HTMLResponse):
        return operator
    return _html(pages.erase_confirm_page(_page(runtime, operator), customer))


@router.post(BASE + "/privacy/customers/{customer}/erase", response_class=HTMLResponse)
def erase(customer: Customer, runtime: RuntimeDep, operator: ActionDep, form: FormDep) -> HTMLResponse:
    """The erasure, once the customer id was typed again (the privacy office writes its audit row)."""
    if form.get("confirm", "").strip() != customer:
        return _html(pages.erase_confirm_page(_page(runtime, operator), customer,
                                              error="The id typed is not this customer's: nothing was erased."), 422)
    result = PrivacyOffice(runtime).erase(customer, by=operator.name)
    return _html(pages.erase_done_page(_page(runtime, operator), result))


@router.post(BASE + "/privacy/purge")
def purge_now(runtime: RuntimeDep, operator: ActionDep) -> Response:
    PrivacyOffice(runtime).purge(by=operator.name)
    return _after("/privacy", done="purge")


def csrf_of_cookie(value: str) -> str:
    """The CSRF token a cookie's forms carry (tests)."""
    token, _, nonce = value.rpartition(".")
    return csrf_for(token, nonce)
