"""POST /v1/entries: a gate's own scanner read an entry code (SPEC section 7)."""

from __future__ import annotations

from fastapi import APIRouter

from store_runtime.api.deps import GateDep, MetricsDep, RuntimeDep, act_for_gate
from store_runtime.api.errors import ApiError
from store_runtime.api.schemas import EntryIn, EntryOut, ErrorOut
from store_runtime.runtime import EntryRefused, UnknownGate

router = APIRouter(prefix="/v1/entries", tags=["entries"])


@router.post("", status_code=201, response_model=EntryOut, responses={
    401: {"model": ErrorOut, "description": "bad signature (`signature`), or no or an unknown credential"},
    403: {"model": ErrorOut, "description": "the code names another store (`other_store`); the customer withdrew "
                                            "consent to checkout (`no_consent`); or the wrong role or gate"},
    409: {"model": ErrorOut, "description": "the code was used before (`used`)"},
    410: {"model": ErrorOut, "description": "the code has expired on the store clock (`expired`)"},
    422: {"model": ErrorOut, "description": "the code is malformed (`malformed`), or the request is"},
})
def post_entry(body: EntryIn, gate: GateDep, runtime: RuntimeDep, metrics: MetricsDep) -> EntryOut:
    """Check the code and open its session; a refused code is recorded with its reason and opens
    nothing. The same code shown again at the same gate a moment later (a retry) answers the same
    session. Admitting a customer with no consent on file records their consent to checkout (the app
    issues codes only after its notice is accepted); one who withdrew it is refused (`no_consent`)."""
    act_for_gate(gate, body.gate)
    try:
        view = runtime.enter(body.gate, body.code)
    except EntryRefused as refused:
        metrics.entries.labels(refused.reason).inc()
        raise ApiError(refused.status, refused.reason, refused.detail) from None
    except UnknownGate as e:
        raise ApiError(422, "not_an_entry_gate", str(e)) from None
    metrics.entries.labels("admitted").inc()
    return EntryOut(session=view.session, customer=view.customer, party=view.party)
