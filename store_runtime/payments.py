"""Money: the payment-provider interface, a local provider with real semantics, and the
idempotency keys of the exit API (SPEC section 7).

A provider is asked with keys the runtime derives from its own charge and refund ids, and must
answer a repeated key with the first answer: that is what makes "one charge per exit, whatever
the retries and crashes" hold across a crash between our commit and the provider's reply. The
local provider keeps its books in the `payment_ledger` table, in its own transactions, as an
outside provider would keep them in its own systems.

Idempotency keys follow the payment APIs (Stripe's, Adyen's): the first response to a key is
stored and replayed to every retry with the same body; a key reused with another body is
refused (422); a retry while the first request is still in flight gets 409. A claim whose
request died (its process crashed) is taken over after a lease, and the work it left — a charge
row written but not settled — is finished, never redone.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from store_runtime.db import Database, IdempotencyRow, LedgerRow, digest

__all__ = [
    "Authorisation",
    "Capture",
    "ChargeOutcome",
    "Claim",
    "DeclineRule",
    "LocalProvider",
    "PaymentError",
    "PaymentProvider",
    "Refund",
    "claim_key",
    "decline_customers",
    "decline_over",
    "finish_key",
    "purge_keys",
    "release_key",
    "request_hash",
    "run_charge",
    "run_refund",
]

MAX_KEY_CHARS = 255


# --------------------------------------------------------------------------------------------
# The provider interface


@dataclass(frozen=True, slots=True)
class Authorisation:
    """A hold on the customer's means of payment, or the reason there is none."""

    ok: bool
    id: str | None
    amount_cents: int
    decline_reason: str | None = None


@dataclass(frozen=True, slots=True)
class Capture:
    id: str
    amount_cents: int


@dataclass(frozen=True, slots=True)
class Refund:
    id: str
    amount_cents: int


class PaymentError(Exception):
    """The provider refused an operation that is not a decline: a key reused with other
    parameters, a capture beyond its authorisation, a refund beyond its capture, or an outage.
    Nothing was done; the same call may be retried once the cause is fixed."""


class PaymentProvider(Protocol):
    """What the runtime needs of a payment provider. Every call carries an idempotency `key`: the
    same key with the same parameters returns the first result and moves no money again."""

    def authorise(self, *, key: str, customer: str, amount_cents: int, currency: str) -> Authorisation:
        """Hold `amount_cents` on `customer`'s means of payment; a decline is a result, not an error."""
        ...

    def capture(self, *, key: str, authorisation: str, amount_cents: int) -> Capture:
        """Take (up to) the authorised amount; once per authorisation."""
        ...

    def refund(self, *, key: str, capture: str, amount_cents: int) -> Refund:
        """Give back part or all of a capture; refunds of one capture never exceed it."""
        ...


DeclineRule = Callable[[str, int], str | None]
"""(customer, amount_cents) -> the reason to decline, or None to accept."""


def decline_customers(*customers: str, reason: str = "card declined") -> DeclineRule:
    """Declines every authorisation for these customer ids (tests: a customer with a dead card)."""
    refused = frozenset(customers)
    return lambda customer, _amount: reason if customer in refused else None


def decline_over(limit_cents: int, reason: str = "insufficient funds") -> DeclineRule:
    """Declines authorisations above `limit_cents` (tests: a card's limit)."""
    return lambda _customer, amount: reason if amount > limit_cents else None


def _ref(prefix: str, key: str) -> str:
    return f"{prefix}_{digest(key)[:20]}"


