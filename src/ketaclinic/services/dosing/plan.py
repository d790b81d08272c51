"""Dose plans at the service boundary: the core's plan (:mod:`ketaclinic.clinical.dose_plan`)
with its refusals as invalid input, and the columns of the dose order it is saved as. The request
comes from :func:`ketaclinic.services.dosing.inputs.to_dose_request`."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

from ketaclinic.clinical.dose_plan import Checker, DosePlan, DoseRequest, WeightFacts
from ketaclinic.clinical.dose_plan import plan_dose as plan_in_core
from ketaclinic.clinical.rules import ClinicalInputError
from ketaclinic.clinical.rulesets import RuleSet
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
