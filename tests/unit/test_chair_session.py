"""Check-in pre-checks and adverse events (the discharge checklist: test_discharge_gate.py)."""

from datetime import date, datetime, timedelta

import pytest
from kcchain import SCREENED_DOC

from ketaclinic.clinical.monitoring import VitalSigns
from ketaclinic.clinical.rules import ClinicalInputError, Level
from ketaclinic.clinical.rulesets import load_bundled_ruleset
from ketaclinic.clinical.session import (
    AdverseEvent,
    PreCheckInput,
    blocking,
    check_adverse_event,
    check_esketamine_devices,
    check_pre_treatment,
)
from ketaclinic.clinical.session_rules import load_session_rules
from ketaclinic.clinical.treatment_chain import ScreeningState, check_screening

RULES = load_session_rules()
US = load_bundled_ruleset("esketamine-us")
SCREENED = ScreeningState(1, "esketamine", "eligible", date(2026, 3, 1), SCREENED_DOC)
SCREENING_OK = check_screening(SCREENED, "esketamine", SCREENED_DOC, date(2026, 1, 5), US)
SCREENING_EXPIRED = check_screening(SCREENED, "esketamine", SCREENED_DOC, date(2026, 3, 2), US)
DOSE_AT = datetime(2026, 1, 5, 10, 0)
GOOD_VITALS = VitalSigns(DOSE_AT + timedelta(minutes=115), 128, 80, 74, 98, 14)


def ready_precheck(**changes) -> PreCheckInput:
    base = dict(
        treatment="esketamine", planned_dose_at=DOSE_AT, consent_on_file=True, rems_enrolled=True,
        last_food_at=DOSE_AT - timedelta(hours=3), last_liquid_at=DOSE_AT - timedelta(minutes=45),
        ride_home_arranged=True, screening=SCREENING_OK,
        weight_measured_on=date(2026, 1, 1),
    )
    base.update(changes)
    return PreCheckInput(**base)


def test_a_patient_who_followed_the_instructions_passes_every_precheck():
    assert blocking(check_pre_treatment(ready_precheck(), RULES)) == []


@pytest.mark.parametrize(
    ("changes", "rule", "level"),
    [
        ({"consent_on_file": False}, "precheck.consent", Level.HARD),
        ({"rems_enrolled": None}, "precheck.rems_enrolled", Level.HARD),
        ({"last_food_at": DOSE_AT - timedelta(minutes=119)}, "precheck.no_food", Level.SOFT),
        ({"last_liquid_at": DOSE_AT - timedelta(minutes=20)}, "precheck.no_liquids", Level.SOFT),
        ({"last_food_at": None}, "precheck.no_food", Level.SOFT),
        ({"uses_nasal_steroid_or_decongestant": True,
          "nasal_steroid_or_decongestant_at": DOSE_AT - timedelta(minutes=30)},
         "precheck.nasal_timing", Level.SOFT),
        ({"ride_home_arranged": False}, "precheck.ride_home", Level.SOFT),
        ({"screening": None}, "precheck.screening_valid", Level.HARD),
        ({"screening": SCREENING_EXPIRED}, "chain.screening", Level.HARD),
        ({"pregnancy_test_relevant": True, "pregnancy_test_negative_on": date(2025, 12, 1)},
         "precheck.pregnancy_test", Level.SOFT),
        ({"treatment": "iv_ketamine", "weight_measured_on": date(2025, 11, 1)},
         "precheck.weight_fresh", Level.SOFT),
    ],
)
def test_each_failed_precheck_is_explained(changes, rule, level):
    problems = blocking(check_pre_treatment(ready_precheck(**changes), RULES))
    assert [(f.rule, f.level) for f in problems] == [(rule, level)]


def test_nasal_spray_an_hour_before_is_fine():
    inp = ready_precheck(uses_nasal_steroid_or_decongestant=True,
                         nasal_steroid_or_decongestant_at=DOSE_AT - timedelta(minutes=60))
    assert blocking(check_pre_treatment(inp, RULES)) == []


def test_fasting_rule_for_esketamine_is_confirmed_and_cited():
    finding = check_pre_treatment(ready_precheck(last_food_at=DOSE_AT), RULES)[1]
    assert "grade C" in finding.message and "2 h" in finding.source


def test_moderate_adverse_event_needs_an_action():
    ev = AdverseEvent("nausea", "moderate", DOSE_AT, action_taken="")
    assert check_adverse_event(ev, RULES)[0].rule == "ae.action_required"
    ok = check_adverse_event(AdverseEvent("nausea", "mild", DOSE_AT, ""), RULES)
    assert ok[0].level is Level.OK and ok[0].values["suggested_action"]


def test_serious_adverse_event_prompts_reporting():
    ev = AdverseEvent("respiratory_depression", "serious", DOSE_AT, "oxygen, prescriber called")
    assert [f.rule for f in check_adverse_event(ev, RULES)] == ["ae.serious"]


def test_unknown_adverse_event_term_or_severity_is_refused():
    with pytest.raises(ClinicalInputError):
        check_adverse_event(AdverseEvent("hiccups", "mild", DOSE_AT, ""), RULES)
    with pytest.raises(ClinicalInputError):
        check_adverse_event(AdverseEvent("nausea", "awful", DOSE_AT, ""), RULES)


def test_iv_ketamine_does_not_need_rems_enrolment():
    inp = ready_precheck(treatment="iv_ketamine", rems_enrolled=None)
    assert "precheck.rems_enrolled" not in {f.rule for f in check_pre_treatment(inp, RULES)}


def test_84_mg_is_three_devices_five_minutes_apart():
    times = [DOSE_AT + timedelta(minutes=m) for m in (0, 5, 10)]
    assert check_esketamine_devices(84, times) == []
    assert [f.rule for f in check_esketamine_devices(56, times)] == ["dose.device_count"]
    close = [DOSE_AT, DOSE_AT + timedelta(minutes=3)]
    assert [f.rule for f in check_esketamine_devices(56, close)] == ["dose.device_gap"]
    with pytest.raises(ClinicalInputError):
        check_esketamine_devices(50, times)
