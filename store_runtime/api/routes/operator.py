"""The operator page: sessions with their live baskets, the review queue, receipts, entry codes and
the blurred live view of each camera, for a person at the store's back office.

| route | what |
|---|---|
| GET / | redirects to the page |
| GET /operator | the page; without an operator's credential, the login form (401) |
| POST /operator/login | form field `token`: an operator credential; sets the session cookie |
| POST /operator/logout | forgets the cookie |
| GET /operator/panel | the part of the page that changes (the page's script fetches it) |
| GET /operator/live/{camera}.jpg | the newest redacted picture of a camera (`walkout run` only) |

Who: an operator, by the credential itself, either in `Authorization: Bearer` (scripts) or in the
cookie that the login form sets. The cookie is HttpOnly (no script reads it), SameSite=Strict (no
other site's page sends it) and scoped to /operator: it opens these read-only pages and nothing
else. Every change (review decisions, disputes) stays on the /v1 API with a bearer credential, so
a page elsewhere can make a browser that is logged in here change nothing.

The live view comes from `app.state.live_view` (`walkout run` puts its `LiveView` there; `walkout
serve` runs no camera nodes and shows none): JPEG of redacted frames only.
"""

from __future__ import annotations

import secrets
from typing import Annotated
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.security import HTTPAuthorizationCredentials
from starlette.concurrency import run_in_threadpool

from store_runtime.api.deps import RuntimeDep, bearer_scheme
from store_runtime.api.errors import ApiError
from store_runtime.api.operator_page import SHOWN, PageData, login_page, operator_page, panel
from store_runtime.db import Credential, check_credential
from store_runtime.runtime import StoreRuntime

__all__ = ["BASE", "COOKIE", "router"]

BASE = "/operator"
COOKIE = "walkout_operator"
COOKIE_MAX_AGE_S = 8 * 3600  # one shift

router = APIRouter(include_in_schema=False)


def _security_headers(nonce: str | None = None) -> dict[str, str]:
    inline = f"'nonce-{nonce}'" if nonce else "'none'"
    return {
        "Content-Security-Policy": (f"default-src 'none'; img-src 'self'; connect-src 'self'; style-src {inline}; "
                                    f"script-src {inline}; form-action 'self'; base-uri 'none'; "
                                    "frame-ancestors 'none'"),
        "Cache-Control": "no-store",
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
    }


def _html(body: str, status: int, nonce: str) -> HTMLResponse:
    return HTMLResponse(body, status_code=status, headers=_security_headers(nonce))


def _token(request: Request, auth: HTTPAuthorizationCredentials | None) -> str | None:
    return auth.credentials if auth is not None else request.cookies.get(COOKIE)


def _holder(request: Request, runtime: StoreRuntime,
            auth: HTTPAuthorizationCredentials | None) -> Credential | None:
    token = _token(request, auth)
    credential = check_credential(runtime.db, token) if token else None
    if credential is not None:
        request.state.credential = credential.name  # for the request's log line
    return credential


Auth = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)]


def _page_data(request: Request, runtime: StoreRuntime, operator: str) -> PageData:
    store = runtime.store
    receipts = runtime.receipts()
    # The newest of those inside, not those inside among the newest entries: a shopper still in the
    # store must not drop off the page because many others came and went since.
    inside_ids = [r.session for r in receipts if r.exited_t is None][-SHOWN:]
    inside = [view for session in inside_ids if (view := runtime.session(session))]
    left = sorted((r for r in receipts if r.exited_t is not None), key=lambda r: (r.exited_t or 0.0, r.session),
                  reverse=True)[:SHOWN]
    entries = runtime.entries()[-SHOWN:][::-1]
    live_view = getattr(request.app.state, "live_view", None)
    status = getattr(request.app.state, "live_status", None)
    return PageData(store_id=store.config.store_id, currency=store.config.currency,
                    names={g: p.name for g, p in store.catalog.products.items()}, inside=inside, receipts=left,
                    reviews=runtime.reviews()[:SHOWN], entries=entries,
                    cameras=dict(live_view.sizes) if live_view is not None else {},
                    status=status() if status is not None else None, operator=operator)


