"""What the chart recorded since a screening is graded under the rule set a new screening would use.

A new fact that a new screening would grade *ineligible* (an absolute contraindication of the
rule set: a ketamine or esketamine hypersensitivity, an aneurysm or AVM, an intracerebral
haemorrhage, under the EU SmPC a recent cardiovascular event) re-opens the screening for a new
screening only: the prescriber's sign-off is refused, naming the fact. A fact a new screening
would send to *review* (a relative contraindication, an interacting medicine, a condition the
rule set does not know) re-opens it for a sign-off, as before. Where the rule set grades a
medicine by its dose (the IV set's benzodiazepine diazepam-equivalent threshold), a dose raised
past the threshold since the screening re-opens it like a new medicine.

The cases come from the bundled rule sets (ketamine-iv, esketamine-us, esketamine-eu): every
absolute and every relative contraindication of each.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from datetime import date, datetime

import pytest
from kcchain import SCREENED_DOC
from kcfacts import ALL, EU, IV, US

from ketaclinic.clinical.eligibility import patient_from_dict, screen_patient
from ketaclinic.clinical.rules import Level
from ketaclinic.clinical.rulesets import load_ruleset
from ketaclinic.clinical.treatment_chain import ScreeningState, check_screening, check_signoff

TODAY = date(2026, 11, 2)
NOW = datetime(2026, 11, 2, 10, 0)
#: the condition flags pregnancy, breast-feeding and substance use come from their own answers
ANSWERED = {"pregnancy": {"pregnant": True}, "breastfeeding": {"breastfeeding": True},
            "substance_use_disorder": {"substance_use_disorder": "current"}}


def doc(**fields):  # type: ignore[no-untyped-def]
    """The screened document (a man of 46, eligible everywhere) with ``fields`` replaced."""
    return copy.deepcopy(SCREENED_DOC) | fields


def with_condition(base: dict, condition: str) -> dict:
    if condition in ANSWERED:
        return base | ANSWERED[condition]
    return base | {"conditions": [*base.get("conditions", []), condition]}


def state(treatment: str, inputs: dict, decision: str = "eligible", **more) -> ScreeningState:  # type: ignore[no-untyped-def]
    return ScreeningState(screening_id=7, treatment=treatment, decision=decision,
                          expires_on=date(2027, 1, 31), screened_inputs=inputs, **more)


def signed(s: ScreeningState, seen: dict) -> ScreeningState:
    return replace(s, signoff_by="dr", signoff_at=NOW, signoff_reason="reviewed",
                   signoff_inputs=seen)


def cases(severity: str) -> list:
    return [pytest.param(rs, treatment, ci.condition, id=f"{rs.id}-{ci.condition}")
            for rs, treatment in ALL for ci in rs.contraindications if ci.severity == severity]


def test_the_screened_patient_is_eligible_under_every_rule_set():
    for rs, treatment in ALL:
        assert screen_patient(patient_from_dict(doc()), treatment, rs, TODAY).decision \
            == "eligible"


# --------------------------------------------------------------------------- absolute


@pytest.mark.parametrize(("rs", "treatment", "condition"), cases("absolute"))
def test_an_absolute_contraindication_recorded_since_needs_a_new_screening_not_a_sign_off(
        rs, treatment, condition):
    now = with_condition(doc(), condition)
    for before in (state(treatment, doc()), state(treatment, doc(), "review")):
        refused = check_signoff(before, now, TODAY, "reviewed", rs)
        assert refused.level is Level.HARD, refused.message
        assert f"condition {condition}, recorded since the screening: Absolute " \
               "contraindication" in refused.message
        assert "a sign-off cannot clear it" in refused.message
        gate = check_screening(before, treatment, now, TODAY, rs)
        assert (gate.rule, gate.level) == ("chain.screening_reopened", Level.HARD)
        assert gate.message.startswith("a new screening would find the patient ineligible")
        assert "sign off" not in gate.message.replace("a sign-off cannot", "")
        assert gate.values["ineligible"] == refused.values["ineligible"]
    # and a new screening agrees: ineligible
    assert screen_patient(patient_from_dict(now), treatment, rs, TODAY).decision == "ineligible"


def test_a_ketamine_allergy_recorded_after_a_sign_off_is_not_covered_by_that_sign_off():
    reviewed = doc(medications=[{"name": "lorazepam", "class": "benzodiazepine",
                                 "daily_dose_mg": 4}])
    before = signed(state("ketamine-iv", reviewed, "review"), reviewed)
    assert check_screening(before, "ketamine-iv", reviewed, TODAY, IV).level is Level.OK
    now = reviewed | {"conditions": ["hypersensitivity_ketamine"]}
    gate = check_screening(before, "ketamine-iv", now, TODAY, IV)
    assert gate.level is Level.HARD and "hypersensitivity_ketamine" in gate.message
    assert "Hypersensitivity to ketamine" in gate.message and IV.ref in gate.message
    refused = check_signoff(before, now, TODAY, "allergy was mild", IV)
    assert refused.level is Level.HARD and "hypersensitivity_ketamine" in refused.message


def test_a_condition_the_active_rule_set_grades_absolute_is_named_as_graded_since():
    """Screened under the US label, where a recent cardiovascular event is not a rule (review,
    signed off); the clinic now screens under the EU SmPC, which grades it absolute."""
    assert "recent_cardiovascular_event" not in {c.condition for c in US.contraindications}
    seen = doc(conditions=["recent_cardiovascular_event"])
    assert screen_patient(patient_from_dict(seen), "esketamine", US, TODAY).decision == "review"
    before = signed(state("esketamine", seen, "review"), seen)
    assert check_screening(before, "esketamine", seen, TODAY, US).level is Level.OK
    gate = check_screening(before, "esketamine", seen, TODAY, EU)
    assert gate.level is Level.HARD
    assert f"recent_cardiovascular_event, graded absolute by {EU.ref} since the screening" \
        in gate.message
    assert check_signoff(before, seen, TODAY, "reviewed", EU).level is Level.HARD


def test_pregnancy_recorded_since_is_signed_off_where_relative_and_refused_where_absolute():
    strict = IV.to_dict()
    for ci in strict["contraindications"]:
        if ci["condition"] == "pregnancy":
            ci["severity"] = "absolute"
    strict_iv = load_ruleset(strict)
    woman = doc(sex="female", age_years=30)
    now = woman | {"pregnant": True}
    before = state("ketamine-iv", woman)
    assert check_signoff(before, now, TODAY, "reviewed", IV).level is Level.OK
    refused = check_signoff(before, now, TODAY, "reviewed", strict_iv)
    assert refused.level is Level.HARD and "condition pregnancy" in refused.message


# --------------------------------------------------------------------------- relative, unknown


@pytest.mark.parametrize(("rs", "treatment", "condition"), cases("relative"))
def test_a_relative_contraindication_recorded_since_re_opens_for_a_sign_off(
        rs, treatment, condition):
    now = with_condition(doc(), condition)
    before = state(treatment, doc())
    gate = check_screening(before, treatment, now, TODAY, rs)
    assert gate.level is Level.HARD and gate.message.startswith("recorded after the screening")
    assert check_signoff(before, now, TODAY, "reviewed", rs).level is Level.OK
    assert check_screening(signed(before, now), treatment, now, TODAY, rs).level is Level.OK


@pytest.mark.parametrize(("rs", "treatment"), ALL)
def test_a_condition_or_medicine_the_rule_set_does_not_know_re_opens_never_silently_ok(
        rs, treatment):
    for now in (doc(conditions=["frobnication_syndrome"]),
                doc(medications=[{"name": "zyxwv", "class": ""}])):
        before = state(treatment, doc())
        gate = check_screening(before, treatment, now, TODAY, rs)
        assert gate.level is Level.HARD and "recorded after the screening" in gate.message
        assert check_signoff(before, now, TODAY, "reviewed", rs).level is Level.OK


# --------------------------------------------------------------------------- doses


def lorazepam(mg, *more):  # type: ignore[no-untyped-def]
    return doc(medications=[{"name": "lorazepam", "class": "benzodiazepine",
                             "daily_dose_mg": mg}, *more])


@pytest.mark.parametrize(("then_mg", "now_mg", "reopens"), [
    # IV set: > 8 mg/d diazepam-equivalent is review; lorazepam 1 mg = diazepam 10 mg
    (0.5, 2, "benzodiazepine dose (lorazepam): 20 mg/d diazepam-equivalent now, above 8 mg "
             "(was 5)"),
    (0.5, 0.9, "benzodiazepine dose (lorazepam): 9 mg/d diazepam-equivalent now, above 8 mg "
               "(was 5)"),
    (0.5, 0.8, None),  # 8 mg/d: at the threshold, still information only
    (0.5, 0.7, None),  # raised, but below the threshold: the rules do not care
    (2, 0.5, None),  # lowered: safer never re-opens
    (0.5, None, "benzodiazepine dose (lorazepam) no longer known: lorazepam not convertible "
                "to diazepam-equivalent"),
])
def test_an_iv_benzodiazepine_dose_raised_past_the_rule_sets_threshold_re_opens(
        then_mg, now_mg, reopens):
    before = state("ketamine-iv", lorazepam(then_mg))
    now = lorazepam(now_mg)
    gate = check_screening(signed(before, before.screened_inputs), "ketamine-iv", now, TODAY, IV)
    if reopens is None:
        assert gate.level is Level.OK, gate.message
        return
    assert gate.level is Level.HARD and gate.values["new"] == [reopens], gate.message
    assert check_signoff(before, now, TODAY, "taper planned", IV).level is Level.OK
    assert check_screening(signed(before, now), "ketamine-iv", now, TODAY, IV).level is Level.OK


def test_two_benzodiazepines_whose_sum_crosses_the_threshold_re_open():
    diazepam = {"name": "diazepam", "class": "benzodiazepine", "daily_dose_mg": 2}
    before = state("ketamine-iv", lorazepam(0.5, diazepam))  # 5 + 2 = 7 mg/d
    now = lorazepam(0.5, diazepam | {"daily_dose_mg": 4})  # 5 + 4 = 9 mg/d
    gate = check_screening(before, "ketamine-iv", now, TODAY, IV)
    assert gate.level is Level.HARD and "9 mg/d diazepam-equivalent now" in gate.message


@pytest.mark.parametrize("rs", [US, EU])
def test_an_esketamine_benzodiazepine_dose_raise_re_opens_nothing_the_rules_ignore_the_dose(rs):
    before = signed(state("esketamine", lorazepam(0.5), "review"), lorazepam(0.5))
    assert check_screening(before, "esketamine", lorazepam(4), TODAY, rs).level is Level.OK
