"""Course outcomes on hand-built timelines (protocols.md §7)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta

import pytest

from ketaclinic.clinical.outcomes import (
    MADRS_RELAPSE_SUSTAIN1,
    MADRS_REMISSION_ACADEMIC,
    Assessment,
    ClinicalEvent,
    default_criteria,
    evaluate_course,
)
from ketaclinic.clinical.rules import ClinicalInputError

D0 = datetime(2026, 3, 2, 9, 0)  # first infusion
DOSES = [D0 + timedelta(days=d) for d in (0, 2, 4, 7, 9, 11)]


def day(n: int) -> date:
    return (D0 + timedelta(days=n)).date()


def phq(n: int, total: int) -> Assessment:
    return Assessment(day(n), "phq9", total)


def madrs(n: int, total: int) -> Assessment:
    return Assessment(day(n), "madrs", total)


def test_baseline_is_the_last_score_before_the_first_dose():
    scores = [phq(-20, 24), phq(-3, 20), phq(0, 18), phq(3, 12)]  # day-0 form is pre-infusion
    out = evaluate_course(scores, DOSES, default_criteria("phq9"))
    assert out.baseline == phq(0, 18)


def test_score_taken_after_the_first_dose_on_the_same_day_is_not_baseline():
    scores = [
        Assessment(D0 - timedelta(days=1), "phq9", 20),
        Assessment(D0 + timedelta(hours=3), "phq9", 10),
    ]
    out = evaluate_course(scores, DOSES, default_criteria("phq9"))
    assert out.baseline.total == 20 and out.first_response.total == 10


def test_other_instruments_are_ignored():
    out = evaluate_course(
        [madrs(-1, 30), phq(-1, 20), madrs(5, 14)], DOSES, default_criteria("madrs")
    )
    assert out.baseline.total == 30 and out.first_response.total == 14


@pytest.mark.parametrize(
    ("follow_up", "status"),
    [(11, "non_response"), (10, "response"), (5, "response"), (4, "remission"), (0, "remission")],
)
def test_phq9_response_is_a_50_percent_fall_and_remission_is_below_5(follow_up, status):
    out = evaluate_course([phq(-1, 20), phq(7, follow_up)], DOSES, default_criteria("phq9"))
    assert out.status == status


def test_time_to_response_counts_calendar_days_from_the_first_dose():
    out = evaluate_course([phq(-1, 20), phq(3, 15), phq(9, 9)], DOSES, default_criteria("phq9"))
    assert out.time_to_response_days == 9 and out.first_response == phq(9, 9)


@pytest.mark.parametrize(("total", "remits"), [(12, True), (13, False)])
def test_madrs_remission_default_is_at_most_12(total, remits):
    out = evaluate_course([madrs(-1, 34), madrs(14, total)], DOSES, default_criteria("madrs"))
    assert (out.first_remission is not None) is remits


def test_madrs_remission_can_be_set_to_at_most_10():
    criteria = replace(default_criteria("madrs"), remission_max=MADRS_REMISSION_ACADEMIC)
    out = evaluate_course([madrs(-1, 34), madrs(14, 11)], DOSES, criteria)
    assert out.first_remission is None and out.status == "response"


@pytest.mark.parametrize(
    ("instrument", "limit"), [("phq9", 4), ("qids-sr16", 5), ("madrs", 12), ("hamd17", 7)]
)
def test_default_remission_thresholds_are_cited(instrument, limit):
    criteria = default_criteria(instrument)
    assert criteria.remission_max.value == limit and criteria.remission_max.source
    assert criteria.response_fraction.value == 0.5


EOI = DOSES[-1]  # the last induction dose (day 11)


@pytest.mark.parametrize(
    ("gap_days", "relapsed"), [(4, False), (5, True), (10, True), (15, True), (16, False)]
)
def test_relapse_needs_two_consecutive_syndromal_scores_5_to_15_days_apart(gap_days, relapsed):
    # response at the end of induction (day 12), then PHQ-9 >= 10 twice
    scores = [phq(-1, 20), phq(12, 8), phq(30, 14), phq(30 + gap_days, 15)]
    out = evaluate_course(scores, DOSES, default_criteria("phq9"), end_of_induction=EOI)
    assert (out.status == "relapsed") is relapsed
    assert out.relapse_origin == phq(12, 8)
    if relapsed:
        assert out.relapse_at == day(30 + gap_days) and "5–15 days" in out.relapse_reason
        assert "≥ 10" in out.relapse_reason
    else:
        assert out.status == "response_lost"


def test_relapse_pairs_must_be_consecutive():
    # 14 (syndromal), 9 (not), 15 (syndromal): the two syndromal scores are not consecutive
    scores = [phq(-1, 20), phq(12, 8), phq(30, 14), phq(36, 9), phq(42, 15)]
    out = evaluate_course(scores, DOSES, default_criteria("phq9"), end_of_induction=EOI)
    assert out.relapse_at is None and out.status == "response_lost"


def test_scores_below_syndromal_severity_are_not_relapse_even_without_response():
    # 9 and 9: no longer a 50 % response, but below syndromal severity: not a relapse
    scores = [phq(-1, 20), phq(12, 8), phq(30, 9), phq(37, 9)]
    out = evaluate_course(scores, DOSES, default_criteria("phq9"), end_of_induction=EOI)
    assert out.relapse_at is None


def test_no_relapse_without_a_response_at_the_end_of_induction():
    scores = [phq(-1, 20), phq(12, 16), phq(14, 18), phq(21, 19)]
    out = evaluate_course(
        scores,
        DOSES,
        default_criteria("phq9"),
        events=[ClinicalEvent(day(15), "hospitalisation_for_depression")],
        end_of_induction=EOI,
    )
    assert out.status == "non_response" and out.relapse_at is None
    assert "no response at the end of induction" in " ".join(out.notes)


def test_hospitalisation_after_response_is_relapse():
    scores = [phq(-1, 20), phq(12, 6), phq(28, 7)]
    events = [ClinicalEvent(day(20), "hospitalisation_for_depression")]
    out = evaluate_course(scores, DOSES, default_criteria("phq9"), events=events,
                          end_of_induction=EOI)
    assert out.status == "relapsed" and out.relapse_at == day(20)
    assert out.relapse_reason == "event: hospitalisation_for_depression"


def test_suicide_attempt_after_response_is_relapse_even_before_score_criteria():
    scores = [madrs(-1, 30), madrs(12, 12), madrs(40, 25), madrs(47, 26)]
    events = [ClinicalEvent(datetime(2026, 4, 8, 22, 0), "suicide_attempt")]
    out = evaluate_course(scores, DOSES, default_criteria("madrs"), events=events,
                          end_of_induction=EOI)
    assert out.relapse_reason == "event: suicide_attempt"


def test_madrs_relapse_is_the_sustain1_threshold_of_22_by_default():
    assert default_criteria("madrs").relapse_score_min.value == MADRS_RELAPSE_SUSTAIN1.value
    scores = [madrs(-1, 30), madrs(12, 10), madrs(30, 20), madrs(37, 21)]
    out = evaluate_course(scores, DOSES, default_criteria("madrs"), end_of_induction=EOI)
    assert out.status == "response_lost" and out.relapse_at is None
    scores = [madrs(-1, 30), madrs(12, 10), madrs(30, 22), madrs(37, 23)]
    out = evaluate_course(scores, DOSES, default_criteria("madrs"), end_of_induction=EOI)
    assert out.status == "relapsed" and "≥ 22" in out.relapse_reason


def test_days_since_last_dose_uses_the_given_date_not_the_clock():
    out = evaluate_course([phq(-1, 20), phq(7, 8)], DOSES, default_criteria("phq9"), as_of=day(20))
    assert out.days_since_last_dose == 9


@pytest.mark.parametrize(
    ("scores", "doses", "status"),
    [
        ([phq(-1, 20)], [], "not_started"),
        ([phq(3, 10)], DOSES, "no_baseline"),
        ([phq(-1, 20)], DOSES, "baseline_only"),
    ],
)
def test_courses_without_enough_data_say_so(scores, doses, status):
    assert evaluate_course(scores, doses, default_criteria("phq9")).status == status


def test_zero_baseline_is_no_baseline():
    out = evaluate_course([phq(-1, 0), phq(7, 0)], DOSES, default_criteria("phq9"))
    assert out.first_response is None and out.status == "no_baseline" and out.notes


def test_unknown_instrument_and_bad_times_are_refused():
    with pytest.raises(ClinicalInputError):
        default_criteria("bdi2")
    with pytest.raises(ClinicalInputError):
        evaluate_course([phq(-1, 20)], ["2026-03-02"], default_criteria("phq9"))
