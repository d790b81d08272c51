"""The per-course outcome rules of the clinical core (clinical/course_scores.py): dosed
sessions, the end of induction, the follow-up window of each course and its primary instrument
(no database)."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

from hypothesis import given
from hypothesis import strategies as st

from ketaclinic.clinical.course_scores import (
    NOT_DOSED,
    course_dose_times,
    course_end_of_induction,
    course_ends,
    evaluate_course_scores,
)
from ketaclinic.clinical.outcomes import ClinicalEvent
from ketaclinic.clinical.survival import survival_subject, time_to_relapse

T0 = dt.datetime(2026, 1, 5, 9, 0)
STATUSES = ("planned", "booked", "discharged", "in_chair", *NOT_DOSED)


def _session(status: str, day: int, dosed: bool, phase: str = "induction") -> SimpleNamespace:
    return SimpleNamespace(status=status, phase=phase,
                           planned_date=(T0 + dt.timedelta(days=day)).date(),
                           dose_started_at=T0 + dt.timedelta(days=day) if dosed else None)


sessions = st.lists(st.builds(_session, st.sampled_from(STATUSES), st.integers(0, 60),
                              st.booleans()), max_size=12)


@given(sessions)
def test_dose_times_are_sorted_and_skip_sessions_that_gave_no_dose(rows):
    today = (T0 + dt.timedelta(days=30)).date()
    times = course_dose_times(rows, today)
    as_dt = [t if isinstance(t, dt.datetime) else dt.datetime(t.year, t.month, t.day)
             for t in times]
    assert as_dt == sorted(as_dt)
    expected = sum(1 for r in rows if r.status not in NOT_DOSED and (
        r.dose_started_at is not None
        or (r.planned_date <= today and r.status not in ("planned", "booked"))))
    assert len(times) == expected


@given(sessions)
def test_induction_ends_only_when_no_induction_session_waits(rows):
    end = course_end_of_induction(rows)
    live = [r for r in rows if r.status not in NOT_DOSED]
    if not live or any(r.dose_started_at is None for r in live):
        assert end is None
    else:
        assert end == max(r.dose_started_at for r in live)


@given(st.lists(st.lists(st.integers(0, 400), max_size=4).map(sorted), max_size=6))
def test_a_course_is_followed_until_the_next_dosed_course_starts(days_by_course):
    times = [[T0 + dt.timedelta(days=d) for d in days] for days in days_by_course]
    ends = course_ends(times)
    assert len(ends) == len(times)
    for i, end in enumerate(ends):
        nxt = next((t[0] for t in times[i + 1:] if t), None)
        assert end == nxt


def test_scores_after_the_next_course_and_events_before_the_first_dose_do_not_count():
    dose = T0
    scores = [("phq9", T0 - dt.timedelta(days=1), 20.0), ("phq9", T0 + dt.timedelta(days=7), 8.0),
              ("phq9", T0 + dt.timedelta(days=40), 22.0), ("madrs", T0 + dt.timedelta(days=1), 9.0)]
    events = [ClinicalEvent((T0 - dt.timedelta(days=3)).date(), "suicide_attempt")]
    until = T0 + dt.timedelta(days=30)
    got = evaluate_course_scores("ketamine-iv", [dose], scores, events, until=until,
                                 as_of=T0 + dt.timedelta(days=50))
    assert got.instrument == "phq9"  # the one with a score at or before the first dose
    assert got.outcome.status == "response" and got.outcome.latest.total == 8.0
    assert got.shown == [(T0 - dt.timedelta(days=1), 20.0), (T0 + dt.timedelta(days=7), 8.0)]
    assert got.outcome.relapse_at is None


# --------------------------------------------------------------------------- survival inputs


@given(st.floats(-5, 5000, allow_nan=False), st.booleans())
def test_a_subject_is_followed_for_whole_days_and_never_less_than_zero(duration, relapsed):
    s = survival_subject(duration, relapsed)
    assert s.duration_days == float(max(round(duration), 0)) and s.duration_days.is_integer()
    assert s.relapsed is relapsed and s.age_band is None


def test_time_to_relapse_counts_calendar_days_from_the_origin_to_relapse_or_last_score():
    scores = [("phq9", T0 - dt.timedelta(hours=2), 20.0)] + [
        ("phq9", T0 + dt.timedelta(days=d, hours=h), v)
        for d, h, v in ((3, 5, 8.0), (20, 1, 15.0), (27, 0, 16.0))]
    got = evaluate_course_scores("ketamine-iv", [T0], scores, [], until=None,
                                 as_of=T0 + dt.timedelta(days=60), end_of_induction=T0)
    assert time_to_relapse(got.outcome) == (24, True)  # day 3 → day 27 (two scores ≥ 10)
    censored = evaluate_course_scores("ketamine-iv", [T0], scores[:3], [], until=None,
                                      as_of=T0 + dt.timedelta(days=60), end_of_induction=T0)
    assert time_to_relapse(censored.outcome) == (17, False)
    not_followed = evaluate_course_scores("ketamine-iv", [T0], scores, [], until=None,
                                          as_of=T0 + dt.timedelta(days=60))
    assert time_to_relapse(not_followed.outcome) is None  # induction has not ended
