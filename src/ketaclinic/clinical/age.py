"""A patient's age from the birth date: the one place that computes it.

Age is in completed years on a calendar day (the day is the clinic's local date: pass it, the
core never reads the clock). A person born on 29 February turns a year older on 1 March in a
common year. Every dose check, label limit, PK covariate, banner, export and analysis band uses
:func:`age_on`; ``tests/unit/test_age_computed_once.py`` keeps it the only one.

Examples
--------
>>> import datetime as dt
>>> age_on(dt.date(1980, 5, 17), dt.date(2026, 5, 16))
45
>>> age_on(dt.date(1980, 5, 17), dt.date(2026, 5, 17))
46
>>> leap = dt.date(2000, 2, 29)
>>> age_on(leap, dt.date(2026, 2, 28)), age_on(leap, dt.date(2026, 3, 1))
(25, 26)
>>> age_band(dt.date(1990, 1, 1), dt.date(2026, 1, 1)), age_band(None, dt.date(2026, 1, 1))
('18-39', None)
"""

from __future__ import annotations

from datetime import date

__all__ = ["AGE_BANDS", "age_band", "age_on"]

# (lower bound in years, label): the dashboard's and the Cox model's age bands
AGE_BANDS: tuple[tuple[int, str], ...] = ((0, "<18"), (18, "18-39"), (40, "40-64"), (65, "65+"))


def age_on(birth: date, day: date) -> int:
    """Completed years on ``day`` of a person born on ``birth`` (negative if ``day`` is before
    the birth: the caller decides whether that is an error)."""
    years = day.year - birth.year
    return years - ((day.month, day.day) < (birth.month, birth.day))


def age_band(birth: date | None, on: date) -> str | None:
    """``"<18"``, ``"18-39"``, ``"40-64"`` or ``"65+"`` on ``on``; None without a birth date."""
    if birth is None:
        return None
    years = age_on(birth, on)
    label = AGE_BANDS[0][1]
    for lower, name in AGE_BANDS:
        if years >= lower:
            label = name
    return label
