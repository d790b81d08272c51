"""Issue 13, Outcomes: outcomes mean what clinicians mean. Each case reproduced in the issue.

* relapse is a return to syndromal severity after the acute phase, counted from the response at
  the end of induction (PHQ-9 20 → 9 → 11 inside induction is not a relapse);
* a 24-hour outcome only from an instrument whose recall window is 24 hours;
* the baseline lies in a window before the first dose and reaches a minimum severity;
* remission thresholds per treatment (esketamine MADRS ≤ 12, IV ketamine ≤ 10).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from ketaclinic.clinical.cohort import (
    load_outcome_config,
    load_timepoints,
    timepoint_instruments,
)
from ketaclinic.clinical.km import kaplan_meier
from ketaclinic.clinical.outcomes import (
    Assessment,
    ClinicalEvent,
    criteria_from_config,
    default_criteria,
    end_of_induction_time,
    evaluate_course,
    remission_overrides,
)

D0 = datetime(2026, 3, 2, 9, 0)
DOSES = [D0 + timedelta(days=d) for d in (0, 2, 4, 7, 9, 11)]  # IV induction, 6 infusions
EOI = DOSES[-1]


def at(day: float, hour: int = 8) -> datetime:
    return D0.replace(hour=hour) + timedelta(days=day)


def phq(day: float, total: int) -> Assessment:
    return Assessment(at(day), "phq9", total)


def madrs(day: float, total: int) -> Assessment:
    return Assessment(at(day), "madrs", total)


# --- relapse --------------------------------------------------------------------------------


def test_phq9_20_9_11_inside_induction_is_not_a_relapse():
    # the case: response at infusion 3, 11 and 12 before infusions 5 and 6
    scores = [phq(-1, 20), phq(4, 9), phq(7, 11), phq(9, 12), phq(12, 8)]
    out = evaluate_course(scores, DOSES, default_criteria("phq9"), end_of_induction=EOI)
    assert out.relapse_at is None and out.status == "response"
    assert out.relapse_origin == phq(12, 8)


def test_relapse_counts_from_the_response_at_the_end_of_induction_and_km_follows():
    scores = [phq(-1, 20), phq(12, 8), phq(30, 6), phq(44, 12), phq(51, 13)]
    out = evaluate_course(scores, DOSES, default_criteria("phq9"), end_of_induction=EOI)
    assert out.status == "relapsed" and out.relapse_at == at(51)
    # the KM duration runs from the origin (day 12), not from the first dose or first response
    duration = (out.relapse_at.date() - out.relapse_origin.at.date()).days
    assert duration == 39
    assert kaplan_meier([duration], [1]).median == 39


@pytest.mark.parametrize(
    ("scores", "eoi", "note"),
    [
        ([phq(-1, 20), phq(12, 11), phq(30, 15), phq(37, 16)], EOI,
         "no response at the end of induction"),
        ([phq(-1, 20), phq(4, 8), phq(30, 15), phq(37, 16)], EOI,
         "no score in the 14 days after the end of induction"),
        ([phq(-1, 20), phq(4, 8), phq(30, 15), phq(37, 16)], None,
         "induction has not ended"),
    ],
)
def test_relapse_is_not_assessed_without_a_response_at_the_end_of_induction(scores, eoi, note):
    out = evaluate_course(scores, DOSES, default_criteria("phq9"), end_of_induction=eoi)
    assert out.relapse_at is None and out.relapse_origin is None
    assert any(note in n for n in out.notes)


@pytest.mark.parametrize(
    ("instrument", "threshold", "gap"),
    [("madrs", 22, (5, 15)), ("hamd17", 18, (7, 14)), ("phq9", 10, (5, 15)),
     ("qids-sr16", 11, (5, 15))],
)
def test_relapse_thresholds_are_syndromal_severity_and_cited(instrument, threshold, gap):
    c = default_criteria(instrument)
    assert c.relapse_score_min.value == threshold and c.relapse_score_min.source
    assert (c.relapse_gap_min_days.value, c.relapse_gap_max_days.value) == gap


def test_events_inside_induction_are_not_relapse():
    scores = [phq(-1, 20), phq(4, 8), phq(12, 7)]
    events = [ClinicalEvent(at(6).date(), "hospitalisation_for_depression")]
    out = evaluate_course(scores, DOSES, default_criteria("phq9"), events=events,
                          end_of_induction=EOI)
    assert out.relapse_at is None


def test_the_end_of_induction_waits_for_pending_induction_sessions():
    assert end_of_induction_time(DOSES, induction_pending=0) == EOI
    assert end_of_induction_time(DOSES, induction_pending=2) is None
    assert end_of_induction_time([], induction_pending=0) is None


# --- 24-hour outcomes and recall ---------------------------------------------------------------


def test_two_week_and_seven_day_recall_scales_never_feed_a_24_hour_outcome():
    pairs = timepoint_instruments(load_timepoints(), ["phq9", "qids-sr16", "madrs", "hamd17"])
    assert not [i for label, i in pairs if label == "24h"]
    assert ("1m", "phq9") in pairs and ("end_of_induction", "qids-sr16") in pairs


@pytest.mark.parametrize(("recall_h", "accepted"), [(24, True), (0, True), (168, False),
                                                     (336, False), (None, False)])
def test_the_24_hour_timepoint_accepts_only_a_24_hour_recall(recall_h, accepted):
    tp = next(t for t in load_timepoints() if t.label == "24h")
    assert tp.accepts_recall(recall_h) is accepted
    assert tp.max_recall_h is not None and tp.max_recall_h.source


# --- baseline ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("baseline", "status"),
    [
        (Assessment(D0 - timedelta(days=365), "phq9", 22), "no_baseline"),  # a year old
        (Assessment(D0 - timedelta(days=14, hours=1), "phq9", 22), "no_baseline"),
        (Assessment(D0 - timedelta(days=13, hours=23), "phq9", 22), "response"),
        (Assessment(D0 - timedelta(days=1), "phq9", 9), "no_baseline"),  # mild: below 10
        (Assessment(D0 - timedelta(days=1), "phq9", 10), "response"),
    ],
)
def test_the_baseline_lies_in_14_days_before_the_first_dose_and_is_at_least_moderate(
        baseline, status):
    out = evaluate_course([baseline, phq(12, 4 if baseline.total <= 10 else 5)], DOSES,
                          default_criteria("phq9"), end_of_induction=EOI)
    assert out.status in (status, "remission" if status == "response" else status)
    if status == "no_baseline":
        assert out.baseline is None and out.notes and out.notes[0].startswith("no baseline")


def test_a_low_last_score_is_no_baseline_even_with_an_older_qualifying_one():
    scores = [phq(-10, 20), phq(-1, 6), phq(12, 3)]
    out = evaluate_course(scores, DOSES, default_criteria("phq9"), end_of_induction=EOI)
    assert out.status == "no_baseline" and "below the minimum" in out.notes[0]


def test_the_baseline_window_and_minimum_are_configurable_and_cited():
    config = load_outcome_config()
    base = config["baseline"]
    assert base["window_days"]["value"] == 14 and base["window_days"]["source"]
    for instrument in ("phq9", "qids-sr16", "madrs", "hamd17"):
        assert base["min_total"][instrument]["source"]
    changed = {**config, "baseline": {**base, "window_days": {**base["window_days"],
                                                                "value": 400}}}
    crit = criteria_from_config("phq9", config=changed)
    scores = [Assessment(D0 - timedelta(days=365), "phq9", 22), phq(12, 5)]
    assert evaluate_course(scores, DOSES, crit).baseline is not None


# --- remission per treatment ------------------------------------------------------------------


@pytest.mark.parametrize(("treatment", "limit"), [("esketamine", 12), ("ketamine-iv", 10),
                                                   ("", 12)])
def test_madrs_remission_is_per_treatment_and_cited(treatment, limit):
    c = default_criteria("madrs", treatment)
    assert c.remission_max.value == limit and c.remission_max.source
    out = evaluate_course([madrs(-1, 34), madrs(12, 11)], DOSES, c, end_of_induction=EOI)
    assert (out.first_remission is not None) is (11 <= limit)


def test_the_sql_summary_gets_the_same_per_treatment_thresholds():
    assert remission_overrides() == {("esketamine", "madrs"): 12.0,
                                     ("ketamine-iv", "madrs"): 10.0}