@router.get("/")
def root() -> RedirectResponse:
    return RedirectResponse(BASE, status_code=307)


@router.get(BASE, response_class=HTMLResponse)
def page(request: Request, runtime: RuntimeDep, auth: Auth) -> HTMLResponse:
    nonce = secrets.token_urlsafe(16)
    credential = _holder(request, runtime, auth)
    if credential is None:
        message = "That credential is not known here any more." if _token(request, auth) else None
        return _html(login_page(nonce=nonce, base=BASE, message=message), 401, nonce)
    if credential.role != "operator":
        return _html(login_page(nonce=nonce, base=BASE, message=f"{credential.name!r} is a {credential.role} "
                                "credential: this page is for operators."), 403, nonce)
    return _html(operator_page(_page_data(request, runtime, credential.name), nonce=nonce, base=BASE), 200, nonce)


@router.post(BASE + "/login")
async def login(request: Request, runtime: RuntimeDep) -> Response:
    nonce = secrets.token_urlsafe(16)
    try:  # the form has one field: a body with many is refused, not parsed at length
        form = parse_qs((await request.body()).decode("utf-8", "replace"), max_num_fields=8)
    except ValueError:
        form = {}
    token = (form.get("token") or [""])[0].strip()
    credential = await run_in_threadpool(check_credential, runtime.db, token) if token else None
    if credential is None or credential.role != "operator":
        return _html(login_page(nonce=nonce, base=BASE, message="That is not an operator credential of this store."),
                     401, nonce)
    request.state.credential = credential.name
    response = RedirectResponse(BASE, status_code=303, headers=_security_headers())
    response.set_cookie(COOKIE, token, max_age=COOKIE_MAX_AGE_S, path=BASE, httponly=True, samesite="strict",
                        secure=request.url.scheme == "https")
    return response


@router.post(BASE + "/logout")
def logout() -> Response:
    response = RedirectResponse(BASE, status_code=303, headers=_security_headers())
    response.delete_cookie(COOKIE, path=BASE, httponly=True, samesite="strict")
    return response


def _operator(request: Request, runtime: RuntimeDep, auth: Auth) -> Credential:
    credential = _holder(request, runtime, auth)
    if credential is None:
        raise ApiError(401, "unauthenticated", "log in at /operator, or send an operator's bearer credential",
                       headers={"WWW-Authenticate": "Bearer"})
    if credential.role != "operator":
        raise ApiError(403, "forbidden", f"credential {credential.name!r} is a {credential.role} credential; "
                                         "this is for an operator")
    return credential


OperatorCookieDep = Annotated[Credential, Depends(_operator)]


@router.get(BASE + "/panel", response_class=HTMLResponse)
def page_panel(request: Request, runtime: RuntimeDep, operator: OperatorCookieDep) -> HTMLResponse:
    return HTMLResponse(panel(_page_data(request, runtime, operator.name)), headers=_security_headers())


@router.get(BASE + "/live/{camera}.jpg")
def live_picture(camera: str, request: Request, _operator: OperatorCookieDep) -> Response:
    """The newest picture of `camera`, every face blurred (a RedactedFrame, as JPEG)."""
    live_view = getattr(request.app.state, "live_view", None)
    if live_view is None or camera not in live_view.sizes:
        raise ApiError(404, "not_found", f"no live view of camera {camera[:64]!r} here")
    data = live_view.jpeg(camera)
    if data is None:
        raise ApiError(503, "no_picture_yet", f"camera {camera!r} has sent no picture yet",
                       headers={"Retry-After": "1"})
    return Response(data, media_type="image/jpeg", headers=_security_headers())
