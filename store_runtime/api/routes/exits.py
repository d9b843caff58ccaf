"""POST /v1/exits: the shopper walks out; close the session and charge its basket, once."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Header
from fastapi.responses import Response

from store_runtime.api.deps import AUTH_ERRORS, GateDep, MetricsDep, RuntimeDep, act_for_gate
from store_runtime.api.errors import ApiError
from store_runtime.api.schemas import ErrorOut, ExitIn, ReceiptOut
from store_runtime.payments import MAX_KEY_CHARS, PaymentError
from store_runtime.runtime import CAMERA_KEY_PREFIX

router = APIRouter(prefix="/v1/exits", tags=["exits"], responses=AUTH_ERRORS)

IdempotencyKey = Annotated[str, Header(
    alias="Idempotency-Key",
    # Said in the document, checked by `_check_key` (a 400 that says why, not the generic 422).
    json_schema_extra={"minLength": 1, "maxLength": MAX_KEY_CHARS, "pattern": "^[ -~]+$"},
    description=f"The gate's own id for this exit (1 to {MAX_KEY_CHARS} printable ASCII characters, e.g. a "
                "UUID): a retry with the same key and body gets the first answer again and is never charged twice.")]


@router.post("", response_model=ReceiptOut, responses={
    400: {"model": ErrorOut, "description": "the Idempotency-Key is empty, too long, not printable ASCII, or "
                                            "one of the runtime's own (camera:...)"},
    402: {"model": ErrorOut, "description": "payment declined: the session stays open for a person to settle"},
    404: {"model": ErrorOut, "description": "no such session"},
    409: {"model": ErrorOut, "description": "a request with this Idempotency-Key is still in flight"},
    422: {"model": ErrorOut, "description": "the key was used with a different body; no Idempotency-Key; "
                                            "not an exit gate; or the request is not valid"},
    503: {"model": ErrorOut, "description": "the payment provider could not be reached; retry with the same key"},
})
def post_exit(body: ExitIn, key: IdempotencyKey, gate: GateDep, runtime: RuntimeDep,
              metrics: MetricsDep) -> Any:
    """Close the session and charge its basket. 200 answers the receipt (with the charge's id);
    the first answer to a key (200 or 402) is stored and replayed to every retry with the same key
    and body for at least 24 hours."""
    _check_key(key)
    act_for_gate(gate, body.gate)
    try:
        status, answer = runtime.exit_request(body.gate, body.session, key=key, body=body.model_dump())
    except PaymentError as e:
        metrics.exits.labels("503").inc()
        raise ApiError(503, "payment_unavailable", f"the payment provider refused to work: {e}; retry with the "
                                                   "same Idempotency-Key") from None
    metrics.exits.labels(str(status)).inc()
    # Canonical JSON (sorted keys): a replay of the stored answer is then the very same bytes.
    content = json.dumps(answer if status == 200 else _error(answer), sort_keys=True, separators=(",", ":"),
                         ensure_ascii=False)
    return Response(content, status_code=status, media_type="application/json")


def _check_key(key: str) -> None:
    sound = key.isascii() and key.isprintable()
    if not 1 <= len(key) <= MAX_KEY_CHARS or not sound:
        raise ApiError(400, "bad_idempotency_key", f"Idempotency-Key: expected 1 to {MAX_KEY_CHARS} printable "
                                                   f"ASCII characters, got {len(key)} characters"
                                                   + ("" if sound else " with others among them"))
    if key.startswith(CAMERA_KEY_PREFIX):
        # The runtime keys camera-detected exits "camera:<event id>"; a gate claiming one first would
        # keep that exit from being charged.
        raise ApiError(400, "bad_idempotency_key", f"Idempotency-Key: keys starting with {CAMERA_KEY_PREFIX!r} are "
                                                   "the runtime's own (camera-detected exits)")


def _error(answer: dict[str, Any]) -> dict[str, Any]:
    # The runtime's refusals say {"error", "message", ...}; the API's errors say {"error", "detail", ...}.
    rest = {k: v for k, v in answer.items() if k not in ("error", "message")}
    return {"error": answer.get("error", "error"), "detail": answer.get("message", ""), **rest}
