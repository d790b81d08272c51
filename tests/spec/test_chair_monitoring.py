"""Pre-dose BP gate (label/SmPC guide values), timed vitals, vital-sign alerts."""

from datetime import datetime, timedelta

import pytest

from ketaclinic.clinical.monitoring import (
    DUE_NOW,
    MISSED,
    OVERDUE,
    VitalSigns,
    assessments_due,
    check_predose_bp,
    check_vitals,
    vitals_due,
    vitals_schedule,
)
from ketaclinic.clinical.rules import ClinicalInputError, Grade, Level
from ketaclinic.clinical.session_rules import load_session_rules

RULES = load_session_rules()
START = datetime(2026, 1, 5, 9, 0)


@pytest.mark.parametrize(
    ("sbp", "dbp", "treatment", "jurisdiction", "age", "level"),
    [
        (140, 90, "esketamine", "US", 40, Level.OK),  # label: "> 140/90"
        (141, 85, "esketamine", "US", 40, Level.SOFT),
        (130, 91, "esketamine", "US", 70, Level.SOFT),  # no age band in the US
        (145, 85, "esketamine", "EU", 64, Level.SOFT),  # SmPC < 65: 140/90
        (145, 85, "esketamine", "EU", 65, Level.OK),  # SmPC >= 65: 150/90
        (151, 85, "esketamine", "EU", 70, Level.SOFT),
        (145, 85, "esketamine", "EU", None, Level.SOFT),  # unknown age: stricter value
        (141, 80, "iv_ketamine", "US", 40, Level.SOFT),
        (185, 95, "esketamine", "US", 40, Level.HARD),
        (150, 112, "iv_ketamine", "EU", 40, Level.HARD),
    ],
)
def test_predose_bp_gate_follows_the_cited_guide_values(sbp, dbp, treatment, jurisdiction, age,
                                                        level):
    finding = check_predose_bp(sbp, dbp, treatment, jurisdiction, age, RULES)
    assert finding.level is level and finding.source


def test_iv_bp_gate_is_marked_unconfirmed():
    finding = check_predose_bp(150, 80, "iv_ketamine", "US", 40, RULES)
    assert "grade U" in finding.message


def test_an_implausible_bp_is_an_input_error_not_an_alert():
    with pytest.raises(ClinicalInputError):
        check_predose_bp(1400, 90, "esketamine", "US", 40, RULES)


def test_esketamine_vitals_include_the_40_minute_bp():
    assert 40 in vitals_schedule("esketamine", RULES)
    assert vitals_schedule("esketamine", RULES)[-1] == 120
    assert RULES.vitals_extra_source["esketamine"].grade is Grade.CONFIRMED


def test_vitals_interval_is_configurable():
    assert vitals_schedule("iv_ketamine", RULES, interval_min=30) == [0, 30, 60, 90]


def test_a_point_becomes_due_now_then_overdue_then_missed():
    recorded = [START]
    at = {m: vitals_due(START, recorded, START + timedelta(minutes=m), "iv_ketamine", RULES)
          for m in (9, 12, 21, 24)}
    assert at[9] == []
    assert [(d.t_min, d.status) for d in at[12]] == [(15, DUE_NOW)]
    assert [(d.t_min, d.status) for d in at[21]] == [(15, OVERDUE)]
    assert [(d.t_min, d.status) for d in at[24]] == [(15, MISSED)]


def test_a_reading_a_little_early_or_late_satisfies_the_point():
    recorded = [START, START + timedelta(minutes=13), START + timedelta(minutes=33)]
    assert vitals_due(START, recorded, START + timedelta(minutes=36), "iv_ketamine", RULES) == []


def test_a_late_40_minute_reading_is_not_taken_for_the_45_minute_one():
    recorded = [START + timedelta(minutes=m) for m in (0, 15, 30, 41)]
    due = vitals_due(START, recorded, START + timedelta(minutes=44), "esketamine", RULES)
    assert [(d.t_min, d.status) for d in due] == [(45, DUE_NOW)]


def test_sedation_and_dissociation_ratings_are_due_per_instrument():
    recorded = [("MOAA/S", START), ("MOAA/S", START + timedelta(minutes=15))]
    due = assessments_due(START, recorded, START + timedelta(minutes=38), "esketamine", RULES)
    assert {(d.label, d.t_min) for d in due} == {("MOAA/S", 30), ("CADSS", 40)}


@pytest.mark.parametrize(
    ("field", "value", "treatment", "rule"),
    [
        ("sbp_mmhg", 181, "esketamine", "vitals.sbp_mmhg_high"),
        ("sbp_mmhg", 89, "esketamine", "vitals.sbp_mmhg_low"),
        ("dbp_mmhg", 111, "esketamine", "vitals.dbp_mmhg_high"),
        ("hr_bpm", 121, "esketamine", "vitals.hr_bpm_high"),
        ("hr_bpm", 111, "iv_ketamine", "vitals.hr_bpm_high"),
        ("hr_bpm", 49, "iv_ketamine", "vitals.hr_bpm_low"),
        ("spo2_pct", 91, "esketamine", "vitals.spo2_pct_low"),
        ("rr_per_min", 9, "iv_ketamine", "vitals.rr_per_min_low"),
        ("rr_per_min", 26, "esketamine", "vitals.rr_per_min_high"),
    ],
)
def test_vital_sign_thresholds_raise_alerts_that_require_an_action(field, value, treatment, rule):
    reading = VitalSigns(START, **{field: value})
    findings = check_vitals(reading, treatment, RULES)
    assert [f.rule for f in findings] == [rule]
    assert findings[0].values["action_required"] and findings[0].values["action"]
    assert "grade U" in findings[0].message


def test_hr_115_alerts_for_iv_but_not_for_esketamine():
    reading = VitalSigns(START, hr_bpm=115)
    assert check_vitals(reading, "iv_ketamine", RULES)
    assert check_vitals(reading, "esketamine", RULES) == []


def test_normal_vitals_raise_no_alert():
    reading = VitalSigns(START, 125, 80, 72, 98, 14)
    assert check_vitals(reading, "esketamine", RULES) == []
