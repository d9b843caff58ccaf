"""Entry codes: the only thing standing between a phone screen and an open gate (SPEC.md section 4)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vision.entry_code import (
    HTTP_STATUS,
    MAX_CODE_LENGTH,
    EntryClaims,
    Refusal,
    Verdict,
    key_from_hex,
    make_code,
    verify_code,
)

KEY_HEX = "9f2c" + "00112233445566778899aabbccddeeff" + "0123456789abcdef0123456789ab"
KEY = key_from_hex(KEY_HEX)
OTHER_KEY = bytes(range(32))
STORE = "paris-flash-01"
EXP = 1795338000  # 2026-11-22T09:00:00Z
BEFORE = EXP - 600.0


def claims(**changes: object) -> EntryClaims:
    fields = {"cid": "c-0001", "jti": "8c1f0a2b", "sid": STORE, "exp": EXP, "party": 1}
    fields.update(changes)
    return EntryClaims(**fields)  # type: ignore[arg-type]


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signed(payload: str, key: bytes = KEY) -> str:
    """A correctly signed code around any payload text: what only the key holder can make."""
    sig = b64(hmac.new(key, ("WO1." + payload).encode(), hashlib.sha256).digest())
    return f"WO1.{payload}.{sig}"


def signed_json(obj: object) -> str:
    return signed(b64(json.dumps(obj).encode()))


def verify(text: str | bytes, **kwargs: object) -> Verdict:
    kwargs = {"key": KEY, "store_id": STORE, "now": BEFORE, **kwargs}
    return verify_code(text, **kwargs)  # type: ignore[arg-type]


# --- the happy path and the byte-exact format -----------------------------------------------


@pytest.mark.parametrize("party", [1, 4, 10])
def test_made_code_verifies_and_round_trips_claims(party: int) -> None:
    """A code the app makes must open the gate and give back exactly the claims it carries."""
    original = claims(party=party)
    verdict = verify(make_code(KEY, original))
    assert verdict.ok and verdict.refusal is None
    assert verdict.claims == original


def test_format_matches_a_hand_computed_example() -> None:
    """Other people's apps make these codes: the bytes must be exactly what SPEC.md section 4 says."""
    key = bytes.fromhex("9f2c" * 16)
    made = make_code(key, EntryClaims("c-0001", "8c1f", "paris-flash-01", 1795510800, 2))

    body = b'{"cid":"c-0001","jti":"8c1f","sid":"paris-flash-01","exp":1795510800,"party":2}'
    payload = base64.urlsafe_b64encode(body).decode().rstrip("=")
    mac = hmac.new(key, b"WO1." + payload.encode(), hashlib.sha256).digest()
    assert made == "WO1." + payload + "." + base64.urlsafe_b64encode(mac).decode().rstrip("=")
    assert "=" not in made and "+" not in made and "/" not in made


def test_to_json_is_compact_and_ordered() -> None:
    """Key order and separators are part of the format other implementations reproduce."""
    expected = '{"cid":"c-0001","jti":"8c1f0a2b","sid":"paris-flash-01","exp":1795338000,"party":1}'
    assert claims().to_json() == expected


def test_party_defaults_to_one_when_absent() -> None:
    """Most shoppers enter alone, so apps may leave `party` out."""
    verdict = verify(signed_json({"cid": "c-1", "jti": "j-1", "sid": STORE, "exp": EXP}))
    assert verdict.ok and verdict.claims is not None and verdict.claims.party == 1


def test_unknown_fields_are_ignored() -> None:
    """The spec may grow optional fields; an older store must still admit newer apps' codes."""
    verdict = verify(signed_json({"cid": "c-1", "jti": "j-1", "sid": STORE, "exp": EXP, "lang": "fr"}))
    assert verdict.ok


def test_non_compact_json_from_another_app_is_accepted() -> None:
    """SPEC.md's own example has spaces after the colons; what is signed is what counts."""
    text = '{"cid": "c-0001", "jti": "8c1f", "sid": "paris-flash-01", "exp": 1795510800, "party": 1}'
    assert verify(signed(b64(text.encode()))).ok


def test_bytes_input_is_accepted() -> None:
    """Scanners hand over bytes; an ASCII code must verify the same either way."""
    assert verify(make_code(KEY, claims()).encode("ascii")).ok


