"""A screening stands only while what it rested on is still true (the closed loop's re-open).

``basis_gone`` lists what the stored screening's decision rested on and is no longer true:
the indication diagnosis (withdrawn, resolved, entered in error, code changed), fewer adequate
failed trials, an age limit lost by a corrected birth date, an answer that became unknown, a
contraindication a diagnosis or a psychotic severity sets. Any of them re-opens the screening
(HARD, screen again: a sign-off cannot stand in for it); what only makes treatment safer never
does.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from datetime import date, datetime

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from kcchain import SCREENED_DOC
from kcfacts import ALL, EU, IV, ON, US
from kctest import examples

from ketaclinic.clinical.eligibility import SEVERITIES, patient_from_dict, screen_patient
from ketaclinic.clinical.rules import Level
from ketaclinic.clinical.treatment_chain import (
    ScreeningState,
    basis_gone,
    check_screening,
    check_signoff,
    new_since_screening,
)

DOC = SCREENED_DOC
TODAY = date(2026, 11, 2)
NOW = datetime(2026, 11, 2, 10, 0)
DEPRESSION = {"code": "F33.2", "label": "Recurrent depressive disorder, severe",
              "depressive_episode": True, "resolved": False}


def changed(**fields):  # type: ignore[no-untyped-def]
    """The screened document with ``fields`` replaced (a deep copy: DOC never changes)."""
    return copy.deepcopy(DOC) | fields


def screened(decision="eligible", inputs=DOC, **more):  # type: ignore[no-untyped-def]
    return ScreeningState(screening_id=4, treatment="ketamine-iv", decision=decision,
                          expires_on=date(2027, 1, 31), screened_inputs=inputs, **more)


def test_nothing_changed_nothing_is_gone_under_every_rule_set():
    for rs, _ in ALL:
        assert basis_gone(DOC, copy.deepcopy(DOC), rs) == []


# --------------------------------------------------------------------------- the indication


@pytest.mark.parametrize(("diagnoses", "why"), [
    ([], "entered in error (not in the current facts at all)"),
    ([DEPRESSION | {"resolved": True}], "resolved"),
    ([DEPRESSION | {"code": "F41.1", "label": "Generalised anxiety disorder",
                    "depressive_episode": False}], "code changed to one that is no indication"),
    ([DEPRESSION | {"code": "F32.1", "label": "Depressive episode, moderate"}],
     "code changed to another depressive code: not the one screened"),
])
def test_the_indication_diagnosis_withdrawn_resolved_or_changed_is_gone(diagnoses, why):
    gone = basis_gone(DOC, changed(diagnoses=diagnoses), IV)
    assert len(gone) == 1 and "indication diagnosis F33.2 no longer stands" in gone[0], why


def test_a_new_depressive_diagnosis_in_place_of_the_screened_one_is_named_as_unscreened():
    gone = basis_gone(DOC, changed(diagnoses=[DEPRESSION | {"code": "F32.1"}]), IV)
    assert gone[0].endswith("F32.1 was not screened")


def test_a_second_depressive_diagnosis_or_withdrawing_one_of_two_leaves_the_indication():
    second = DEPRESSION | {"code": "F32.1", "label": "Depressive episode, moderate"}
    two = changed(diagnoses=[DEPRESSION, second])
    assert basis_gone(DOC, two, IV) == []
    # screened with both: either one still standing is the indication the screening saw
    assert basis_gone(two, changed(diagnoses=[second]), IV) == []
    assert basis_gone(two, changed(diagnoses=[DEPRESSION, second | {"resolved": True}]),
                      IV) == []
    assert basis_gone(two, changed(diagnoses=[]), IV) == [
        "indication diagnoses F33.2, F32.1 no longer stand (withdrawn, resolved, entered in "
        "error or changed)"]


def test_a_screening_that_saw_no_indication_has_no_basis():
    assert basis_gone(changed(diagnoses=[]), changed(diagnoses=[]), IV) == [
        "the screening saw no indication (depressive-episode) diagnosis"]


# --------------------------------------------------------------------------- trials, age


def test_fewer_adequate_failed_trials_than_at_the_screening_is_gone_more_is_not():
    one = changed(antidepressant_trials=DOC["antidepressant_trials"][:1])
    assert basis_gone(DOC, one, IV) == [
        "adequate failed antidepressant trials: 1 now, 2 at the screening"]
    too_short = copy.deepcopy(DOC)
    too_short["antidepressant_trials"][0]["weeks"] = 2  # corrected: not an adequate trial
    assert basis_gone(DOC, too_short, IV) == [
        "adequate failed antidepressant trials: 1 now, 2 at the screening"]
    assert basis_gone(one, DOC, IV) == []  # a trial recorded since only adds


def test_a_corrected_birth_date_below_the_minimum_age_is_gone_growing_older_is_not():
    minimum = IV.param("age-min-years").value
    gone = basis_gone(DOC, changed(age_years=minimum - 1), IV)
    assert gone == [f"age {minimum - 1:g} is below the minimum of {minimum:g} (the screening "
                    f"saw 46)"]
    assert basis_gone(DOC, changed(age_years=47), IV) == []
    assert basis_gone(changed(age_years=minimum - 1), changed(age_years=minimum), IV) == []


def test_an_older_adults_blood_pressure_limits_lost_by_a_corrected_birth_date_is_gone():
    older = EU.param("older-adult-age-years").value
    gone = basis_gone(changed(age_years=older + 1), changed(age_years=older - 6), EU)
    assert len(gone) == 1 and "blood-pressure limits the screening used" in gone[0]
    assert basis_gone(changed(age_years=older - 1), changed(age_years=older), EU) == []


# --------------------------------------------------------------------------- unknown, flags


def test_an_answer_the_screening_knew_that_is_unknown_now_is_gone():
    woman = changed(sex="female", age_years=30)
    assert basis_gone(woman, woman | {"pregnant": None}, US) == ["no longer known: pregnant"]
    assert basis_gone(DOC, changed(bp=None, substance_use_disorder=None), IV) == [
        "no longer known: substance_use_disorder, bp"]
    # a man's pregnancy answer was never needed: it going unknown loses nothing
    assert basis_gone(DOC, changed(pregnant=None), IV) == []


def test_a_contraindicating_diagnosis_or_psychotic_severity_recorded_since_is_gone():
    bipolar = {"code": "F31.1", "label": "Bipolar disorder", "depressive_episode": False,
               "resolved": True}  # resolved: history, still the flag
    gone = basis_gone(DOC, changed(diagnoses=[DEPRESSION, bipolar]), IV)
    assert len(gone) == 1 and gone[0].startswith("condition ") and "F31.1" in gone[0]
    gone = basis_gone(DOC, changed(symptom_severity="severe-psychotic"), IV)
    assert gone == ["condition psychosis_history (symptom severity severe-psychotic)"]


def test_facts_that_cannot_be_read_then_or_now_are_gone():
    assert basis_gone({}, DOC, IV)[0].startswith("the facts the screening saw cannot be read")
    assert basis_gone(None, DOC, IV)[0].startswith("the facts the screening saw cannot be read")
    no_age = {k: v for k, v in DOC.items() if k != "age_years"}
    assert basis_gone(DOC, no_age, IV)[0].startswith(
        "the patient's current facts cannot be read")


def test_what_only_makes_treatment_safer_never_re_opens():
    with_all = changed(medications=[{"name": "phenelzine", "class": "maoi"}],
                       conditions=["hypersensitivity_ketamine"])
    safer = changed(medications=[], conditions=[])  # medicine stopped, allergy withdrawn
    assert basis_gone(with_all, safer, IV) == []
    assert new_since_screening(with_all, safer) == []
    assert check_screening(screened(inputs=with_all), "ketamine-iv", safer, TODAY,
                           IV).level is Level.OK


# --------------------------------------------------------------------------- the gates


def test_a_lost_basis_re_opens_the_screening_naming_what_changed():
    finding = check_screening(screened(), "ketamine-iv", changed(diagnoses=[]), TODAY, IV)
    assert (finding.rule, finding.level) == ("chain.screening_reopened", Level.HARD)
    assert "indication diagnosis F33.2 no longer stands" in finding.message
    assert finding.message.endswith("screen again")
    assert finding.values["basis_gone"] and finding.values["screening_id"] == 4


def test_a_sign_off_neither_covers_nor_restores_a_lost_basis():
    now = changed(diagnoses=[])
    signed = screened("review", signoff_by="dr", signoff_at=NOW, signoff_reason="ok",
                      signoff_inputs=now)  # even a sign-off that saw the withdrawal
    assert check_screening(signed, "ketamine-iv", now, TODAY, IV).level is Level.HARD
    refused = check_signoff(screened("review"), now, TODAY, "reviewed", IV)
    assert refused.level is Level.HARD and "a sign-off cannot restore it" in refused.message
    refused = check_signoff(screened(), now, TODAY, "reviewed", IV)
    assert refused.level is Level.HARD and "F33.2" in refused.message


def test_the_basis_is_judged_under_a_rule_set_of_the_screenings_treatment():
    finding = check_screening(screened(), "ketamine-iv", DOC, TODAY, US)
    assert finding.level is Level.HARD and "is for esketamine" in finding.message


# --------------------------------------------------------------------------- property

CODES = ["F33.2", "F32.1", "F41.1", "F31.1", "F20.0", "F10.2", "Z00.0"]
MEDS = [{"name": "sertraline", "class": "ssri"}, {"name": "phenelzine", "class": "maoi"},
        {"name": "lorazepam", "class": "benzodiazepine", "daily_dose_mg": 6},
        {"name": "zyxwv", "class": ""}]
CONDITIONS = sorted({ci.condition for rs, _ in ALL for ci in rs.contraindications})
DEPRESSIVE = ("F32", "F33")


LISTS = ("diagnoses", "antidepressant_trials", "conditions", "medications")
N = st.integers(0, 3)
#: one change a chart can make to the facts, as data (a failing example reads as it is)
CHANGES = st.one_of(
    st.tuples(st.just("drop"), st.sampled_from(LISTS), N),
    st.tuples(st.just("resolve"), N),
    st.tuples(st.just("recode"), N, st.sampled_from(CODES)),
    st.tuples(st.just("diagnose"), st.sampled_from(CODES), st.booleans()),
    st.tuples(st.just("weeks"), N, st.sampled_from([1, 3, 8, 12])),
    st.tuples(st.just("trial")),
    st.tuples(st.just("condition"), st.sampled_from(CONDITIONS)),
    st.tuples(st.just("medicine"), st.sampled_from(range(len(MEDS)))),
    st.tuples(st.just("dose"), N, st.sampled_from([None, 0.5, 1, 6, 20])),
    st.tuples(st.just("set"), st.just("age_years"), st.integers(10, 90)),
    st.tuples(st.just("set"), st.just("sex"), st.sampled_from(["female", "male", "unknown"])),
    st.tuples(st.just("set"), st.sampled_from(["pregnant", "breastfeeding"]),
              st.sampled_from([None, False, True])),
    st.tuples(st.just("set"), st.just("substance_use_disorder"),
              st.sampled_from([None, "none", "history", "current"])),
    st.tuples(st.just("set"), st.just("bp"), st.sampled_from([
        None, {"systolic_mmhg": 128, "diastolic_mmhg": 80},
        {"systolic_mmhg": 170, "diastolic_mmhg": 105}])),
    st.tuples(st.just("set"), st.just("symptom_severity"), st.sampled_from([None, *SEVERITIES])),
)


def _change(d: dict, change: tuple) -> None:
    kind, *args = change
    dx, trials = d["diagnoses"], d["antidepressant_trials"]
    if kind == "drop" and d[args[0]]:
        d[args[0]].pop(args[1] % len(d[args[0]]))
    elif kind == "resolve" and dx:
        dx[args[0] % len(dx)]["resolved"] = True
    elif kind == "recode" and dx:
        dx[args[0] % len(dx)].update(code=args[1], depressive_episode=args[1][:3] in DEPRESSIVE)
    elif kind == "diagnose":
        dx.append({"code": args[0], "label": "", "resolved": args[1],
                   "depressive_episode": args[0][:3] in DEPRESSIVE})
    elif kind == "weeks" and trials:
        trials[args[0] % len(trials)]["weeks"] = args[1]
    elif kind == "trial":
        trials.append({"drug": "bupropion", "dose_mg": 300, "weeks": 8, "response": "none",
                       "current_episode": True})
    elif kind == "condition":
        d["conditions"].append(args[0])
    elif kind == "medicine":
        d["medications"].append(dict(MEDS[args[0]]))
    elif kind == "dose" and d["medications"]:  # stopped and restarted at another dose
        d["medications"][args[0] % len(d["medications"])]["daily_dose_mg"] = args[1]
    elif kind == "set":
        d[args[0]] = args[1]


def _apply(doc: dict, changes: list) -> dict:
    out = copy.deepcopy(doc)
    for change in changes:
        _change(out, change)
    return out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(before=st.lists(CHANGES, max_size=3), after=st.lists(CHANGES, max_size=4),
       which=st.sampled_from(ALL))
def test_a_screening_that_nothing_re_opened_would_not_turn_ineligible_if_run_again(
        before, after, which):
    """Whatever the chart changed since: if the stored screening let treatment go (eligible,
    or review for a sign-off) and neither its lost basis nor anything new re-opens it, a new
    screening today would not find the patient ineligible. The gate never lets a dose go that
    a new screening would forbid."""
    rs, treatment = which
    then = _apply(DOC, before)
    decision = screen_patient(patient_from_dict(then), treatment, rs, ON).decision
    assume(decision != "ineligible")
    now = _apply(then, after)
    if basis_gone(then, now, rs) == [] and new_since_screening(then, now) == []:
        again = screen_patient(patient_from_dict(now), treatment, rs, ON)
        assert again.decision != "ineligible", [
            f.message for f in again.findings if f.level is Level.HARD]


@settings(max_examples=examples(300), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(before=st.lists(CHANGES, max_size=3), after=st.lists(CHANGES, max_size=4),
       which=st.sampled_from(ALL))
def test_a_sign_off_the_gate_accepts_never_clears_a_patient_a_new_screening_finds_ineligible(
        before, after, which):
    """Whatever the chart recorded since a screening that let treatment go (eligible, or
    review for a sign-off): if a prescriber's sign-off is accepted, the gate then lets the
    treatment go, and a new screening today would not find the patient ineligible. A sign-off
    never waves through what a new screening forbids (an absolute contraindication recorded
    since: a ketamine allergy, an aneurysm)."""
    rs, treatment = which
    then = _apply(DOC, before)
    decision = screen_patient(patient_from_dict(then), treatment, rs, ON).decision
    assume(decision != "ineligible")
    now = _apply(then, after)
    state = ScreeningState(screening_id=4, treatment=treatment, decision=decision,
                           expires_on=date(2027, 1, 31), screened_inputs=then)
    if check_signoff(state, now, TODAY, "reviewed", rs).level is Level.OK:
        signed = replace(state, signoff_by="dr", signoff_at=NOW, signoff_reason="reviewed",
                         signoff_inputs=now)
        assert check_screening(signed, treatment, now, TODAY, rs).level is Level.OK
        again = screen_patient(patient_from_dict(now), treatment, rs, TODAY)
        assert again.decision != "ineligible", [
            f.message for f in again.findings if f.level is Level.HARD]
