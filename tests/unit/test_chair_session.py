"""Check-in pre-checks, adverse events and the discharge checklist."""

from datetime import date, datetime, timedelta

import pytest

from ketaclinic.clinical.monitoring import VitalSigns
from ketaclinic.clinical.rules import ClinicalInputError, Level
from ketaclinic.clinical.session import (
    AdverseEvent,
    DischargeInput,
    PreCheckInput,
    blocking,
    check_adverse_event,
    check_esketamine_devices,
    check_pre_treatment,
    evaluate_discharge,
)
from ketaclinic.clinical.session_rules import load_session_rules
from ketaclinic.clinical.treatment_chain import ScreeningState, check_screening

RULES = load_session_rules()
SCREENED = ScreeningState(1, "esketamine", "eligible", date(2026, 3, 1), {})
SCREENING_OK = check_screening(SCREENED, "esketamine", {}, date(2026, 1, 5))
SCREENING_EXPIRED = check_screening(SCREENED, "esketamine", {}, date(2026, 3, 2))
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


def discharge(minutes_after_first_device: int, **changes) -> DischargeInput:
    base = dict(treatment="esketamine", now=DOSE_AT + timedelta(minutes=minutes_after_first_device),
                first_device_at=DOSE_AT, moaas=5, dissociation_resolved=True,
                last_vitals=GOOD_VITALS, responsible_adult_present=True)
    base.update(changes)
    return DischargeInput(**base)


def test_esketamine_discharge_at_120_minutes_is_ready():
    decision = evaluate_discharge(discharge(120), RULES)
    assert decision.ready and all(f.level is Level.OK for f in decision.findings)


def test_esketamine_discharge_at_119_minutes_is_blocked_without_override():
    decision = evaluate_discharge(discharge(119), RULES)
    assert not decision.ready
    assert [f.rule for f in blocking(decision.findings)] == ["discharge.observation_time"]
    assert "override" in decision.findings[0].message


def test_esketamine_early_discharge_with_override_reason_is_allowed_and_recorded():
    decision = evaluate_discharge(discharge(100, override_reason="transfer to ED by ambulance"),
                                  RULES)
    assert decision.ready
    assert decision.findings[0].rule == "discharge.observation_time_overridden"
    assert "ambulance" in decision.findings[0].message


def test_a_blank_override_reason_does_not_count():
    assert not evaluate_discharge(discharge(100, override_reason="   "), RULES).ready


@pytest.mark.parametrize(
    ("changes", "rule"),
    [
        ({"moaas": 4}, "discharge.sedation"),
        ({"moaas": None}, "discharge.sedation"),
        ({"dissociation_resolved": False}, "discharge.dissociation"),
        ({"responsible_adult_present": None}, "discharge.responsible_adult"),
        ({"last_vitals": VitalSigns(DOSE_AT, 185, 95, 80, 97, 14)}, "discharge.vitals"),
        ({"last_vitals": None}, "discharge.vitals"),
    ],
)
def test_discharge_waits_for_sedation_dissociation_vitals_and_an_adult(changes, rule):
    decision = evaluate_discharge(discharge(150, **changes), RULES)
    assert not decision.ready and [f.rule for f in blocking(decision.findings)] == [rule]


def test_iv_discharge_counts_from_infusion_end_and_accepts_rass():
    inp = discharge(0, treatment="iv_ketamine", first_device_at=None,
                    infusion_end_at=DOSE_AT - timedelta(minutes=60), moaas=None, rass=0)
    assert evaluate_discharge(inp, RULES).ready


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
