"""Entry codes (SPEC.md section 4): make and verify the shopper app's `WO1.<payload>.<sig>` QR text.

A gate scanner reads text from an untrusted phone screen, so `verify_code` never raises on the
text: every problem becomes a `Verdict` with a `Refusal` and a short sentence for the record.
Checks run cheapest-and-unauthenticated first (length, structure), then the signature, and only
then is the payload decoded: nothing an attacker sends without the key reaches the JSON parser
or the used-token lookup.

Marking a token used is the caller's job: the store runtime keeps the set of used `jti` in its
database and passes a lookup as `is_used`; this module holds no state.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import re
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from types import MappingProxyType

PREFIX = "WO1"
MAX_CODE_LENGTH = 1024  # characters (bytes for bytes input); a QR code of a real token is ~250
KEY_BYTES = 32
MAX_PARTY = 10
MAX_EXP = 253_402_300_799  # 9999-12-31T23:59:59Z, the last second a timestamp can be printed for
_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_B64URL = frozenset(string.ascii_letters + string.digits + "-_")
_SIG_CHARS = 43  # base64url of 32 bytes, without padding
_SHOWN = 40  # never echo more untrusted text than this into a detail


class Refusal(StrEnum):
    MALFORMED = "malformed"
    BAD_SIGNATURE = "bad_signature"
    OTHER_STORE = "other_store"
    EXPIRED = "expired"
    REUSED = "reused"


HTTP_STATUS: Mapping[Refusal, int] = MappingProxyType(
    {
        Refusal.MALFORMED: 422,
        Refusal.BAD_SIGNATURE: 401,
        Refusal.OTHER_STORE: 403,
        Refusal.REUSED: 409,
        Refusal.EXPIRED: 410,
    }
)


def key_from_hex(hex64: str) -> bytes:
    """The 32-byte HMAC key that the 64 hex characters of `entry_key` spell."""
    # The key is a secret: errors describe it but never quote it.
    if not isinstance(hex64, str):
        raise ValueError(f"entry key: expected a string of 64 hex characters, got {type(hex64).__name__}")
    if len(hex64) != 2 * KEY_BYTES:
        raise ValueError(f"entry key: expected 64 hex characters (32 bytes), got {len(hex64)} characters")
    if not all(c in string.hexdigits for c in hex64):
        raise ValueError("entry key: expected 64 hex characters (0-9, a-f), found another character")
    return bytes.fromhex(hex64)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _claims_problem(cid: object, jti: object, sid: object, exp: object, party: object) -> str | None:
    for name, value in (("cid", cid), ("jti", jti), ("sid", sid)):
        if not isinstance(value, str) or not _ID.fullmatch(value):
            return f"{name} must be 1 to 64 characters of A-Z a-z 0-9 . _ -, got {_clip(value)}"
    if not _is_int(exp) or not 0 <= exp <= MAX_EXP:
        return f"exp must be an integer of Unix seconds in 0..{MAX_EXP}, got {_clip(exp)}"
    if not _is_int(party) or not 1 <= party <= MAX_PARTY:
        return f"party must be an integer in 1..{MAX_PARTY}, got {_clip(party)}"
    return None


@dataclass(frozen=True)
class EntryClaims:
    cid: str
    jti: str
    sid: str
    exp: int
    party: int = 1

    def __post_init__(self) -> None:
        problem = _claims_problem(self.cid, self.jti, self.sid, self.exp, self.party)
        if problem:
            raise ValueError(problem)

    def to_json(self) -> str:
        """Compact JSON in the order of SPEC.md section 4 (every field is ASCII by construction)."""
        fields = {"cid": self.cid, "jti": self.jti, "sid": self.sid, "exp": self.exp, "party": self.party}
        return json.dumps(fields, separators=(",", ":"))


@dataclass(frozen=True)
class Verdict:
    """`claims` is set when the code is authentic and well formed, even if refused for
    store, expiry or reuse (so the refusal can name the customer); admit only when `ok`."""

    claims: EntryClaims | None
    refusal: Refusal | None
    detail: str

    @property
    def ok(self) -> bool:
        return self.refusal is None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _check_key(key: bytes) -> None:
    if not isinstance(key, bytes) or len(key) != KEY_BYTES:
        raise ValueError("entry key: expected 32 bytes (use key_from_hex on the 64 hex characters)")


def _sign(key: bytes, payload: str) -> str:
    return _b64(hmac.new(key, f"{PREFIX}.{payload}".encode("ascii"), hashlib.sha256).digest())


def make_code(key: bytes, claims: EntryClaims) -> str:
    """The QR text `WO1.<payload>.<sig>` of SPEC.md section 4."""
    _check_key(key)
    payload = _b64(claims.to_json().encode("utf-8"))
    return f"{PREFIX}.{payload}.{_sign(key, payload)}"


def _clip(value: object) -> str:
    shown = repr(value)
    return shown if len(shown) <= _SHOWN else shown[: _SHOWN - 3] + "..."


def _iso(t: float) -> str:
    try:
        return datetime.fromtimestamp(t, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, ValueError, OSError):
        return f"{t} s"


def _refuse(refusal: Refusal, detail: str, claims: EntryClaims | None = None) -> Verdict:
    return Verdict(claims=claims, refusal=refusal, detail=detail)


def _split(text: object) -> tuple[str, str] | str:
    """(payload, sig) of a structurally valid code, else the reason it is malformed."""
    if isinstance(text, bytes | bytearray):
        if len(text) > MAX_CODE_LENGTH:
            return f"code is {len(text)} bytes long, at most {MAX_CODE_LENGTH} allowed"
        try:
            text = bytes(text).decode("ascii")
        except UnicodeDecodeError:
            return "code contains bytes that are not ASCII"
    if not isinstance(text, str):
        return f"code must be text, got {type(text).__name__}"
    if len(text) > MAX_CODE_LENGTH:
        return f"code is {len(text)} characters long, at most {MAX_CODE_LENGTH} allowed"
    if not text:
        return "code is empty"
    parts = text.split(".")
    if parts[0] != PREFIX:
        return f"code must start with {PREFIX}., got {_clip(text[:12])}"
    if len(parts) != 3:
        return f"code must have 3 dot-separated parts, got {len(parts)}"
    payload, sig = parts[1], parts[2]
    for name, part in (("payload", payload), ("signature", sig)):
        bad = next((i for i, c in enumerate(part) if c not in _B64URL), None)
        if bad is not None:
            return f"{name} has {_clip(part[bad])} at position {bad}, expected base64url without padding"
    if not payload or len(payload) % 4 == 1:
        return f"payload of {len(payload)} characters is not a base64url length"
    if len(sig) != _SIG_CHARS:
        return f"signature must be {_SIG_CHARS} characters, got {len(sig)}"
    return payload, sig


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not a JSON number")


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    fields = dict(pairs)
    if len(fields) != len(pairs):
        raise ValueError("payload repeats a field")
    return fields


def _parse_claims(payload: str) -> EntryClaims | str:
    """The claims of an authentic payload, else the reason it is malformed."""
    try:
        raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    except (binascii.Error, ValueError):
        return "payload is not base64url"
    if _b64(raw) != payload:  # stray bits in the last character: one payload, one spelling
        return "payload is not canonical base64url"
    try:
        fields = json.loads(
            raw.decode("utf-8"), parse_constant=_reject_constant, object_pairs_hook=_no_duplicates
        )
    except UnicodeDecodeError:
        return "payload is not UTF-8"
    except (ValueError, RecursionError) as err:
        return f"payload is not valid JSON ({_clip(str(err))})"
    if not isinstance(fields, dict):
        return f"payload must be a JSON object, got {type(fields).__name__}"
    missing = [name for name in ("cid", "jti", "sid", "exp") if name not in fields]
    if missing:
        return f"payload lacks {', '.join(missing)}"
    # Unknown fields are ignored: the spec may grow optional ones.
    problem = _claims_problem(
        fields["cid"], fields["jti"], fields["sid"], fields["exp"], fields.get("party", 1)
    )
    if problem:
        return problem
    return EntryClaims(fields["cid"], fields["jti"], fields["sid"], fields["exp"], fields.get("party", 1))


def verify_code(
    text: str | bytes,
    *,
    key: bytes,
    store_id: str,
    now: float,
    is_used: Callable[[str], bool] = lambda jti: False,
) -> Verdict:
    """Whether the code `text` admits someone to store `store_id` at store-clock time `now`.

    Never raises because of `text`. Raises ValueError for the caller's own mistakes (a key that
    is not 32 bytes, a `now` that is not a finite number), and lets errors of `is_used` through:
    a database that cannot answer is not a verdict on the code. `is_used` is asked last, only
    for authentic, current codes of this store; recording the `jti` as used is the caller's job.
    """
    _check_key(key)
    if isinstance(now, bool) or not isinstance(now, int | float) or not math.isfinite(now):
        raise ValueError(f"now: expected finite Unix seconds, got {now!r}")

    parts = _split(text)
    if isinstance(parts, str):
        return _refuse(Refusal.MALFORMED, parts)
    payload, sig = parts
    if not hmac.compare_digest(_sign(key, payload).encode("ascii"), sig.encode("ascii")):
        return _refuse(Refusal.BAD_SIGNATURE, "signature does not match this store's entry key")

    claims = _parse_claims(payload)
    if isinstance(claims, str):
        return _refuse(Refusal.MALFORMED, claims)
    if claims.sid != store_id:
        return _refuse(
            Refusal.OTHER_STORE, f"code is for store {_clip(claims.sid)}, this is {store_id!r}", claims
        )
    if not now < claims.exp:
        return _refuse(Refusal.EXPIRED, f"expired at {_iso(claims.exp)}, store clock {_iso(now)}", claims)
    if is_used(claims.jti):
        return _refuse(Refusal.REUSED, f"token {_clip(claims.jti)} was used before", claims)
    return Verdict(claims=claims, refusal=None, detail=f"valid until {_iso(claims.exp)}")
