"""A dose plan: the request as typed, the calculated dose, the weight it rests on, the checks.

Pure: the service loads the registry weights, the previous dose and the latest screening and
passes them in; it stores the plan it gets back. The weight rule: the registry's latest weight is
used unless the prescriber re-enters today's weight ("82 kg", kilograms only). A stale weight or
one that changed by more than the rule set's limit since the last visit is a hard stop (the
checks of :mod:`ketaclinic.clinical.dose_checks`); re-entering a weight that matches the
registry (within ``WEIGHT_MATCH_KG``) confirms it, and a re-entered weight that differs is
compared with the registry and, once saved with the dose, recorded in the registry.

A request the core cannot plan (no weight, a route without limits in the rule set, an IV order
without its minutes) raises :class:`~ketaclinic.clinical.rules.ClinicalInputError` with a
one-line message; the service turns it into its own "invalid input".

Examples
--------
>>> import datetime as dt
>>> from ketaclinic.clinical.dose_checks import check_dose
>>> from ketaclinic.clinical.rules import Level
>>> from ketaclinic.clinical.rulesets import load_bundled_ruleset
>>> rs = load_bundled_ruleset("ketamine-iv")
>>> weights = WeightFacts(80.0, dt.date(2026, 3, 1), None, None)
>>> plan = plan_dose(DoseRequest("iv", mg_per_kg=0.5, infusion_min=40,
...                              concentration_mg_per_ml=1.0), rs, today=dt.date(2026, 3, 2),
...                  birth_date=dt.date(1980, 1, 1), sex="female", weights=weights,
...                  previous_dose_mg=None, previous_mg_per_kg=None,
...                  screening=Finding("screening", Level.OK, "screened"), check=check_dose)
>>> plan.dose_mg, plan.rate_ml_per_h, plan.weight_source
(40.0, 60.0, 'registry')
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from ketaclinic.clinical.age import age_on
from ketaclinic.clinical.dose_checks import DoseCheckResult, DoseOrder, format_dose
from ketaclinic.clinical.dosing import (
    DoseWeight,
    calculate_esketamine_dose,
    calculate_iv_dose,
    calculate_route_dose,
    titrate_mg_per_kg,
)
from ketaclinic.clinical.rules import ClinicalInputError, Finding
from ketaclinic.clinical.rulesets import RuleSet

Checker = Callable[[DoseOrder, RuleSet], DoseCheckResult]

ROUTES = ("iv", "im", "oral", "sublingual", "intranasal")
ROUTE_LABELS = {"iv": "IV infusion (racemic ketamine)", "im": "IM (racemic ketamine)",
                "oral": "Oral (racemic ketamine)", "sublingual": "Sublingual (racemic ketamine)",
                "intranasal": "Esketamine nasal spray"}
WEIGHT_MATCH_KG = 0.05


@dataclass(frozen=True)
class OverrideInput:
    rule: str
    reason_code: str
    free_text: str


@dataclass(frozen=True)
class DoseRequest:
    route: str
    mg_per_kg: float | None = None
    weight_basis: str | None = None
    height_cm: float | None = None
    infusion_min: float | None = None
    concentration_mg_per_ml: float | None = None
    phase: str | None = None
    session_number: int | None = None
    dose_mg: float | None = None
    weight_reentry_kg: Decimal | None = None
    overrides: tuple[OverrideInput, ...] = ()
    course_id: int | None = None

    @property
    def treatment(self) -> str:
        return "esketamine" if self.route == "intranasal" else "ketamine-iv"


@dataclass(frozen=True)
class WeightFacts:
    latest_kg: float | None
    latest_on: dt.date | None
    earlier_kg: float | None
    last_dose_weight_kg: float | None


@dataclass(frozen=True)
class DosePlan:
    request: DoseRequest
    rule_set: str
    dose_mg: float
    order: DoseOrder
    result: DoseCheckResult
    weight_kg: float | None
    weight_source: str
    weight_measured_on: dt.date | None
    dose_weight: DoseWeight | None
    mg_per_kg: float | None
    rate_mg_per_h: float | None
    rate_ml_per_h: float | None
    volume_ml: float | None
    devices: int | None
    device_times_min: tuple[int, ...]
    notes: tuple[str, ...]
    titration: tuple[tuple[str, float], ...]
    record_weight_kg: Decimal | None
    reason_codes: tuple[str, ...]

    @property
    def status(self) -> str:
        if self.result.blocked:
            return "blocked"
        return "soft" if self.result.soft_findings else "ok"

    @property
    def pk_query(self) -> str:
        if self.request.route == "iv":
            return urlencode({"route": "iv", "dose_mg": f"{self.dose_mg:g}",
                              "minutes": f"{self.request.infusion_min:g}"})
        if self.request.route == "intranasal":
            return urlencode({"route": "nasal", "dose_mg": f"{self.dose_mg:g}"})
        return ""

    def display(self) -> dict[str, str]:
        """ISMP-formatted values for the page."""
        out = {"dose": format_dose(self.dose_mg, "mg")}
        for key, value, unit in (("mg_per_kg", self.mg_per_kg, "mg/kg"),
                                 ("rate_mg_per_h", self.rate_mg_per_h, "mg/h"),
                                 ("rate_ml_per_h", self.rate_ml_per_h, "mL/h"),
                                 ("volume_ml", self.volume_ml, "mL"),
                                 ("weight", self.weight_kg, "kg")):
            if value is not None:
                out[key] = format_dose(value, unit)
        if self.dose_weight is not None:
            out["dose_weight"] = format_dose(round(self.dose_weight.dose_weight_kg, 2), "kg")
            if self.dose_weight.basis != "actual":
                out["mg_per_kg_actual"] = format_dose(
                    self.dose_weight.mg_per_kg_actual(self.dose_mg), "mg/kg")
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "route": self.request.route, "treatment": self.request.treatment,
            "rule_set": self.rule_set, "status": self.status, "blocked": self.result.blocked,
            "reentry_required": self.result.reentry_required,
            "dose_mg": self.dose_mg, "mg_per_kg": self.mg_per_kg,
            "rate_mg_per_h": self.rate_mg_per_h, "rate_ml_per_h": self.rate_ml_per_h,
            "volume_ml": self.volume_ml, "devices": self.devices,
            "device_times_min": list(self.device_times_min),
            "weight_kg": self.weight_kg, "weight_source": self.weight_source,
            "weight_measured_on": self.weight_measured_on.isoformat()
            if self.weight_measured_on else None,
            "dose_weight": None if self.dose_weight is None else {
                "basis": self.dose_weight.basis, "dose_weight_kg": self.dose_weight.dose_weight_kg,
                "ideal_weight_kg": self.dose_weight.ideal_weight_kg,
                "actual_weight_kg": self.dose_weight.weight_kg,
                "mg_per_kg_actual": self.dose_weight.mg_per_kg_actual(self.dose_mg),
                "evidence": self.dose_weight.evidence, "source": self.dose_weight.source},
            "display": self.display(), "notes": list(self.notes),
            "titration": [{"label": k, "mg_per_kg": v} for k, v in self.titration],
            "checks": [f.as_dict() for f in self.result.checks],
            "soft_rules": [f.rule for f in self.result.soft_findings],
            "reason_codes": list(self.reason_codes), "pk_query": self.pk_query,
        }


# --------------------------------------------------------------------------- planning


def _weight(req: DoseRequest, w: WeightFacts, today: dt.date
            ) -> tuple[float | None, float | None, float | None, str, dt.date | None,
                       Decimal | None]:
    """(weight, age_days, previous_weight, source, measured_on, weight_to_record)."""
    if req.weight_reentry_kg is not None:
        typed = float(req.weight_reentry_kg)
        if w.latest_kg is None:
            return typed, 0.0, w.last_dose_weight_kg, "re-entered", today, req.weight_reentry_kg
        if abs(typed - w.latest_kg) <= WEIGHT_MATCH_KG:
            record = req.weight_reentry_kg if w.latest_on != today else None
            return typed, 0.0, None, "re-entered (confirms the registry)", today, record
        return typed, 0.0, w.latest_kg, "re-entered", today, req.weight_reentry_kg
    if w.latest_kg is None:
        return None, None, None, "none recorded", None, None
    age_days = float((today - w.latest_on).days) if w.latest_on else None
    previous = w.last_dose_weight_kg if w.last_dose_weight_kg is not None else w.earlier_kg
    return w.latest_kg, age_days, previous, "registry", w.latest_on, None


def plan_dose(req: DoseRequest, rs: RuleSet, *, today: dt.date, birth_date: dt.date, sex: str,
              weights: WeightFacts, previous_dose_mg: float | None,
              previous_mg_per_kg: float | None, screening: Any,
              check: Checker) -> DosePlan:
    """Calculate the dose for ``req`` under ``rs`` and run the (fail-closed) checks."""
    if req.route not in rs.dose_limits:
        raise ClinicalInputError(f"route {req.route} has no dose limits in {rs.ref}")
    age = float(age_on(birth_date, today))
    weight, age_days, prev_weight, source, measured_on, record = _weight(req, weights, today)
    try:
        if req.route == "intranasal":
            return _plan_esketamine(req, rs, age, previous_dose_mg, screening, today, check)
        if weight is None:
            raise ClinicalInputError("no weight recorded: re-enter today's weight in kilograms "
                               "(e.g. '82 kg')")
        return _plan_weight_based(req, rs, age, sex, weight, age_days, prev_weight, source,
                                  measured_on, record, previous_dose_mg, previous_mg_per_kg,
                                  screening, today, check)
    except ClinicalInputError as exc:  # one line, whatever the calculator wrote
        raise ClinicalInputError(" ".join(str(exc).split())) from exc


def _finish(result: DoseCheckResult, screening: Finding, today: dt.date) -> DoseCheckResult:
    """Add the core's screening gate (a HARD one blocks signing the order)."""
    return DoseCheckResult(result.checks + (screening,), result.rule_set,
                           result.override_reason_codes)


