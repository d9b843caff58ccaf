"""GET /v1/sessions/{session} (the live basket) and GET /v1/receipts/{session} (after exit);
GET /v1/receipts (every receipt, operators only)."""

from __future__ import annotations

import re

from fastapi import APIRouter

from store_runtime.api.deps import AUTH_ERRORS, OperatorDep, ReaderDep, RuntimeDep, gate_may_read
from store_runtime.api.errors import ApiError
from store_runtime.api.schemas import ID_PATTERN, ErrorOut, ReceiptOut, SessionOut
from store_runtime.db import Credential
from store_runtime.runtime import SessionView, StoreRuntime

router = APIRouter(tags=["sessions"], responses=AUTH_ERRORS)

_ID = re.compile(ID_PATTERN)
_READ_ERRORS = {403: {"model": ErrorOut, "description": "a gate that has no need to read this session"},
                404: {"model": ErrorOut, "description": "no such session (or, for a receipt, not left yet)"}}


def _readable(session: str, reader: Credential, runtime: StoreRuntime) -> SessionView:
    """The session, if there is one and `reader` has a need to read it (404, 403 otherwise)."""
    view = runtime.session(session) if _ID.fullmatch(session) else None
    if view is None:
        raise ApiError(404, "unknown_session", f"no session {session[:64]!r}")
    if not gate_may_read(reader, runtime, view.gate):
        raise ApiError(403, "forbidden", f"gate {reader.name!r} has no need to read session {session!r}")
    return view


@router.get("/v1/sessions/{session}", response_model=SessionOut, responses=_READ_ERRORS)
def get_session(session: str, reader: ReaderDep, runtime: RuntimeDep) -> SessionOut:
    """The session and its live basket."""
    return SessionOut.model_validate(_readable(session, reader, runtime).to_json())


@router.get("/v1/receipts/{session}", response_model=ReceiptOut, responses=_READ_ERRORS)
def get_receipt(session: str, reader: ReaderDep, runtime: RuntimeDep) -> ReceiptOut:
    """The receipt once the session has left (404 while it is inside)."""
    _readable(session, reader, runtime)
    receipt = runtime.receipt(session)
    if receipt is None:
        raise ApiError(404, "no_receipt", f"session {session!r} has not left yet: no receipt")
    return ReceiptOut.model_validate(receipt.to_json())


@router.get("/v1/receipts", response_model=list[ReceiptOut])
def list_receipts(_operator: OperatorDep, runtime: RuntimeDep) -> list[ReceiptOut]:
    """Every session's receipt in entry order, those still inside included (status `open`)."""
    return [ReceiptOut.model_validate(r.to_json()) for r in runtime.receipts()]
