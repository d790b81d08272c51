"""Infusion safety as a smart pump's drug library checks it.

A drug library entry allows only the concentrations listed for the route
(``infusion_concentrations`` in the rule set) and sets hard and soft limits on the concentration,
the mL/h programmed, the volume to be infused and the infusion minutes (``dose_limits.<route>``:
``concentration-mg-per-ml-*``, ``rate-ml-per-h-*``, ``volume-ml-*``, ``infusion-min-*``). The
undiluted 50 and 100 mg/mL vials are above the IV concentration maximum: a hard stop.

What is checked is what the pump will do: when the nurse's programmed mL/h and volume are given
they are checked (and the mg/kg/h they deliver, and that volume x concentration is the ordered
dose); otherwise the mL/h and volume follow from the order (dose / concentration / minutes).
Unknown is not negative: an IV dose without a concentration, minutes or a drug library for the
route is a hard stop.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ketaclinic.clinical import dose_limits as dc
from ketaclinic.clinical.rules import Finding, Level
from ketaclinic.clinical.rulesets import RuleSet

if TYPE_CHECKING:
    from ketaclinic.clinical.dose_checks import DoseOrder

INFUSION_ROUTES = ("iv",)
LIBRARY_MATCH = 1e-6


def _hard(rule: str, message: str, source: str, **values: object) -> Finding:
    return Finding(rule, Level.HARD, message, source, dict(values))


def has_library(rs: RuleSet, route: str) -> bool:
    """Does the rule set carry a pump drug library (concentrations and mL/h limit) for ``route``?"""
    return bool(rs.infusion_concentrations.get(route)) and (
        rs.limit(route, "rate-ml-per-h-hard-max") is not None
    )


def _check_concentration(order: DoseOrder, rs: RuleSet, conc: float) -> list[Finding]:
    route = order.route
    out = dc.against_limits(
        "concentration", conc, "mg/mL", route, "concentration-mg-per-ml", rs
    )
    if any(f.level is Level.HARD for f in out):
        top = rs.limit(route, "concentration-mg-per-ml-hard-max")
        limit = top.value if top is not None else None
        return [
            _hard(
                "concentration",
                f"Stop: {dc.format_dose(conc, 'mg/mL')} is above the {route.upper()} maximum of "
                f"{dc.format_dose(limit, 'mg/mL') if limit is not None else '?'}: an undiluted "
                "vial is never infused; dilute to a library concentration",
                out[0].source,
                value=conc,
                limit=limit,
            )
        ]
    allowed = rs.infusion_concentrations.get(route, ())
    match = next((c for c in allowed if abs(c.mg_per_ml - conc) <= LIBRARY_MATCH), None)
    if match is None:
        shown = ", ".join(f"{c.mg_per_ml:g}" for c in allowed)
        return out + [
            _hard(
                "concentration-library",
                f"Stop: {dc.format_dose(conc, 'mg/mL')} is not a concentration in the pump "
                f"library for {route.upper()} (allowed: {shown} mg/mL)",
                allowed[0].source if allowed else dc.FAIL_CLOSED_SOURCE,
                value=conc,
                allowed=[c.mg_per_ml for c in allowed],
            )
        ]
    return out + [
        Finding(
            "concentration-library",
            Level.OK,
            f"{dc.format_dose(conc, 'mg/mL')} is the library entry '{match.label}'",
            match.source,
            {"value": conc, "entry": match.id},
        )
    ]


def _programme_mismatch(
    order: DoseOrder, rs: RuleSet, conc: float, volume: float, minutes: float | None
) -> list[Finding]:
    limit = rs.limit(order.route, "programme-mismatch-pct-hard-max")
    pct_max = limit.value if limit is not None else 0.0
    source = limit.source if limit is not None else dc.FAIL_CLOSED_SOURCE
    out = []
    delivered = volume * conc
    pct = abs(delivered - order.dose_mg) / order.dose_mg * 100.0
    if pct > pct_max:
        out.append(
            _hard(
                "pump-programme-mismatch",
                "Stop: the pump is programmed to deliver "
                f"{dc.format_dose(round(delivered, 2), 'mg')}"
                f" ({dc.format_dose(volume, 'mL')} at {dc.format_dose(conc, 'mg/mL')}), not the "
                f"{dc.format_dose(order.dose_mg, 'mg')} ordered; re-program the pump",
                source,
                delivered_mg=round(delivered, 4),
                dose_mg=order.dose_mg,
                mismatch_pct=round(pct, 1),
                limit=pct_max,
            )
        )
    if order.infusion_min and minutes is not None:
        pct = abs(minutes - order.infusion_min) / order.infusion_min * 100.0
        if pct > pct_max:
            out.append(
                _hard(
                    "pump-programme-mismatch",
                    f"Stop: the programmed rate runs {dc.format_dose(round(minutes, 1), 'min')}, "
                    f"not the {dc.format_dose(order.infusion_min, 'min')} ordered; "
                    "re-program the pump",
                    source,
                    programmed_min=round(minutes, 2),
                    ordered_min=order.infusion_min,
                    mismatch_pct=round(pct, 1),
                    limit=pct_max,
                )
            )
    return out


def _programmed_rate(order: DoseOrder, rs: RuleSet, conc: float, rate_ml: float) -> list[Finding]:
    """The mg/kg/h the programmed mL/h delivers, against the route's mg/kg/h limits."""
    weight = order.dose_weight_kg or order.weight_kg
    if not weight or rs.limit(order.route, "rate-mg-per-kg-per-h-hard-max") is None:
        return []
    rate = rate_ml * conc / weight
    return dc.against_limits(
        "programmed-rate", rate, "mg/kg/h", order.route, "rate-mg-per-kg-per-h", rs
    )


