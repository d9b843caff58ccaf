"""GTIN-13 (EAN-13) check digits: the one rule every product id in walkout obeys."""

from __future__ import annotations


def check_digit(body: str) -> int:
    """The GS1 check digit of the first 12 digits of a GTIN-13 (or the first 7 of an EAN-8)."""
    if not body.isascii() or not body.isdigit():
        raise ValueError(f"expected digits only, got {body!r}")
    # GS1: weights 3 and 1 alternate starting from the rightmost digit of the body.
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return (10 - total % 10) % 10


def is_valid_gtin13(text: str) -> bool:
    return (
        isinstance(text, str)
        and len(text) == 13
        and text.isascii()
        and text.isdigit()
        and check_digit(text[:12]) == int(text[12])
    )


def complete_gtin13(body: str) -> str:
    """Append the check digit to a 12-digit body."""
    if len(body) != 12:
        raise ValueError(f"a GTIN-13 body has 12 digits, got {len(body)}")
    return body + str(check_digit(body))
