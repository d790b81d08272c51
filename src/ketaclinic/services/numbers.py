"""Whole numbers typed into forms and query strings, parsed one way everywhere.

``str.isdigit()`` accepts "²" and "١٢", which ``int()`` then refuses or reads as another
number: a 500, or a value nobody typed. Here only ASCII digits count, the length is bounded
before conversion, and every failure is an InvalidInput (422) naming the field. Decimal
quantities go through ``ketaclinic.clinical.inputs.parse_number`` (ASCII digits too).
"""

from __future__ import annotations

import re

from ketaclinic.services.errors import InvalidInput

MAX_ID = 2**31 - 1  # the largest id a database integer column holds
_WHOLE = re.compile(r"[0-9]{1,18}", re.ASCII)
_SIGNED = re.compile(r"[+-]?[0-9]{1,18}", re.ASCII)


def is_whole(text: object) -> bool:
    """True for a string of 1–18 ASCII digits (no sign, no spaces inside)."""
    return isinstance(text, str) and _WHOLE.fullmatch(text.strip()) is not None


def parse_int(text: object, name: str, *, minimum: int | None = None,
              maximum: int | None = None, signed: bool = False) -> int:
    """``text`` as an int within [minimum, maximum], else InvalidInput naming ``name``."""
    raw = text.strip() if isinstance(text, str) else ""
    if not (_SIGNED if signed else _WHOLE).fullmatch(raw):
        raise InvalidInput(f"{name}: must be a whole number")
    value = int(raw)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        low = "" if minimum is None else f" from {minimum}"
        high = "" if maximum is None else f" to {maximum}"
        raise InvalidInput(f"{name}: must be a whole number{low}{high}")
    return value


def optional_int(text: object, name: str, *, minimum: int | None = None,
                 maximum: int | None = None) -> int | None:
    """None for a missing or blank value, else ``parse_int``."""
    if text is None or (isinstance(text, str) and not text.strip()):
        return None
    return parse_int(text, name, minimum=minimum, maximum=maximum)


def optional_id(text: object, name: str) -> int | None:
    """A row id (1 … MAX_ID) or None when blank."""
    return optional_int(text, name, minimum=1, maximum=MAX_ID)


def parse_id(text: object, name: str) -> int:
    return parse_int(text, name, minimum=1, maximum=MAX_ID)