# --- signature ---------------------------------------------------------------------------------


def _flip(text: str, index: int) -> str:
    return text[:index] + ("A" if text[index] != "A" else "B") + text[index + 1 :]


GOOD = make_code(KEY, claims())
PAYLOAD_AT = len("WO1.") + 5
SIG_AT = len(GOOD) - 10


@pytest.mark.parametrize(
    ("text", "why"),
    [
        (_flip(GOOD, PAYLOAD_AT), "payload changed after signing"),
        (_flip(GOOD, SIG_AT), "signature changed"),
        (make_code(OTHER_KEY, claims()), "signed with another store's key"),
        (signed(b64(claims(party=10).to_json().encode()), key=OTHER_KEY), "party raised by a forger"),
        ("WO1.AAAA." + "A" * 43, "well-formed garbage without the key"),
        ("WO1." + b64(b"not json") + "." + "A" * 43, "forged garbage payload"),
    ],
)
def test_tampered_or_foreign_codes_are_bad_signature(text: str, why: str) -> None:
    """Anything not signed with this store's key is 401, whatever its payload says."""
    verdict = verify(text)
    assert verdict.refusal is Refusal.BAD_SIGNATURE, why
    assert verdict.claims is None


def test_non_canonical_signature_spelling_is_refused() -> None:
    """The last base64 character of a 32-byte MAC has 2 unused bits; a second spelling of the same
    MAC must not count as another code (one code, one string)."""
    last = GOOD[-1]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    twin = GOOD[:-1] + alphabet[alphabet.index(last) ^ 1]
    assert base64.urlsafe_b64decode(twin.split(".")[2] + "=") == base64.urlsafe_b64decode(
        GOOD.split(".")[2] + "="
    )
    assert verify(twin).refusal is Refusal.BAD_SIGNATURE


# --- store, expiry, reuse ----------------------------------------------------------------------


def test_code_of_another_store_is_refused_with_its_claims() -> None:
    """A code for one store must not open another one that happens to share its key."""
    verdict = verify(make_code(KEY, claims(sid="lyon-flash-02")))
    assert verdict.refusal is Refusal.OTHER_STORE
    assert verdict.claims is not None and verdict.claims.sid == "lyon-flash-02"
    assert "lyon-flash-02" in verdict.detail


@pytest.mark.parametrize(
    ("now", "refusal"),
    [
        (EXP - 600.0, None),
        (EXP - 0.001, None),
        (float(EXP), Refusal.EXPIRED),
        (EXP, Refusal.EXPIRED),
        (EXP + 0.001, Refusal.EXPIRED),
        (EXP + 86_400.0, Refusal.EXPIRED),
    ],
)
def test_expiry_boundary(now: float, refusal: Refusal | None) -> None:
    """`exp` is the first instant the code is dead: at exactly exp it no longer opens the gate."""
    assert verify(GOOD, now=now).refusal is refusal


def test_expired_detail_names_both_times() -> None:
    """An operator reading the refusal must see which clock said what."""
    verdict = verify(GOOD, now=EXP + 300.0)
    assert verdict.detail == "expired at 2026-11-22T09:00:00Z, store clock 2026-11-22T09:05:00Z"


def test_reused_code_is_refused() -> None:
    """A screenshot of a used code must not let a second person in."""
    asked: list[str] = []

    def is_used(jti: str) -> bool:
        asked.append(jti)
        return True

    verdict = verify(GOOD, is_used=is_used)
    assert verdict.refusal is Refusal.REUSED and asked == ["8c1f0a2b"]


@pytest.mark.parametrize(
    "text",
    [
        "garbage",
        "WO1.AAAA." + "A" * 43,
        make_code(KEY, claims(sid="elsewhere")),
        make_code(KEY, claims(exp=1)),
    ],
)
def test_used_set_is_not_consulted_for_refused_codes(text: str) -> None:
    """The database lookup comes last: forged or dead codes must not cost a query."""

    def is_used(jti: str) -> bool:
        raise AssertionError("is_used must not be called")

    assert not verify(text, is_used=is_used).ok


def test_verify_does_not_mark_the_code_used() -> None:
    """Recording use is the caller's transaction; verifying twice must give the same answer."""
    assert verify(GOOD).ok and verify(GOOD).ok


# --- malformed ---------------------------------------------------------------------------------


_DROP = object()


