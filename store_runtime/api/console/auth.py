"""Who is at the console, and whether a change they ask for is theirs (CSRF), plus the audit row.

The cookie the login form sets holds the operator credential and a random per-login nonce,
`<credential>.<nonce>`: HttpOnly (no script reads it), SameSite=Strict (no other site's page sends
it), scoped to /operator (the /v1 API takes bearer credentials only). A form that changes something
carries `csrf` = HMAC-SHA256(credential, nonce), checked against the cookie on the server: a page
elsewhere can neither read the cookie nor compute the field, so even a browser that sent the cookie
along (an old browser without SameSite) changes nothing. Nothing is kept on the server, so the token
outlives restarts and holds across several servers, and a new login makes a new one.

A script may call the same routes with `Authorization: Bearer` instead (no cookie, no CSRF: a
browser never adds that header on its own).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import parse_qs

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials

from store_runtime.api.deps import RuntimeDep, bearer_scheme
from store_runtime.api.errors import ApiError
from store_runtime.db import Credential, check_credential
from store_runtime.privacy import append_audit
from store_runtime.runtime import StoreRuntime

__all__ = ["BASE", "COOKIE", "COOKIE_MAX_AGE_S", "ActionDep", "FormDep", "Operator", "ViewerDep", "audit",
           "cookie_value", "csrf_for", "holder", "security_headers"]

BASE = "/operator"
COOKIE = "walkout_operator"
COOKIE_MAX_AGE_S = 8 * 3600  # one shift
MAX_FORM_FIELDS = 16

Auth = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)]


def security_headers() -> dict[str, str]:
    """Every console answer: its own scripts and styles only, no frames, nothing cached."""
    return {
        "Content-Security-Policy": ("default-src 'none'; img-src 'self'; media-src 'self'; connect-src 'self'; "
                                    "style-src 'self'; script-src 'self'; form-action 'self'; base-uri 'none'; "
                                    "frame-ancestors 'none'"),
        "Cache-Control": "no-store",
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
    }


def csrf_for(token: str, nonce: str) -> str:
    return hmac.new(token.encode(), b"walkout-console-csrf:" + nonce.encode(), hashlib.sha256).hexdigest()


def cookie_value(token: str) -> str:
    """A new login's cookie: the credential and a fresh nonce (credentials hold no '.')."""
    return f"{token}.{secrets.token_urlsafe(24)}"


@dataclass(frozen=True, slots=True)
class Operator:
    """An operator at the console: the credential's name, and the CSRF token its forms carry
    (empty when the credential came as a bearer header: such a caller needs none)."""

    name: str
    csrf: str
    by_cookie: bool


def _from_cookie(request: Request) -> tuple[str, str] | None:
    value = request.cookies.get(COOKIE, "")
    token, dot, nonce = value.rpartition(".")
    return (token, nonce) if dot and token and nonce else None


def holder(request: Request, runtime: StoreRuntime, auth: HTTPAuthorizationCredentials | None
           ) -> tuple[Credential | None, Operator | None, bool]:
    """(credential, the operator it makes, whether any credential was presented)."""
    if auth is not None:
        credential = check_credential(runtime.db, auth.credentials)
        csrf, by_cookie = "", False
    else:
        parts = _from_cookie(request)
        if parts is None:
            return None, None, request.cookies.get(COOKIE) is not None
        credential = check_credential(runtime.db, parts[0])
        csrf, by_cookie = csrf_for(*parts), True
    if credential is None:
        return None, None, True
    request.state.credential = credential.name  # for the request's log line
    operator = Operator(credential.name, csrf, by_cookie) if credential.role == "operator" else None
    return credential, operator, True


def _viewer(request: Request, runtime: RuntimeDep, auth: Auth) -> Operator:
    credential, operator, _ = holder(request, runtime, auth)
    if credential is None:
        raise ApiError(401, "unauthenticated", f"log in at {BASE}, or send an operator's bearer credential",
                       headers={"WWW-Authenticate": "Bearer"})
    if operator is None:
        raise ApiError(403, "forbidden", f"credential {credential.name!r} is a {credential.role} credential; "
                                         "this is for an operator")
    return operator


async def read_form(request: Request) -> dict[str, str]:
    """An urlencoded form body, first value of each field; more than a form of ours has is refused
    (the body's size is bounded by the app's middleware)."""
    try:
        fields = parse_qs((await request.body()).decode("utf-8", "replace"), max_num_fields=MAX_FORM_FIELDS)
    except ValueError:
        raise ApiError(422, "invalid_form", f"expected a form of at most {MAX_FORM_FIELDS} fields") from None
    return {name: values[0] for name, values in fields.items()}


FormDep = Annotated[dict[str, str], Depends(read_form)]


def _action(operator: Annotated[Operator, Depends(_viewer)], form: FormDep) -> Operator:
    if operator.by_cookie and not hmac.compare_digest(form.get("csrf", "").encode(), operator.csrf.encode()):
        raise ApiError(403, "csrf", "this form did not come from the console's own page (no or a wrong csrf "
                                    "field): reload the page and try again")
    return operator


ViewerDep = Annotated[Operator, Depends(_viewer)]
ActionDep = Annotated[Operator, Depends(_action)]


def audit(runtime: StoreRuntime, operator: str, op: str, detail: dict[str, object],
          customer: str | None = None) -> None:
    """One row of the hash-chained audit log for an operator's action at the console."""
    with runtime.db.transaction() as tx:
        append_audit(tx, t=runtime.clock(), actor=operator, op=op, detail=detail, customer=customer)
