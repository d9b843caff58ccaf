"""Every error the API answers is JSON `{"error": <code>, "detail": <sentence>}`, plus `fields` for a
request that failed validation (each naming the field) and `request_id` for the unexpected.

A client's mistake is a 4xx that says what was wrong; an unexpected exception is logged with its
traceback under the request's id and answered 500 with that id only, never the traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

__all__ = ["ApiError", "error_body", "install_handlers"]

log = logging.getLogger("walkout.api")

_SHOWN_CHARS = 200  # a message quotes at most this much of anything a client sent
_HTTP_CODES = {400: "bad_request", 401: "unauthenticated", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 406: "not_acceptable", 413: "body_too_large",
               415: "unsupported_media_type", 422: "invalid_request", 429: "too_many_requests"}


class ApiError(Exception):
    """An answer other than success, raised anywhere below a route: status, code and sentence."""

    def __init__(self, status: int, error: str, detail: str, *, headers: Mapping[str, str] | None = None,
                 **extra: Any) -> None:
        super().__init__(f"{status} {error}: {detail}")
        self.status = status
        self.error = error
        self.detail = detail
        self.headers = dict(headers or {})
        self.extra = extra


def error_body(error: str, detail: str, **extra: Any) -> dict[str, Any]:
    return {"error": error, "detail": detail, **extra}


def _field(loc: tuple[Any, ...]) -> str:
    # ("body", "events", 0, "shelf", "qty") -> body.events[0].shelf.qty
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            text = str(part)[:64]
            out += f".{text}" if out else text
    return out or "request"


def _problem(err: Mapping[str, Any]) -> str:
    msg = str(err.get("msg", "invalid"))[:_SHOWN_CHARS]
    if err.get("type") == "json_invalid":
        reason = str((err.get("ctx") or {}).get("error", ""))[:_SHOWN_CHARS]
        at = err.get("loc", ())[-1:]
        where = f" at character {at[0]}" if at and isinstance(at[0], int) else ""
        return f"not valid JSON{where} ({reason})" if reason else f"not valid JSON{where}"
    return msg.removeprefix("Value error, ")


async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
    # pydantic's errors carry the input; none of it goes back (it may be huge, or a secret code).
    fields = [{"field": "body" if err.get("type") == "json_invalid" else _field(tuple(err.get("loc", ()))),
               "problem": _problem(err)} for err in exc.errors()[:20]]
    detail = "; ".join(f"{f['field']}: {f['problem']}" for f in fields[:5]) or "the request is not valid"
    return JSONResponse(error_body("invalid_request", detail, fields=fields), status_code=422)


async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
    return JSONResponse(error_body(exc.error, exc.detail, **exc.extra), status_code=exc.status, headers=exc.headers)


async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
    status = exc.status_code
    error = _HTTP_CODES.get(status, "error")
    detail = exc.detail if isinstance(exc.detail, str) else error.replace("_", " ")
    if status == 404 and detail == "Not Found":
        detail = "no such route; the API is documented at /openapi.json"
    if status == 400 and detail == "There was an error parsing the body":
        # FastAPI's answer to a body that is not even text, where one that is text but not JSON gets
        # its 422: one mistake, one answer, the 422 that every route with a body documents.
        problem = "not valid JSON (not UTF-8 text)"
        return JSONResponse(error_body("invalid_request", f"body: {problem}",
                                       fields=[{"field": "body", "problem": problem}]), status_code=422)
    return JSONResponse(error_body(error, detail), status_code=status, headers=getattr(exc, "headers", None))


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    request_id = request.scope.get("state", {}).get("request_id", "?")
    log.error("unexpected error in %s %s (request %s)", request.method, request.url.path, request_id,
              exc_info=(type(exc), exc, exc.__traceback__))
    return JSONResponse(error_body("internal", f"an unexpected error; it was logged as request {request_id}",
                                   request_id=request_id), status_code=500)


def install_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation)  # type: ignore[arg-type]
    app.add_exception_handler(ApiError, _api_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected)
