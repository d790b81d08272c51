"""Dose plans at the service boundary: the request parsed from a form or JSON, the core's plan
(:mod:`ketaclinic.clinical.dose_plan`) with its refusals as invalid input, and the columns of
the dose order it is saved as."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from ketaclinic.clinical.dose_plan import (
    ROUTES,
    Checker,
    DosePlan,
    DoseRequest,
    OverrideInput,
    WeightFacts,
)
from ketaclinic.clinical.dose_plan import plan_dose as plan_in_core
from ketaclinic.clinical.dosing import ESKETAMINE_PHASES, WEIGHT_BASES
from ketaclinic.clinical.inputs import parse_number
from ketaclinic.clinical.rules import ClinicalInputError
from ketaclinic.clinical.rulesets import RuleSet
from ketaclinic.clinical.units import parse_weight_kg
from ketaclinic.services.errors import InvalidInput


def plan_dose(req: DoseRequest, rs: RuleSet, *, today: dt.date, birth_date: dt.date, sex: str,
              weights: WeightFacts, previous_dose_mg: float | None,
              previous_mg_per_kg: float | None, screening: Any, check: Checker) -> DosePlan:
    """The core's :func:`~ketaclinic.clinical.dose_plan.plan_dose`; what it refuses is invalid
    input (nothing is saved)."""
    try:
        return plan_in_core(req, rs, today=today, birth_date=birth_date, sex=sex,
                            weights=weights, previous_dose_mg=previous_dose_mg,
                            previous_mg_per_kg=previous_mg_per_kg, screening=screening,
                            check=check)
    except ClinicalInputError as exc:
        raise InvalidInput(str(exc)) from exc


def order_columns(plan: DosePlan) -> dict[str, Any]:
    """Column values of ``plan`` for the saved dose order."""
    def dec(v: float | None) -> Decimal | None:
        return None if v is None else Decimal(str(round(v, 4)))

    r = plan.request
    return {
        "treatment": r.treatment, "route": r.route, "ruleset_ref": plan.rule_set,
        "dose_mg": dec(plan.dose_mg), "mg_per_kg": dec(plan.mg_per_kg),
        "weight_kg": dec(plan.weight_kg),
        "weight_basis": plan.dose_weight.basis if plan.dose_weight else "",
        "dose_weight_kg": dec(round(plan.dose_weight.dose_weight_kg, 2))
        if plan.dose_weight else None,
        "infusion_min": dec(r.infusion_min), "concentration_mg_per_ml":
        dec(r.concentration_mg_per_ml), "rate_mg_per_h": dec(plan.rate_mg_per_h),
        "rate_ml_per_h": dec(plan.rate_ml_per_h), "phase": r.phase or "",
        "session_number": r.session_number, "devices": plan.devices,
        "previous_dose_mg": dec(plan.order.previous_dose_mg),
        "inputs_json": _inputs_json(r),
    }


def _inputs_json(r: DoseRequest) -> str:
    data = {k: v for k, v in r.__dict__.items() if k != "overrides" and v is not None}
    if r.weight_reentry_kg is not None:
        data["weight_reentry_kg"] = str(r.weight_reentry_kg)
    return json.dumps(data, sort_keys=True)


# --------------------------------------------------------------------------- parsing


def _number(data: Mapping[str, Any], key: str, label: str) -> float | None:
    value = data.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        return parse_number(label, value)
    except ClinicalInputError as exc:
        raise InvalidInput(str(exc)) from exc


def parse_dose_request(data: Mapping[str, Any],
                       overrides: list[dict[str, Any]] | None = None) -> DoseRequest:
    """Build a request from form fields (text) or API JSON (numbers or text)."""
    route = str(data.get("route") or "")
    if route not in ROUTES:
        raise InvalidInput(f"route must be one of {', '.join(ROUTES)}")
    basis = str(data.get("weight_basis") or "") or None
    if basis is not None and basis not in WEIGHT_BASES:
        raise InvalidInput(f"weight basis must be one of {', '.join(WEIGHT_BASES)}")
    phase = str(data.get("phase") or "") or None
    if phase is not None and phase not in ESKETAMINE_PHASES:
        raise InvalidInput(f"phase must be one of {', '.join(ESKETAMINE_PHASES)}")
    course = _number(data, "course_id", "course")
    if course is not None and (not course.is_integer() or course < 1):
        raise InvalidInput("course must be a course id")
    session = _number(data, "session_number", "session number")
    if session is not None and (not session.is_integer() or not 1 <= session <= 1000):
        raise InvalidInput("session number must be a whole number from 1")
    reentry = data.get("weight_reentry")
    weight = None
    if reentry is not None and str(reentry).strip():
        try:
            weight = parse_weight_kg(str(reentry))
        except ClinicalInputError as exc:
            raise InvalidInput(f"re-entered weight: {exc}") from exc
    items = []
    for o in overrides or []:
        if not isinstance(o, Mapping):
            raise InvalidInput("each override must be an object with rule, reason_code, "
                               "free_text")
        text = str(o.get("free_text") or "").strip()
        if len(text) > 1000:
            raise InvalidInput("override free text is longer than 1000 characters")
        items.append(OverrideInput(str(o.get("rule") or "")[:60],
                                   str(o.get("reason_code") or "")[:60], text))
    return DoseRequest(
        route=route,
        mg_per_kg=_number(data, "mg_per_kg", "mg/kg"),
        weight_basis=basis,
        height_cm=_number(data, "height_cm", "height (cm)"),
        infusion_min=_number(data, "infusion_min", "infusion minutes"),
        concentration_mg_per_ml=_number(data, "concentration_mg_per_ml",
                                        "concentration (mg/mL)"),
        phase=phase,
        session_number=None if session is None else int(session),
        dose_mg=_number(data, "dose_mg", "dose (mg)"),
        weight_reentry_kg=weight,
        overrides=tuple(items),
        course_id=None if course is None else int(course),
    )


def overrides_from_form(form: Mapping[str, str]) -> list[dict[str, str]]:
    """``override-<rule>-code`` / ``override-<rule>-text`` pairs from the dose page."""
    out = []
    for key, code in form.items():
        if key.startswith("override-") and key.endswith("-code"):
            rule = key[len("override-"):-len("-code")]
            text = form.get(f"override-{rule}-text", "")
            if code or text.strip():
                out.append({"rule": rule, "reason_code": code, "free_text": text})
    return out
