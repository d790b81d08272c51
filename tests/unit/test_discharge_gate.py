"""Discharge is earned (issue 12 item 5): the core's checklist, with no override."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kctest import examples

from ketaclinic.clinical.discharge import (
    DischargeInput,
    evaluate_discharge,
    left_against_advice,
)
from ketaclinic.clinical.monitoring import VitalSigns
from ketaclinic.clinical.rules import ClinicalInputError, Level
from ketaclinic.clinical.rulesets import load_bundled_ruleset, load_ruleset
from ketaclinic.clinical.session import blocking
from ketaclinic.clinical.session_rules import load_session_rules

RULES = load_session_rules()
ESK = load_bundled_ruleset("esketamine-us")
IV = load_bundled_ruleset("ketamine-iv")
DOSE_AT = datetime(2026, 1, 5, 10, 0)


def vitals(minutes_before_now: float, now: datetime, sbp=128, dbp=80, hr=74, spo2=98, rr=14):
    return VitalSigns(now - timedelta(minutes=minutes_before_now), sbp, dbp, hr, spo2, rr)


def discharge(minutes_after_first_device: float = 125, **changes) -> DischargeInput:
    now = DOSE_AT + timedelta(minutes=minutes_after_first_device)
    base = dict(treatment="esketamine", now=now, first_device_at=DOSE_AT, moaas=5,
                moaas_at=now - timedelta(minutes=3), dissociation_resolved=True,
                respiratory_depression_resolved=True, responsible_adult_present=True,
                vitals=(vitals(5, now),), open_alerts=0)
    base.update(changes)
    return DischargeInput(**base)


def rules_hit(inp: DischargeInput, limits=ESK) -> list[str]:
    return [f.rule for f in blocking(evaluate_discharge(inp, RULES, limits).findings)]


def test_esketamine_discharge_at_120_minutes_with_everything_recent_is_ready():
    decision = evaluate_discharge(discharge(120), RULES, ESK)
    assert decision.ready and all(f.level is Level.OK for f in decision.findings)
    assert {f.rule for f in decision.findings} >= {
        "discharge.observation_time", "discharge.vitals", "discharge.bp", "discharge.sedation",
        "discharge.alerts"}


@pytest.mark.parametrize("minutes", [0, 60, 100, 119.9])
def test_esketamine_before_120_minutes_is_a_hard_stop_with_no_override(minutes):
    decision = evaluate_discharge(discharge(minutes), RULES, ESK)
    assert not decision.ready
    finding = decision.findings[0]
    assert finding.rule == "discharge.observation_time" and finding.level is Level.HARD
    assert "left against advice" in finding.message and "REMS" in finding.source
    assert decision.earliest_at == DOSE_AT + timedelta(minutes=120)


def test_the_old_override_field_no_longer_exists():
    with pytest.raises(TypeError):
        DischargeInput(treatment="esketamine", now=DOSE_AT, override_reason="transfer")


def test_a_clinic_observation_time_longer_than_the_label_is_used_a_shorter_one_is_not():
    longer, shorter = ESK.to_dict(), ESK.to_dict()
    longer["parameters"]["observation-min"]["value"] = 150
    shorter["parameters"]["observation-min"]["value"] = 30
    assert rules_hit(discharge(130), load_ruleset(longer)) == ["discharge.observation_time"]
    assert rules_hit(discharge(60), load_ruleset(shorter)) == ["discharge.observation_time"]


def test_the_issue_reproduction_a_heart_rate_only_row_does_not_discharge():
    now = DOSE_AT + timedelta(minutes=125)
    hr_only = VitalSigns(now - timedelta(minutes=5), hr_bpm=72)
    decision = evaluate_discharge(discharge(125, vitals=(hr_only,)), RULES, ESK)
    finding = next(f for f in decision.findings if f.rule == "discharge.vitals")
    assert finding.level is Level.HARD and "systolic BP" in finding.message
    assert "SpO2" in finding.message and not decision.ready


def test_the_issue_reproduction_bp_178_over_108_does_not_discharge():
    now = DOSE_AT + timedelta(minutes=125)
    decision = evaluate_discharge(discharge(125, vitals=(vitals(5, now, 178, 108),)), RULES, ESK)
    bp = next(f for f in decision.findings if f.rule == "discharge.bp")
    assert bp.level is Level.HARD and bp.values["sbp_max"] == 160 and "178/108" in bp.message
    assert bp.source.startswith("ketaclinic discharge policy")


def test_a_complete_set_older_than_the_window_does_not_count_but_a_new_one_does():
    now = DOSE_AT + timedelta(minutes=125)
    assert rules_hit(discharge(125, vitals=(vitals(16, now),))) == ["discharge.vitals"]
    assert rules_hit(discharge(125, vitals=(vitals(16, now), vitals(14, now)))) == []


def test_a_reading_in_the_future_does_not_count():
    now = DOSE_AT + timedelta(minutes=125)
    assert rules_hit(discharge(125, vitals=(vitals(-5, now),))) == ["discharge.vitals"]


def test_the_window_is_rule_set_data():
    doc = ESK.to_dict()
    doc["parameters"]["discharge-vitals-window-min"]["value"] = 30
    now = DOSE_AT + timedelta(minutes=125)
    assert rules_hit(discharge(125, vitals=(vitals(20, now),)), load_ruleset(doc)) == []


@pytest.mark.parametrize(
    ("changes", "rule"),
    [
        ({"moaas": 4}, "discharge.sedation"),
        ({"moaas": None}, "discharge.sedation"),
        ({"moaas_at": DOSE_AT}, "discharge.sedation"),  # rated two hours ago
        ({"dissociation_resolved": False}, "discharge.dissociation"),
        ({"respiratory_depression_resolved": None}, "discharge.respiratory"),
        ({"responsible_adult_present": None}, "discharge.responsible_adult"),
        ({"open_alerts": 1}, "discharge.alerts"),
        ({"open_alerts": None}, "discharge.alerts"),
        ({"vitals": ()}, "discharge.vitals"),
    ],
)
def test_each_criterion_on_its_own_blocks(changes, rule):
    assert rules_hit(discharge(150, **changes)) == [rule]


def test_vitals_over_an_alert_threshold_block_discharge():
    now = DOSE_AT + timedelta(minutes=125)
    assert rules_hit(discharge(125, vitals=(vitals(5, now, spo2=90),))) == ["discharge.vitals"]


def test_without_a_rule_set_or_its_discharge_keys_discharge_fails_closed():
    assert "discharge.limits" in rules_hit(discharge(150), None)
    doc = ESK.to_dict()
    del doc["parameters"]["discharge-sbp-max-mmhg"]
    assert "discharge.limits" in rules_hit(discharge(150), load_ruleset(doc))


def test_iv_discharge_counts_from_infusion_end():
    inp = discharge(0, treatment="iv_ketamine", first_device_at=None,
                    infusion_end_at=DOSE_AT - timedelta(minutes=60))
    assert evaluate_discharge(inp, RULES, IV).ready
    early = discharge(0, treatment="iv_ketamine", first_device_at=None,
                      infusion_end_at=DOSE_AT - timedelta(minutes=30))
    assert rules_hit(early, IV) == ["discharge.observation_time"]


def test_leaving_early_is_recorded_as_left_against_advice_never_ready():
    decision = evaluate_discharge(discharge(60), RULES, ESK)
    findings = left_against_advice(decision, "told to stay 60 more minutes; said taxi waiting")
    assert findings[0].rule == "discharge.left_against_advice"
    assert findings[0].level is Level.HARD
    assert findings[0].values["unmet"] == ["discharge.observation_time"]
    assert "taxi" in findings[0].values["statement"]


def test_left_against_advice_needs_what_was_said_and_a_failing_checklist():
    with pytest.raises(ClinicalInputError, match="told"):
        left_against_advice(evaluate_discharge(discharge(60), RULES, ESK), "  ")
    with pytest.raises(ClinicalInputError, match="discharge the patient instead"):
        left_against_advice(evaluate_discharge(discharge(125), RULES, ESK), "wants to go")


@settings(max_examples=examples(300), deadline=None)
@given(minutes=st.floats(0, 600), sbp=st.integers(60, 240), dbp=st.integers(30, 140),
       age=st.floats(0, 60), moaas=st.integers(0, 5), alerts=st.integers(0, 3))
def test_no_esketamine_discharge_is_ready_before_120_minutes_or_with_high_bp(
        minutes, sbp, dbp, age, moaas, alerts):
    now = DOSE_AT + timedelta(minutes=minutes)
    inp = discharge(minutes, vitals=(vitals(age, now, sbp, dbp),), moaas=moaas, open_alerts=alerts)
    decision = evaluate_discharge(inp, RULES, ESK)
    if decision.ready:
        assert minutes >= 120 and sbp <= 160 and dbp <= 100 and age <= 15
        assert moaas == 5 and alerts == 0
