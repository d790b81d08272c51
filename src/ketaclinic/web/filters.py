"""Numbers as clinicians read them: one set of Jinja filters for every page.

``{{ x|mg }}`` "1680 mg", "41.5 mg", "0.25 mg"; ``{{ x|pct }}`` "-60.6 %";
``{{ x|qty('mL/h') }}`` any other unit with the same precision rule. Times use ``|local``
(clinic zone, see ``ClinicTime.format``); ``{{ d|day }}`` a calendar date ("Mon 2026-11-02").
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation


def _decimal(value: object) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None


def plain(value: object, places: int | None = None) -> str:
    """A number without trailing zeros; ``places`` caps the decimals (default: by size:
    two below 100, one from 100, none from 1000), so "1680.000000" reads "1680"."""
    number = _decimal(value)
    if number is None:
        return "" if value is None else str(value)
    if places is None:
        size = abs(number)
        places = 2 if size < 100 else 1 if size < 1000 else 0
        if 0 < size < Decimal("0.01"):
            places = 3
    quantum = Decimal(1).scaleb(-places)
    text = format(number.quantize(quantum, rounding=ROUND_HALF_UP), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def qty(value: object, unit: str, places: int | None = None) -> str:
    """"41.5 mg", "12.3 mL/h"; an empty value shows "—"."""
    text = plain(value, places)
    return f"{text} {unit}" if text else "—"


def mg(value: object) -> str:
    return qty(value, "mg")


def pct(value: object) -> str:
    """A percentage to one decimal ("-60.6 %")."""
    return qty(value, "%", 1)


def day(value: dt.date | None) -> str:
    return value.strftime("%a %Y-%m-%d") if value else "—"


FILTERS = {"mg": mg, "pct": pct, "qty": qty, "plain": plain, "day": day}
