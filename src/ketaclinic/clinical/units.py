"""Units at the boundary: weights are kilograms, stated as such, or refused.

Examples
--------
>>> parse_weight_kg("82 kg")
Decimal('82')
>>> parse_weight_kg("82.5kg")
Decimal('82.5')
"""

from __future__ import annotations

import json
import math
import re
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

from ketaclinic.clinical.rules import ClinicalInputError

MIN_WEIGHT_KG = Decimal("20")
MAX_WEIGHT_KG = Decimal("400")
_WEIGHT_RE = re.compile(r"^\s*(?P<num>[0-9]+(?:[.,][0-9]+)?)\s*(?P<unit>[A-Za-zµ.]*)\s*$")
_POUNDS = {"lb", "lbs", "lb.", "pound", "pounds", "#"}


def parse_weight_kg(text: str) -> Decimal:
    """Parse a weight written with its unit; only kilograms are accepted.

    A number without a unit, pounds, stones or grams are refused with a one-line reason, so a
    pound can never be taken for a kilogram.
    """
    if text is None or not str(text).strip():
        raise ClinicalInputError("weight is empty; enter it in kilograms, e.g. '82 kg'")
    match = _WEIGHT_RE.match(str(text))
    if not match:
        raise ClinicalInputError("weight must be a number followed by 'kg', e.g. '82 kg'")
    unit = match.group("unit").lower()
    if unit in _POUNDS:
        raise ClinicalInputError("weights in pounds are refused; enter kilograms, e.g. '82 kg'")
    if unit == "":
        raise ClinicalInputError("weight has no unit; enter kilograms, e.g. '82 kg'")
    if unit not in {"kg", "kgs", "kilogram", "kilograms"}:
        raise ClinicalInputError(f"unit {unit!r} is not accepted; enter kilograms, e.g. '82 kg'")
    try:
        value = Decimal(match.group("num").replace(",", "."))
    except InvalidOperation as exc:  # pragma: no cover - the regex admits only digits
        raise ClinicalInputError("weight is not a number") from exc
    return check_weight_kg(value)


def check_weight_kg(value: Decimal | float) -> Decimal:
    """Refuse implausible adult weights (NaN, zero, negative, outside 20–400 kg)."""
    try:
        weight = Decimal(str(value))
    except InvalidOperation as exc:
        raise ClinicalInputError("weight is not a number") from exc
    if not weight.is_finite():
        raise ClinicalInputError("weight must be a finite number of kilograms")
    if weight < MIN_WEIGHT_KG or weight > MAX_WEIGHT_KG:
        raise ClinicalInputError(
            f"weight {weight} kg is outside the plausible adult range "
            f"{MIN_WEIGHT_KG}–{MAX_WEIGHT_KG} kg"
        )
    return weight.quantize(Decimal("0.01")).normalize() if weight != weight.to_integral() else (
        weight.to_integral()
    )


@lru_cache(maxsize=1)
def height_limits() -> dict[str, Any]:
    """Plausible adult height range in cm, with source and grade (data/measurements.json)."""
    from ketaclinic.clinical.rulesets import _read_bundled

    return dict(json.loads(_read_bundled("measurements.json"))["height_cm"])


def check_height_cm(value: Any, name: str = "height_cm") -> float:
    """Refuse a height that is not a plausible adult height in centimetres.

    1780 (millimetres) and 5.9 (feet) are refused with a one-line reason, never reinterpreted.

    Examples
    --------
    >>> check_height_cm(172.5)
    172.5
    """
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise ClinicalInputError(f"{name} must be a number of centimetres, got {value!r}")
    height = float(value)
    limits = height_limits()
    if not math.isfinite(height):
        raise ClinicalInputError(f"{name} must be a finite number of centimetres")
    if height < limits["min"] or height > limits["max"]:
        hint = " (metres or feet?)" if 0 < height < 10 else (
            " (millimetres?)" if height > 1000 else "")
        raise ClinicalInputError(
            f"{name} {height:g} is outside the plausible adult range "
            f"{limits['min']}–{limits['max']} cm{hint}: enter the height in centimetres"
        )
    return height