class LocalProvider:
    """A payment provider on the runtime's own database: a ledger of authorisations, captures and
    refunds with the semantics of a card processor (holds, single capture up to the hold, refunds
    up to the capture, idempotent keys), and declines chosen by `decline` for tests and demos.

    Ids are derived from the keys, so a replay gives the same ids every run.
    """

    def __init__(self, db: Database, *, decline: DeclineRule | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.decline = decline or (lambda _customer, _amount: None)
        self.clock = clock

    def authorise(self, *, key: str, customer: str, amount_cents: int, currency: str) -> Authorisation:
        _check_amount(amount_cents)
        return _once(lambda: self._authorise(key, customer, amount_cents, currency))

    def _authorise(self, key: str, customer: str, amount_cents: int, currency: str) -> Authorisation:
        with self.db.transaction() as tx:
            row = _same_or_none(tx, key, op="authorise", customer=customer, amount_cents=amount_cents,
                                currency=currency)
            if row is None:
                reason = self.decline(customer, amount_cents)
                row = LedgerRow(id=_ref("auth", key), key=key, op="authorise", customer=customer,
                                amount_cents=amount_cents, currency=currency, parent=None, ok=reason is None,
                                reason=reason, t=self.clock())
                tx.add(row)
            return Authorisation(row.ok, row.id if row.ok else None, row.amount_cents, row.reason)

    def capture(self, *, key: str, authorisation: str, amount_cents: int) -> Capture:
        _check_amount(amount_cents)
        return _once(lambda: self._capture(key, authorisation, amount_cents))

    def _capture(self, key: str, authorisation: str, amount_cents: int) -> Capture:
        with self.db.transaction() as tx:
            # The hold is locked before anything is read: concurrent captures of it (a retry racing
            # its first try, or another key) queue here and each then sees what the other wrote.
            auth = tx.get(LedgerRow, authorisation, with_for_update=True)
            row = _same_or_none(tx, key, op="capture", parent=authorisation, amount_cents=amount_cents)
            if row is None:
                if auth is None or auth.op != "authorise" or not auth.ok:
                    raise PaymentError(f"capture {key!r}: no accepted authorisation {authorisation!r}")
                if amount_cents > auth.amount_cents:
                    raise PaymentError(f"capture {key!r}: {amount_cents} cents is more than the "
                                       f"{auth.amount_cents} authorised")
                if tx.scalars(select(LedgerRow).where(LedgerRow.parent == authorisation,
                                                      LedgerRow.op == "capture")).first():
                    raise PaymentError(f"capture {key!r}: authorisation {authorisation!r} was captured already")
                row = LedgerRow(id=_ref("cap", key), key=key, op="capture", customer=auth.customer,
                                amount_cents=amount_cents, currency=auth.currency, parent=authorisation, ok=True,
                                reason=None, t=self.clock())
                tx.add(row)
            return Capture(row.id, row.amount_cents)

    def refund(self, *, key: str, capture: str, amount_cents: int) -> Refund:
        _check_amount(amount_cents)
        return _once(lambda: self._refund(key, capture, amount_cents))

    def _refund(self, key: str, capture: str, amount_cents: int) -> Refund:
        with self.db.transaction() as tx:
            cap = tx.get(LedgerRow, capture, with_for_update=True)  # refunds of one capture queue up (as above)
            row = _same_or_none(tx, key, op="refund", parent=capture, amount_cents=amount_cents)
            if row is None:
                if cap is None or cap.op != "capture":
                    raise PaymentError(f"refund {key!r}: no capture {capture!r}")
                refunded = sum(r.amount_cents for r in tx.scalars(
                    select(LedgerRow).where(LedgerRow.parent == capture, LedgerRow.op == "refund")))
                if refunded + amount_cents > cap.amount_cents:
                    raise PaymentError(f"refund {key!r}: {amount_cents} cents more would refund "
                                       f"{refunded + amount_cents} of a {cap.amount_cents} capture")
                row = LedgerRow(id=_ref("re", key), key=key, op="refund", customer=cap.customer,
                                amount_cents=amount_cents, currency=cap.currency, parent=capture, ok=True,
                                reason=None, t=self.clock())
                tx.add(row)
            return Refund(row.id, row.amount_cents)

    def ledger(self) -> list[dict[str, Any]]:
        """Every operation in the books, oldest first (tests and the operator page read it)."""
        with self.db.transaction() as tx:
            rows = tx.scalars(select(LedgerRow).order_by(LedgerRow.t, LedgerRow.id)).all()
            return [{"id": r.id, "key": r.key, "op": r.op, "customer": r.customer, "amount_cents": r.amount_cents,
                     "parent": r.parent, "ok": r.ok, "reason": r.reason, "t": r.t} for r in rows]

    def balance(self, customer: str) -> int:
        """Cents taken from `customer`: captures minus refunds."""
        with self.db.transaction() as tx:
            rows = tx.scalars(select(LedgerRow).where(LedgerRow.customer == customer,
                                                      LedgerRow.op.in_(("capture", "refund")))).all()
            return sum(r.amount_cents if r.op == "capture" else -r.amount_cents for r in rows)


_T = TypeVar("_T")


def _once(operation: Callable[[], _T]) -> _T:
    """Run a ledger operation; if the same key was written by a concurrent call between our read
    and our insert, run it again: it now finds that row and answers with it."""
    try:
        return operation()
    except IntegrityError:
        return operation()


def _check_amount(amount_cents: int) -> None:
    if isinstance(amount_cents, bool) or not isinstance(amount_cents, int) or amount_cents <= 0:
        raise PaymentError(f"amount: expected a positive whole number of cents, got {amount_cents!r}")


def _same_or_none(tx: Session, key: str, **expected: Any) -> LedgerRow | None:
    """The row an earlier call with `key` wrote, checked to be the same call; None if there is none."""
    if not isinstance(key, str) or not 1 <= len(key) <= MAX_KEY_CHARS:
        raise PaymentError(f"key: expected 1 to {MAX_KEY_CHARS} characters, got {key!r}")
    row = tx.scalars(select(LedgerRow).where(LedgerRow.key == key)).first()
    if row is None:
        return None
    differs = [name for name, value in expected.items() if getattr(row, name) != value]
    if differs:
        raise PaymentError(f"key {key!r} was used for another {row.op} (different {', '.join(differs)})")
    return row


# --------------------------------------------------------------------------------------------
# Idempotency keys of the exit API


def request_hash(body: Any) -> str:
    """The identity of a request body: sha256 of its canonical JSON (sorted keys, no spaces), so
    the same JSON sent with its fields in another order is the same request."""
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return digest(text)


@dataclass(frozen=True, slots=True)
class Claim:
    """What `claim_key` found.

    - `new`: the key is ours now (in flight, in the caller's transaction);
    - `replay`: done before: answer `status`/`response` exactly;
    - `mismatch`: the key was used with another body (422);
    - `in_flight`: another request holds it (409);
    - `taken_over`: its holder died (lease run out): ours now, with whatever it had written.
    """

    outcome: Literal["new", "replay", "mismatch", "in_flight", "taken_over"]
    row: IdempotencyRow | None = None

    @property
    def ours(self) -> bool:
        return self.outcome in ("new", "taken_over")


def claim_key(tx: Session, key: str, body_hash: str, *, now: float, lease_s: float) -> Claim:
    """Claim `key` for a request whose body hashes to `body_hash`, inside the caller's transaction
    (which must also write whatever the request decides, so claim and decision commit together).

    A concurrent claim of the same new key fails on the primary key at flush; that claimer sees
    `in_flight` (its transaction is left usable: the insert runs in a savepoint).
    """
    if not isinstance(key, str) or not 1 <= len(key) <= MAX_KEY_CHARS:
        raise ValueError(f"Idempotency-Key: expected 1 to {MAX_KEY_CHARS} characters, got {len(key)}")
    row = tx.get(IdempotencyRow, key, with_for_update=True, populate_existing=True)
    if row is None:
        row = IdempotencyRow(key=key, request_sha256=body_hash, state="in_flight", status=None, response=None,
                             session_id=None, charge_id=None, created_t=now, claimed_t=now)
        try:
            with tx.begin_nested():
                tx.add(row)
        except IntegrityError:
            return Claim("in_flight")
        return Claim("new", row)
    if row.request_sha256 != body_hash:
        return Claim("mismatch", row)
    if row.state == "done":
        return Claim("replay", row)
    if now - row.claimed_t < lease_s:
        return Claim("in_flight", row)
    row.claimed_t = now
    return Claim("taken_over", row)


def finish_key(row: IdempotencyRow, status: int, response: dict[str, Any]) -> None:
    """Store the response a claimed key answers with, for good (until purged)."""
    row.state = "done"
    row.status = status
    row.response = json.dumps(response, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def release_key(row: IdempotencyRow) -> None:
    """The request failed without an answer (e.g. the provider was unreachable): let the next
    retry take the key over at once instead of waiting out the lease."""
    row.claimed_t = -math.inf


def purge_keys(tx: Session, *, now: float, retention_s: float) -> int:
    """Forget keys older than `retention_s`; returns how many. Retries after that are new requests,
    which the session's own state still keeps from charging twice."""
    result = tx.execute(delete(IdempotencyRow).where(IdempotencyRow.created_t < now - retention_s))
    return int(getattr(result, "rowcount", 0) or 0)


# --------------------------------------------------------------------------------------------
# Running a charge or a refund the runtime has written down


@dataclass(frozen=True, slots=True)
class ChargeOutcome:
    captured: bool
    authorisation: str | None
    capture: str | None
    decline_reason: str | None


def run_charge(provider: PaymentProvider, *, charge_id: str, customer: str, amount_cents: int,
               currency: str) -> ChargeOutcome:
    """Authorise then capture charge `charge_id` (a row already committed as pending). The keys
    come from the charge's id: running it again after a crash asks the provider the same
    questions and gets the same answers, so the money moves once."""
    auth = provider.authorise(key=f"{charge_id}:authorise", customer=customer, amount_cents=amount_cents,
                              currency=currency)
    if not auth.ok or auth.id is None:
        return ChargeOutcome(False, None, None, auth.decline_reason or "declined")
    capture = provider.capture(key=f"{charge_id}:capture", authorisation=auth.id, amount_cents=amount_cents)
    return ChargeOutcome(True, auth.id, capture.id, None)


def run_refund(provider: PaymentProvider, *, refund_id: str, capture: str, amount_cents: int) -> str:
    """Refund `amount_cents` of `capture` for refund row `refund_id`; the provider's refund id."""
    return provider.refund(key=f"{refund_id}:refund", capture=capture, amount_cents=amount_cents).id
