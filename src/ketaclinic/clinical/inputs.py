"""Refusal of impossible clinical numbers: zero, negative, NaN, infinite, or a unit inside.

Numbers typed by a person are read in the digits 0-9 only. ``"٣".isdigit()`` is true and
``int("٣")`` is 3, so a reader built on them takes Arabic-Indic, full-width or superscript
digits for a number nobody typed in the clinic's script; every reader here refuses them, and
:func:`has_foreign_digits` lets a caller say why.
"""

from __future__ import annotations

import math
import re
from typing import Any

from ketaclinic.clinical.rules import ClinicalInputError

_PLAIN_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$", re.ASCII)  # 0-9 only
_WHOLE_NUMBER = re.compile(r"[+-]?[0-9]{1,18}")  # (int() of 4,301 digits raises ValueError)
#: what a refusal of "٣" says it wants instead
DIGITS_ONLY = "type it with the digits 0-9"


def is_whole_number(text: str) -> bool:
    """True for a whole number, optionally signed, of 1 to 18 digits 0-9 (no spaces, no ``_``).

    Examples
    --------
    >>> is_whole_number("-3"), is_whole_number("٣"), is_whole_number("3_0"), is_whole_number("")
    (True, False, False, False)
    """
    return _WHOLE_NUMBER.fullmatch(text) is not None


def has_foreign_digits(text: str) -> bool:
    """True when ``text`` holds a digit or numeral other than 0-9 ("٣", "３", "²", "½").

    Examples
    --------
    >>> [has_foreign_digits(text) for text in ("٣", "1２", "²", "12", "y")]
    [True, True, True, False, False]
    """
    return any(ch.isnumeric() and not "0" <= ch <= "9" for ch in text)


def parse_number(name: str, text: Any) -> float:
    """Parse a plain decimal number typed by a person; ``"82kg"`` or ``"nan"`` are refused.

    Examples
    --------
    >>> parse_number("weight_kg", " 82.5 ")
    82.5
    """
    if isinstance(text, bool):
        raise ClinicalInputError(f"{name} must be a number, not {text!r}")
    if isinstance(text, int | float):
        return require_finite(name, float(text))
    raw = str(text).strip()
    if not _PLAIN_NUMBER.match(raw):
        if re.match(r"^[+-]?[0-9.]+\s*[a-zA-Zµ%/]+", raw):
            raise ClinicalInputError(
                f"{name} must be a plain number in the expected unit, without a unit: got {raw!r}"
            )
        raise ClinicalInputError(f"{name} must be a number, got {raw!r}")
    return require_finite(name, float(raw))


def require_finite(name: str, value: Any) -> float:
    """Return ``value`` as a float if finite; refuse NaN, infinities and non-numbers."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ClinicalInputError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ClinicalInputError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def require_positive(name: str, value: Any) -> float:
    """Return ``value`` if it is a finite number above zero; otherwise raise with one line."""
    number = require_finite(name, value)
    if number <= 0:
        raise ClinicalInputError(f"{name} must be greater than zero, got {value!r}")
    return number


def require_non_negative(name: str, value: Any) -> float:
    """Return ``value`` if it is a finite number of zero or more."""
    number = require_finite(name, value)
    if number < 0:
        raise ClinicalInputError(f"{name} must not be negative, got {value!r}")
    return number
