"""The privacy requests (SPEC section 7: "an operator reviews and handles privacy"): operators only.

| route | what |
|---|---|
| GET /v1/privacy/consents/{customer} | where each purpose stands, and every consent record |
| POST /v1/privacy/consents/{customer} | record consent the customer gave in the app or at a gate's screen |
| POST /v1/privacy/consents/{customer}/withdraw | withdraw; checkout: tracking stops at the next event |
| GET /v1/privacy/customers/{customer}/export | everything held on the customer (access request) |
| DELETE /v1/privacy/customers/{customer} | erasure: what was removed, what was kept and why |
| POST /v1/privacy/retention/purge | the retention job, now (walkout serve also runs it every hour) |
| GET /v1/privacy/audit/verify | recompute the audit log's hash chain |
| GET /v1/privacy/record | the GDPR art. 30 record of processing, from the running configuration |

The operator's credential name is recorded in the audit log as who asked (`store_runtime/privacy.py`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter
from fastapi import Path as PathParam

from store_runtime.api.deps import AUTH_ERRORS, OperatorDep, RuntimeDep
from store_runtime.api.errors import ApiError
from store_runtime.api.schemas import (
    CUSTOMER_PATTERN,
    AuditCheckOut,
    ConsentIn,
    ConsentsOut,
    ErasureOut,
    ErrorOut,
    ExportOut,
    PurgeOut,
    RecordOut,
    WithdrawalOut,
    WithdrawIn,
)
from store_runtime.privacy import PrivacyOffice

router = APIRouter(prefix="/v1/privacy", tags=["privacy"], responses=AUTH_ERRORS)

Customer = Annotated[str, PathParam(pattern=CUSTOMER_PATTERN, max_length=64,
                                    description="The customer id, as entry codes carry it (`cid`).")]
_INVALID = {422: {"model": ErrorOut, "description": "a customer id or body that is not valid (the field is named)"}}


def _office(runtime: RuntimeDep) -> PrivacyOffice:
    return PrivacyOffice(runtime)


def _checked(call: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    # The path and body are validated already; what the service still refuses is the client's mistake.
    try:
        return call()
    except ValueError as e:
        raise ApiError(422, "invalid_request", str(e)) from None


@router.get("/consents/{customer}", response_model=ConsentsOut, responses=_INVALID)
def get_consents(customer: Customer, _operator: OperatorDep, runtime: RuntimeDep) -> ConsentsOut:
    """Where each purpose stands for the customer (given, withdrawn, none) and every record."""
    return ConsentsOut.model_validate(_checked(lambda: _office(runtime).consents(customer)))


@router.post("/consents/{customer}", response_model=ConsentsOut, responses=_INVALID)
def give_consent(customer: Customer, body: ConsentIn, operator: OperatorDep, runtime: RuntimeDep) -> ConsentsOut:
    """Record the consent the customer gave (in the app, or on a gate's screen) to `purposes`; a
    purpose given already on the same notice version records nothing new."""
    result = _checked(lambda: _office(runtime).give(customer, body.purposes, method=body.method, by=operator.name,
                                                    notice_version=body.notice_version))
    return ConsentsOut.model_validate(result)


@router.post("/consents/{customer}/withdraw", response_model=WithdrawalOut, responses=_INVALID)
def withdraw_consent(customer: Customer, body: WithdrawIn, operator: OperatorDep,
                     runtime: RuntimeDep) -> WithdrawalOut:
    """Withdraw consent to `purposes`. Withdrawing checkout stops tracking the customer at the next
    event: a session still open is closed now and its basket so far charged (held while a review is
    open on it), later camera events of it are discarded, and their entry codes are refused
    (`no_consent`) until they consent again."""
    result = _checked(lambda: _office(runtime).withdraw(customer, body.purposes, method=body.method,
                                                        by=operator.name))
    return WithdrawalOut.model_validate(result)


@router.get("/customers/{customer}/export", response_model=ExportOut, responses=_INVALID)
def export_customer(customer: Customer, operator: OperatorDep, runtime: RuntimeDep) -> ExportOut:
    """Everything held on the customer: consents, sessions (receipt, shelf events, tracks, reviews),
    entry records, payment records and the privacy operations about them. Nothing held: empty lists."""
    return ExportOut.model_validate(_checked(lambda: _office(runtime).export(customer, by=operator.name)))


@router.delete("/customers/{customer}", response_model=ErasureOut, responses=_INVALID)
def erase_customer(customer: Customer, operator: OperatorDep, runtime: RuntimeDep) -> ErasureOut:
    """Erase the customer: tracking stops now, every consent is withdrawn, and everything is removed
    but what the law keeps (receipts and payment records, detached from tracking data), which the
    answer lists with why and until when. Asking again removes nothing more."""
    return ErasureOut.model_validate(_checked(lambda: _office(runtime).erase(customer, by=operator.name)))


@router.post("/retention/purge", response_model=PurgeOut)
def purge_now(operator: OperatorDep, runtime: RuntimeDep) -> PurgeOut:
    """Run the retention job now, on the store clock: video, tracking data, receipts past their time."""
    return PurgeOut.model_validate(_office(runtime).purge(by=operator.name))


@router.get("/audit/verify", response_model=AuditCheckOut)
def verify_audit(_operator: OperatorDep, runtime: RuntimeDep) -> AuditCheckOut:
    """Recompute the audit log's hash chain: `ok`, or the first broken row and what is wrong with it."""
    return AuditCheckOut.model_validate(_office(runtime).verify_audit().to_json())


@router.get("/record", response_model=RecordOut)
def processing_record(_operator: OperatorDep, runtime: RuntimeDep) -> RecordOut:
    """The GDPR art. 30(1) record of processing, generated from the running configuration."""
    return RecordOut.model_validate(_office(runtime).record())