def _json_code(**changes: object) -> str:
    fields: dict[str, object] = {"cid": "c-1", "jti": "j-1", "sid": STORE, "exp": EXP, "party": 1}
    fields.update(changes)
    return signed_json({k: v for k, v in fields.items() if v is not _DROP})


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "empty scan"),
        ("WO1", "prefix alone"),
        ("WO1.", "nothing after the prefix"),
        ("WO1..", "empty parts"),
        (GOOD.replace("WO1", "WO2", 1), "a future version we do not speak"),
        (GOOD.replace("WO1", "wo1", 1), "prefix is case-sensitive"),
        (GOOD + ".extra", "too many dots"),
        (GOOD.replace(".", "", 1), "too few dots"),
        (GOOD[:PAYLOAD_AT] + "+" + GOOD[PAYLOAD_AT + 1 :], "standard base64 character"),
        (GOOD[:PAYLOAD_AT] + "!" + GOOD[PAYLOAD_AT + 1 :], "non-base64 character"),
        (GOOD + "=", "padding on the signature"),
        (signed(b64(claims().to_json().encode()) + "=="), "padding on the payload"),
        (GOOD + "\n", "trailing newline from a scanner"),
        (" " + GOOD, "leading space"),
        (GOOD[:-1], "signature one character short"),
        ("WO1.A." + "A" * 43, "payload of an impossible base64 length"),
        (GOOD.replace("WO1", "WO\u0661", 1), "Arabic-Indic digit one looks like 1"),
        (GOOD.replace("O", "\u039f", 1), "Greek capital omicron looks like O"),
        (GOOD.replace(".", "\uff0e", 1), "fullwidth full stop"),
        (GOOD.replace(".", "\u2024", 1), "one dot leader"),
        ("WO1\x00." + GOOD[4:], "NUL byte"),
        (GOOD[:PAYLOAD_AT] + "\x00" + GOOD[PAYLOAD_AT + 1 :], "NUL inside the payload"),
        ("W" * (MAX_CODE_LENGTH + 1), "just over the length limit"),
        (GOOD + "A" * MAX_CODE_LENGTH, "valid code with trailing junk over the limit"),
        ("WO1." + "A" * 1_000_000 + ".sig", "1 MB of text"),
        (b"WO1.\xff\xfe." + b"A" * 43, "bytes that are not UTF-8"),
        ("WO1.é." + "A" * 43, "non-ASCII text"),
        (b"\x00" * 2000, "2 kB of NUL bytes"),
        (signed(b64(b"not json")), "signed, but the payload is not JSON"),
        (signed(b64(b"\xff\xfe{}")), "signed, but the payload is not UTF-8"),
        (signed_json(["c-1", "j-1", STORE, EXP]), "signed JSON list"),
        (signed_json("c-1"), "signed JSON string"),
        (signed_json(None), "signed JSON null"),
        (signed(b64(b'{"cid":"a","jti":"b","sid":"paris-flash-01","exp":NaN}')), "NaN"),
        (signed(b64(b'{"cid":"a","jti":"b","sid":"paris-flash-01","exp":Infinity}')), "Infinity"),
        (signed(b64(b'{"cid":"a","jti":"b","sid":"paris-flash-01","exp":1e999}')), "float overflow"),
        (signed(b64(b'{"cid":"a","cid":"b","jti":"b","sid":"paris-flash-01","exp":9}')), "duplicate"),
        (
            signed(b64(b'{"cid":"a","jti":"b","sid":"paris-flash-01","exp":' + b"9" * 600 + b"}")),
            "600-digit exp",
        ),
        (signed(b64(b"[" * 260 + b"]" * 260)), "deep nesting, within the length limit"),
        (_json_code(cid=_DROP), "missing cid"),
        (_json_code(jti=_DROP), "missing jti"),
        (_json_code(sid=_DROP), "missing sid"),
        (_json_code(exp=_DROP), "missing exp"),
        (_json_code(cid=""), "empty cid"),
        (_json_code(cid="c" * 65), "cid too long"),
        (_json_code(cid="c 1"), "space in cid"),
        (_json_code(cid="c/1"), "slash in cid"),
        (_json_code(cid="c-1\n"), "newline after cid"),
        (_json_code(cid="c-\u0661"), "non-ASCII digit in cid"),
        (_json_code(cid=1), "cid as a number"),
        (_json_code(cid=None), "cid null"),
        (_json_code(jti=["j"]), "jti as a list"),
        (_json_code(sid={"id": STORE}), "sid as an object"),
        (_json_code(party=0), "party 0"),
        (_json_code(party=-1), "negative party"),
        (_json_code(party=11), "party 11"),
        (_json_code(party=10**30), "huge party"),
        (_json_code(party="2"), "party as a string"),
        (_json_code(party=True), "party true (a bool is not a count)"),
        (_json_code(party=1.5), "party 1.5"),
        (_json_code(party=1.0), "party 1.0 (a float, even a whole one)"),
        (_json_code(party=None), "party null is not party absent"),
        (_json_code(exp=str(EXP)), "exp as a string"),
        (_json_code(exp=float(EXP)), "exp as a float"),
        (_json_code(exp=True), "exp true"),
        (_json_code(exp=-1), "negative exp"),
        (_json_code(exp=10**20), "exp beyond year 9999"),
    ],
)
def test_malformed_codes_are_refused_without_raising(text: str | bytes, why: str) -> None:
    """A phone screen can show anything: each of these is a 422 with a reason, never a traceback."""
    verdict = verify(text)
    assert verdict.refusal is Refusal.MALFORMED, (why, verdict)
    assert verdict.claims is None and not verdict.ok
    assert verdict.detail