def _plan_esketamine(req: DoseRequest, rs: RuleSet, age: float, previous_dose_mg: float | None,
                     screening: Any, today: dt.date, check: Checker) -> DosePlan:
    if req.phase is None or req.session_number is None:
        raise ClinicalInputError("esketamine needs the label phase and the session number")
    requested = None
    if req.dose_mg is not None:
        requested = int(req.dose_mg) if float(req.dose_mg).is_integer() else req.dose_mg
    calc = calculate_esketamine_dose(rs, req.phase, req.session_number, age, requested,
                                     previous_dose_mg)
    order = DoseOrder(route="intranasal", dose_mg=float(calc.dose_mg),
                      previous_dose_mg=previous_dose_mg, phase=req.phase,
                      session_number=req.session_number, age_years=age)
    result = _finish(check(order, rs), screening, today)
    allowed = ", ".join(str(x) for x in calc.allowed_doses_mg)
    notes = (f"Label {req.phase} ({calc.population}): {allowed} mg; {calc.frequency}",
             f"Devices: {calc.devices or '?'} × 28 mg, 5 minutes apart"
             + (f" (at {', '.join(str(t) for t in calc.device_times_min)} min)"
                if calc.device_times_min else ""))
    return DosePlan(req, rs.ref, float(calc.dose_mg), order, result, None, "not used", None,
                    None, None, None, None, None, calc.devices, calc.device_times_min, notes, (),
                    None, rs.override_reason_codes)