def check_infusion(order: DoseOrder, rs: RuleSet) -> list[Finding]:
    """Pump drug-library checks for an infusion route; nothing for other routes."""
    if order.route not in INFUSION_ROUTES:
        return []
    if not has_library(rs, order.route):
        return [
            _hard(
                "pump-library",
                f"Stop: rule set {rs.ref} has no pump drug library for {order.route.upper()} "
                "(concentrations and mL/h limits): the infusion cannot be checked",
                dc.FAIL_CLOSED_SOURCE,
            )
        ]
    conc = order.concentration_mg_per_ml
    if conc is None:
        return [
            _hard(
                "concentration",
                "Concentration (mg/mL) missing: the pump programme cannot be checked",
                dc.FAIL_CLOSED_SOURCE,
            )
        ]
    out = _check_concentration(order, rs, conc)
    volume = order.volume_ml if order.volume_ml is not None else order.dose_mg / conc
    minutes = order.infusion_min
    if order.rate_ml_per_h is not None:
        rate_ml = order.rate_ml_per_h
        programmed_min = volume / rate_ml * 60.0
    elif minutes:
        rate_ml, programmed_min = volume * 60.0 / minutes, None
    else:
        return out + [
            _hard(
                "infusion-min",
                "Infusion minutes missing: the mL/h cannot be checked",
                dc.FAIL_CLOSED_SOURCE,
            )
        ]
    out += dc.against_limits("rate-ml-per-h", rate_ml, "mL/h", order.route, "rate-ml-per-h", rs)
    out += dc.against_limits("volume-ml", volume, "mL", order.route, "volume-ml", rs)
    shown_min = programmed_min if programmed_min is not None else float(minutes or 0)
    out += dc.against_limits("infusion-min", shown_min, "min", order.route, "infusion-min", rs)
    if order.rate_ml_per_h is not None:
        out += _programmed_rate(order, rs, conc, rate_ml)
    if order.volume_ml is not None or order.rate_ml_per_h is not None:
        out += _programme_mismatch(order, rs, conc, volume, programmed_min)
    return out