def test_non_canonical_payload_spelling_is_malformed() -> None:
    """Only one spelling of a payload is valid, even when the key holder signed another one."""
    payload = b64(claims().to_json().encode())
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    assert len(payload) % 4 in (2, 3)  # there are stray bits to set in the last character
    twin = payload[:-1] + alphabet[alphabet.index(payload[-1]) | 1]
    assert twin != payload
    assert verify(signed(twin)).refusal is Refusal.MALFORMED


@pytest.mark.parametrize("text", [None, 12, 1.5, ["WO1"], bytearray(b"WO1")])
def test_wrong_python_types_are_malformed(text: object) -> None:
    """A caller's glue code may pass anything; the gate still answers instead of crashing."""
    assert verify(text).refusal is Refusal.MALFORMED  # type: ignore[arg-type]


def test_length_is_checked_before_decoding() -> None:
    """A huge scan must be refused by its length, not after a costly decode."""
    verdict = verify("\udcff" * (MAX_CODE_LENGTH + 1))
    assert verdict.refusal is Refusal.MALFORMED and "long" in verdict.detail


@pytest.mark.parametrize(
    "text",
    [
        "WO1." + "x" * 5000,
        "Z" * 500 + "." + "Q" * 500,
        _json_code(cid="c" * 500),
        "WO1.!" + "y" * 900 + "." + "A" * 43,
    ],
)
def test_detail_never_echoes_much_untrusted_text(text: str) -> None:
    """Details go to logs and operator pages; an attacker must not be able to write into them."""
    verdict = verify(text)
    for run in ("x" * 41, "Z" * 41, "Q" * 41, "c" * 41, "y" * 41):
        assert run not in verdict.detail


# --- the enum and the HTTP mapping ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("refusal", "status"),
    [
        (Refusal.MALFORMED, 422),
        (Refusal.BAD_SIGNATURE, 401),
        (Refusal.OTHER_STORE, 403),
        (Refusal.REUSED, 409),
        (Refusal.EXPIRED, 410),
    ],
)
def test_http_status_of_each_refusal(refusal: Refusal, status: int) -> None:
    """SPEC.md section 7 fixes these answers for gate hardware; every refusal has one."""
    assert HTTP_STATUS[refusal] == status
    assert Refusal(refusal.value) is refusal


def test_http_status_covers_every_refusal_and_cannot_be_changed() -> None:
    """A shared table that anyone could mutate would be global state."""
    assert set(HTTP_STATUS) == set(Refusal)
    with pytest.raises(TypeError):
        HTTP_STATUS[Refusal.EXPIRED] = 200  # type: ignore[index]


