"""The operators' side: the review queue, decisions on it, and customers' disputes.

Decisions and disputes are in the hash-chained audit log under the operator's credential name: the
runtime writes the row in the transaction of the change (`StoreRuntime.resolve_review`, `dispute`),
so this API and the console record them alike."""

from __future__ import annotations

import re
from typing import Literal

from fastapi import APIRouter

from store_runtime.api.deps import AUTH_ERRORS, MetricsDep, OperatorDep, RuntimeDep
from store_runtime.api.errors import ApiError
from store_runtime.api.schemas import ID_PATTERN, DisputeIn, ErrorOut, ResolveIn, ReviewOut
from store_runtime.runtime import NotFound, ReviewClosed

router = APIRouter(tags=["reviews"], responses=AUTH_ERRORS)
_ID = re.compile(ID_PATTERN)


@router.get("/v1/reviews", response_model=list[ReviewOut])
def list_reviews(_operator: OperatorDep, runtime: RuntimeDep,
                 status: Literal["open", "all"] = "open") -> list[ReviewOut]:
    """The review queue in time order: the open items, or all of them."""
    return [ReviewOut.model_validate(r.to_json()) for r in runtime.reviews(open_only=status == "open")]


@router.post("/v1/reviews/{review}/decision", response_model=ReviewOut, responses={
    404: {"model": ErrorOut, "description": "no such review, or no such session to put it in"},
    409: {"model": ErrorOut, "description": "the review was decided already"},
    422: {"model": ErrorOut, "description": "a decision that cannot apply (the reason is said)"},
})
def decide(review: str, body: ResolveIn, operator: OperatorDep, runtime: RuntimeDep,
           metrics: MetricsDep) -> ReviewOut:
    """Accept or reject a review; the operator's credential name is recorded as who decided. A
    session whose charge the review held is charged once nothing holds it any more."""
    if not _ID.fullmatch(review):
        raise ApiError(404, "not_found", f"no review {review[:64]!r}")
    try:
        view = runtime.resolve_review(review, body.decision, by=operator.name, note=body.note,
                                      session=body.session, gtin=body.gtin, qty=body.qty)
    except NotFound as e:
        raise ApiError(404, "not_found", str(e)) from None
    except ReviewClosed as e:
        raise ApiError(409, "review_closed", str(e)) from None
    except ValueError as e:
        raise ApiError(422, "cannot_apply", str(e)) from None
    metrics.decisions.labels(view.kind, body.decision).inc()
    return ReviewOut.model_validate(view.to_json())


@router.post("/v1/disputes", status_code=201, response_model=ReviewOut, responses={
    404: {"model": ErrorOut, "description": "no such session"},
    422: {"model": ErrorOut, "description": "not a charged receipt, or more disputed than it holds"},
})
def open_dispute(body: DisputeIn, operator: OperatorDep, runtime: RuntimeDep, metrics: MetricsDep) -> ReviewOut:
    """A customer contests `qty` of `gtin` on a charged receipt: a review, which an operator
    accepts (the line is taken off and refunded) or rejects. The operator's credential name is
    recorded as who took it down."""
    try:
        view = runtime.dispute(body.session, body.gtin, body.qty, body.reason, by=operator.name)
    except NotFound as e:
        raise ApiError(404, "unknown_session", str(e)) from None
    except ValueError as e:
        raise ApiError(422, "cannot_dispute", str(e)) from None
    metrics.disputes.inc()
    return ReviewOut.model_validate(view.to_json())
