"""Shared by the dose checks and the pump library: a dose formatted the ISMP way, one value
checked against a rule set's soft and hard limits, and the fail-closed citation.

Its own module so that the pump library does not import the dose checks that call it.
"""

from __future__ import annotations

from typing import Any

from ketaclinic.clinical.inputs import require_finite
from ketaclinic.clinical.rules import ClinicalInputError, Finding, Level
from ketaclinic.clinical.rulesets import RuleSet

FAIL_CLOSED_SOURCE = "ketaclinic fail-closed policy (ENGINEERING.md principle 4)"


_UNIT_ALIASES = {"µg": "mcg", "μg": "mcg", "ug": "mcg", "cc": "mL", "ml": "mL"}


def format_unit(unit: str) -> str:
    """ISMP-safe unit text: "mcg" never "µg"/"ug", "mL" never "cc"."""
    parts = unit.split("/")
    return "/".join(_UNIT_ALIASES.get(p.strip(), p.strip()) for p in parts)


def format_dose(value: float, unit: str) -> str:
    """Format a dose the ISMP way: no trailing zero, always a leading zero, commas from 1,000.

    Examples
    --------
    >>> format_dose(5.0, "mg"), format_dose(0.5, "mg/kg"), format_dose(250, "µg")
    ('5 mg', '0.5 mg/kg', '250 mcg')
    """
    value = require_finite("dose", value)
    if value < 0:
        raise ClinicalInputError(f"dose must not be negative, got {value!r}")
    text = f"{value:,.4f}".rstrip("0").rstrip(".")
    if text == "0" and value > 0:
        text = f"{value:.3g}"
    return f"{text} {format_unit(unit)}"





def _finding(rule: str, level: Level, message: str, source: str, **values: Any) -> Finding:
    return Finding(rule, level, message, source, values)


def against_limits(
    rule: str, value: float, unit: str, route: str, stem: str, rs: RuleSet
) -> list[Finding]:
    shown = format_dose(round(value, 4), unit)
    for kind, level in (("hard", Level.HARD), ("soft", Level.SOFT)):
        top, bottom = rs.limit(route, f"{stem}-{kind}-max"), rs.limit(route, f"{stem}-{kind}-min")
        if top is not None and round(value, 6) > top.value:
            return [
                _finding(
                    rule,
                    level,
                    f"{shown} is above the {kind} maximum of {format_dose(top.value, unit)}",
                    top.source,
                    value=value,
                    limit=top.value,
                )
            ]
        if bottom is not None and round(value, 6) < bottom.value:
            return [
                _finding(
                    rule,
                    level,
                    f"{shown} is below the {kind} minimum of {format_dose(bottom.value, unit)}",
                    bottom.source,
                    value=value,
                    limit=bottom.value,
                )
            ]
    present = [
        rs.limit(route, f"{stem}-{k}") for k in ("soft-max", "hard-max", "soft-min", "hard-min")
    ]
    if not any(present):
        return []
    source = next(r.source for r in present if r is not None)
    return [_finding(rule, Level.OK, f"{shown} is within limits", source, value=value)]
