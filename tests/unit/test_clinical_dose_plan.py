"""The pure dose plan (clinical/dose_plan.py): the weight it rests on and what it refuses.

No database: the registry weights, the previous dose and the screening finding are values.
Refusals are the core's ClinicalInputError (the service maps them to invalid input).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ketaclinic.clinical.dose_checks import check_dose
from ketaclinic.clinical.dose_plan import (
    WEIGHT_MATCH_KG,
    DoseRequest,
    WeightFacts,
    plan_dose,
)
from ketaclinic.clinical.rules import ClinicalInputError, Finding, Level
from ketaclinic.clinical.rulesets import load_bundled_ruleset

TODAY = dt.date(2026, 3, 2)
IV = load_bundled_ruleset("ketamine-iv")
SCREENED = Finding("screening", Level.OK, "screened")


def _plan(req: DoseRequest, weights: WeightFacts, rs=IV):  # type: ignore[no-untyped-def]
    return plan_dose(req, rs, today=TODAY, birth_date=dt.date(1980, 1, 1), sex="female",
                     weights=weights, previous_dose_mg=None, previous_mg_per_kg=None,
                     screening=SCREENED, check=check_dose)


def _iv(**kw) -> DoseRequest:  # type: ignore[no-untyped-def]
    return DoseRequest("iv", mg_per_kg=0.5, infusion_min=40, concentration_mg_per_ml=1.0, **kw)


REGISTRY = WeightFacts(80.0, dt.date(2026, 3, 1), 79.0, None)


def test_the_registry_weight_is_used_and_the_screening_is_the_last_check():
    plan = _plan(_iv(), REGISTRY)
    assert (plan.weight_kg, plan.weight_source, plan.weight_measured_on) == (
        80.0, "registry", dt.date(2026, 3, 1))
    assert plan.record_weight_kg is None
    assert plan.result.checks[-1] is SCREENED
    assert plan.order.previous_weight_kg == 79.0 and plan.order.weight_age_days == 1.0


@settings(max_examples=60, deadline=None)
@given(st.decimals(min_value=Decimal("-0.05"), max_value=Decimal("0.05"), places=2))
def test_a_reentered_weight_within_the_match_confirms_the_registry(delta):
    typed = Decimal("80") + delta
    plan = _plan(_iv(weight_reentry_kg=typed), REGISTRY)
    assert abs(float(delta)) <= WEIGHT_MATCH_KG
    assert plan.weight_source == "re-entered (confirms the registry)"
    assert plan.order.previous_weight_kg is None  # nothing to compare with
    assert plan.record_weight_kg == typed  # the registry's is from yesterday: record today's


@settings(max_examples=60, deadline=None)
@given(st.decimals(min_value=Decimal("0.1"), max_value=Decimal("5"), places=1),
       st.sampled_from([1, -1]))
def test_a_reentered_weight_that_differs_is_compared_with_the_registry(delta, sign):
    typed = Decimal("80") + sign * delta
    plan = _plan(_iv(weight_reentry_kg=typed), REGISTRY)
    assert plan.weight_source == "re-entered"
    assert plan.order.previous_weight_kg == 80.0
    assert plan.weight_kg == float(typed) and plan.record_weight_kg == typed


@pytest.mark.parametrize(("req", "weights", "message"), [
    (_iv(), WeightFacts(None, None, None, None), "no weight recorded"),
    (DoseRequest("iv", infusion_min=40, concentration_mg_per_ml=1.0), REGISTRY,
     "enter the dose in mg/kg"),
    (DoseRequest("iv", mg_per_kg=0.5), REGISTRY, "IV needs the infusion minutes"),
    (DoseRequest("intranasal", dose_mg=56), REGISTRY, "no dose limits in"),
])
def test_what_the_core_cannot_plan_is_a_clinical_input_error(req, weights, message):
    with pytest.raises(ClinicalInputError, match=message) as exc:
        _plan(req, weights)
    assert "\n" not in str(exc.value)


def test_esketamine_needs_its_phase_and_session():
    rs = load_bundled_ruleset("esketamine-us")
    with pytest.raises(ClinicalInputError, match="label phase and the session number"):
        _plan(DoseRequest("intranasal"), REGISTRY, rs)
    plan = _plan(DoseRequest("intranasal", phase="induction", session_number=1), REGISTRY, rs)
    assert plan.dose_mg == 56.0 and plan.weight_source == "not used" and plan.devices == 2
