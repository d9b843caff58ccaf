"""GET /v1/sessions/{session} (the live basket) and GET /v1/receipts/{session} (after exit);
GET /v1/receipts (every receipt, operators only)."""

from __future__ import annotations

import re

from fastapi import APIRouter

from store_runtime.api.deps import OperatorDep, ReaderDep, RuntimeDep, gate_may_read
from store_runtime.api.errors import ApiError
from store_runtime.api.schemas import ID_PATTERN, ErrorOut, ReceiptOut, SessionOut
from store_runtime.db import Credential
from store_runtime.runtime import StoreRuntime

router = APIRouter(tags=["sessions"])

_ID = re.compile(ID_PATTERN)
_READ_ERRORS = {403: {"model": ErrorOut, "description": "a gate that has no need to read this session"},
                404: {"model": ErrorOut, "description": "no such session (or, for a receipt, not left yet)"}}


def _unknown(session: str) -> ApiError:
    return ApiError(404, "unknown_session", f"no session {session[:64]!r}")


def _check_reader(credential: Credential, runtime: StoreRuntime, session: str, entry_gate: str) -> None:
    if not gate_may_read(credential, runtime, entry_gate):
        raise ApiError(403, "forbidden", f"gate {credential.name!r} has no need to read session {session!r}")


@router.get("/v1/sessions/{session}", response_model=SessionOut, responses=_READ_ERRORS)
def get_session(session: str, reader: ReaderDep, runtime: RuntimeDep) -> SessionOut:
    """The session and its live basket."""
    view = runtime.session(session) if _ID.fullmatch(session) else None
    if view is None:
        raise _unknown(session)
    _check_reader(reader, runtime, session, view.gate)
    return SessionOut.model_validate(view.to_json())


@router.get("/v1/receipts/{session}", response_model=ReceiptOut, responses=_READ_ERRORS)
def get_receipt(session: str, reader: ReaderDep, runtime: RuntimeDep) -> ReceiptOut:
    """The receipt once the session has left (404 while it is inside)."""
    view = runtime.session(session) if _ID.fullmatch(session) else None
    if view is None:
        raise _unknown(session)
    _check_reader(reader, runtime, session, view.gate)
    receipt = runtime.receipt(session)
    if receipt is None:
        raise ApiError(404, "no_receipt", f"session {session!r} has not left yet: no receipt")
    return ReceiptOut.model_validate(receipt.to_json())


@router.get("/v1/receipts", response_model=list[ReceiptOut])
def list_receipts(_operator: OperatorDep, runtime: RuntimeDep) -> list[ReceiptOut]:
    """Every session's receipt in entry order, those still inside included (status `open`)."""
    return [ReceiptOut.model_validate(r.to_json()) for r in runtime.receipts()]