# --- the issuer side and the caller's own mistakes -------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"cid": ""}, "cid"),
        ({"jti": "a b"}, "jti"),
        ({"sid": "x" * 65}, "sid"),
        ({"exp": True}, "exp"),
        ({"exp": 1.0}, "exp"),
        ({"party": 0}, "party"),
        ({"party": 11}, "party"),
    ],
)
def test_claims_refuse_values_no_store_would_accept(changes: dict[str, object], field: str) -> None:
    """Making a code that every gate refuses is a bug on the issuer's side: fail where it happens."""
    with pytest.raises(ValueError, match=field):
        claims(**changes)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("9f2c", "64 hex characters"),
        ("9f2c" * 16 + "00", "64 hex characters"),
        ("g" * 64, "hex"),
        (" " + "a" * 63, "hex"),
        ("\u0661" * 64, "hex"),
        (b"a" * 64, "string"),
        (None, "string"),
    ],
)
def test_key_from_hex_errors_say_what_was_expected(text: object, message: str) -> None:
    """A typo in store.yaml's entry_key must be an error that explains itself."""
    with pytest.raises(ValueError, match=message):
        key_from_hex(text)  # type: ignore[arg-type]


def test_key_from_hex_never_quotes_the_secret() -> None:
    """The key is a secret; error messages end up in logs."""
    secret = "deadbeef" * 7 + "cafebab"  # 63 characters
    with pytest.raises(ValueError) as raised:
        key_from_hex(secret)
    assert "deadbeef" not in str(raised.value)


def test_key_from_hex_reads_the_bytes_not_the_characters() -> None:
    """SPEC.md: the key is the 32 bytes the hex spells, in either case."""
    assert key_from_hex("00" * 31 + "Ff") == bytes(31) + b"\xff"
    assert len(KEY) == 32


@pytest.mark.parametrize(
    "kwargs",
    [
        {"key": KEY_HEX.encode()},
        {"key": KEY_HEX},
        {"key": b"short"},
        {"now": float("nan")},
        {"now": float("inf")},
        {"now": "1795510800"},
        {"now": True},
    ],
)
def test_callers_own_mistakes_raise(kwargs: dict[str, object]) -> None:
    """A misconfigured store must fail loudly: a NaN clock would otherwise never expire anything."""
    with pytest.raises(ValueError):
        verify(GOOD, **kwargs)


def test_make_code_refuses_a_key_given_as_hex_text() -> None:
    """Signing with the 64 characters instead of the 32 bytes is the classic interop bug."""
    with pytest.raises(ValueError, match="32 bytes"):
        make_code(KEY_HEX.encode(), claims())  # type: ignore[arg-type]


# --- properties ----------------------------------------------------------------------------------


@given(st.one_of(st.text(max_size=2000), st.binary(max_size=2000)))
def test_arbitrary_input_never_raises_and_never_opens(text: str | bytes) -> None:
    """Whatever a scanner reads, the answer is a refusal, never an exception or an open gate."""
    verdict = verify(text)
    assert isinstance(verdict, Verdict)
    assert not verdict.ok and verdict.refusal in set(Refusal)


@given(st.from_regex(r"WO1\.[A-Za-z0-9_-]{0,200}\.[A-Za-z0-9_-]{43}", fullmatch=True))
def test_well_formed_forgeries_are_bad_signature(text: str) -> None:
    """Structure alone is not enough: a forger who gets the shape right still meets the MAC."""
    verdict = verify(text)
    assert verdict.refusal in (Refusal.MALFORMED, Refusal.BAD_SIGNATURE)
    assert not verdict.ok


@given(st.integers(0, len(GOOD) - 1), st.characters(codec="utf-8"))
def test_any_single_character_change_is_refused(index: int, char: str) -> None:
    """No edit of one character of a good code yields another code that opens the gate."""
    mutated = GOOD[:index] + char + GOOD[index + 1 :]
    if mutated != GOOD:
        assert not verify(mutated).ok


@given(
    st.builds(
        EntryClaims,
        cid=st.from_regex(r"[A-Za-z0-9._-]{1,64}", fullmatch=True),
        jti=st.from_regex(r"[A-Za-z0-9._-]{1,64}", fullmatch=True),
        sid=st.just(STORE),
        exp=st.integers(EXP, 253_402_300_799),
        party=st.integers(1, 10),
    )
)
def test_every_valid_claim_set_round_trips(original: EntryClaims) -> None:
    """Every claim set the issuer may make fits in the length limit and verifies to itself."""
    code = make_code(KEY, original)
    assert len(code) <= MAX_CODE_LENGTH
    assert verify(code).claims == original and verify(code).ok
