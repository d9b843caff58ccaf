"""What happens around every request: an id, a bound on the body, one JSON log line, metrics.

The log line names the method, the route template (not the path's values), the status, the time
taken and the credential's name, never its token, a query string or a body (an entry code is a
bearer token of its own).
"""

from __future__ import annotations

import json
import logging
import re
import time
import traceback
import uuid
from datetime import UTC, datetime
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from store_runtime.api.errors import error_body
from store_runtime.api.metrics import Metrics

__all__ = ["JsonLogFormatter", "RequestLog"]

access_log = logging.getLogger("walkout.api.access")
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


class _TooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than {limit} bytes")


class RequestLog:
    """Pure ASGI middleware: request id (kept from `X-Request-Id` when it is a sane one), body limit
    (413, from Content-Length or while reading a chunked body), then a log line and metrics."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics, max_body_bytes: int) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = {k.lower(): v for k, v in scope.get("headers", ())}
        given = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex[:16]
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        status = 500
        limit, seen = self.max_body_bytes, 0

        async def bounded_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _TooLarge(limit)
            return message

        async def tagged_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            if _declared_length(headers) > limit:
                await _answer(tagged_send, 413, error_body("body_too_large",
                                                           f"the request body is larger than {limit} bytes"))
            else:
                await self.app(scope, bounded_receive, tagged_send)
        finally:
            self._record(scope, status, time.perf_counter() - started, request_id)

    def _record(self, scope: Scope, status: int, seconds: float, request_id: str) -> None:
        # The route's template, never the path's values (one series per route, not per session). A few
        # of FastAPI's own routes (/openapi.json, /docs) leave no template: their paths are fixed.
        template = getattr(scope.get("route"), "path", None)
        if not isinstance(template, str):
            template = scope.get("path", "?")[:100] if status < 400 else "unmatched"
        method = scope.get("method", "?")
        self.metrics.requests.labels(method, template, str(status)).inc()
        self.metrics.latency.labels(method, template).observe(seconds)
        access_log.info("request", extra={"fields": {
            "request_id": request_id, "method": method, "route": template, "status": status,
            "ms": round(seconds * 1000, 2), "credential": scope.get("state", {}).get("credential")}})


def _declared_length(headers: dict[bytes, bytes]) -> int:
    try:
        return int(headers.get(b"content-length", b"0") or 0)
    except ValueError:
        return 0  # the server refuses a malformed Content-Length itself


async def _answer(send: Send, status: int, body: dict[str, Any]) -> None:
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})


class JsonLogFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, then the record's `fields` (access lines) or
    its message (and traceback, as one string)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {"t": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
                                "level": record.levelname.lower(), "logger": record.name}
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update(fields)
        else:
            line["message"] = record.getMessage()
        if record.exc_info and record.exc_info[0] is not None:
            line["exception"] = "".join(traceback.format_exception(*record.exc_info))
        return json.dumps(line, default=str)