def _plan_weight_based(req: DoseRequest, rs: RuleSet, age: float, sex: str, weight: float,
                       age_days: float | None, prev_weight: float | None, source: str,
                       measured_on: dt.date | None, record: Decimal | None,
                       previous_dose_mg: float | None, previous_mg_per_kg: float | None,
                       screening: Any, today: dt.date, check: Checker) -> DosePlan:
    mg_per_kg = req.mg_per_kg
    if mg_per_kg is None:
        raise ClinicalInputError("enter the dose in mg/kg")
    notes: list[str] = []
    rate_h = rate_ml = volume = None
    if req.route == "iv":
        if req.infusion_min is None or req.concentration_mg_per_ml is None:
            raise ClinicalInputError("IV needs the infusion minutes and the concentration (mg/mL)")
        iv = calculate_iv_dose(weight, mg_per_kg, req.infusion_min, req.concentration_mg_per_ml,
                               rs, req.weight_basis, req.height_cm, sex)
        dose_mg, dose_weight = iv.dose_mg, iv.dose_weight
        rate_h, rate_ml, volume = iv.rate_mg_per_h, iv.rate_ml_per_h, iv.volume_ml
    else:
        other = calculate_route_dose(req.route, weight, mg_per_kg, rs, req.weight_basis,
                                     req.height_cm, sex)
        dose_mg, dose_weight = other.dose_mg, other.dose_weight
        f = other.bioavailability
        notes.append(f"Bioavailability {req.route}: {f.value:g} ({f.source}); about "
                     f"{format_dose(other.systemic_mg, 'mg')} reaches the circulation — "
                     "not an IV equivalent to dose by")
    order = DoseOrder(route=req.route, dose_mg=dose_mg, dose_weight_kg=dose_weight.dose_weight_kg,
                      weight_kg=weight, infusion_min=req.infusion_min if req.route == "iv"
                      else None, previous_dose_mg=previous_dose_mg,
                      previous_weight_kg=prev_weight, weight_age_days=age_days, age_years=age,
                      concentration_mg_per_ml=req.concentration_mg_per_ml if req.route == "iv"
                      else None)
    result = _finish(check(order, rs), screening, today)
    titration: list[tuple[str, float]] = []
    if previous_mg_per_kg:
        titration.append(("previous", previous_mg_per_kg))
        for label, steps in (("one step up", 1), ("one step down", -1)):
            try:
                titration.append((label, titrate_mg_per_kg(previous_mg_per_kg, rs, steps)))
            except ClinicalInputError:
                pass
    return DosePlan(req, rs.ref, dose_mg, order, result, weight, source, measured_on,
                    dose_weight, mg_per_kg, rate_h, rate_ml, volume, None, (), tuple(notes),
                    tuple(titration), record, rs.override_reason_codes)
