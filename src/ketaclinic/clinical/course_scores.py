"""The outcome rules of one course of a patient: which sessions gave a dose, when induction
ended, which scores and events belong to the course (up to the next course's first dose), its
primary instrument, and :func:`~ketaclinic.clinical.outcomes.evaluate_course` on them.

The services load a patient's sessions, scores and events and hand them here; the definitions
of baseline, response, remission and relapse stay in :mod:`ketaclinic.clinical.outcomes`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Protocol

from ketaclinic.clinical.outcomes import (
    Assessment,
    ClinicalEvent,
    CourseOutcome,
    _dt,
    default_criteria,
    end_of_induction_time,
    evaluate_course,
)

__all__ = [
    "CHART_LOOKBACK_DAYS",
    "NOT_DOSED",
    "PRIMARY_ORDER_ESKETAMINE",
    "PRIMARY_ORDER_OTHER",
    "CourseScores",
    "DoseSession",
    "choose_instrument",
    "course_dose_times",
    "course_end_of_induction",
    "course_ends",
    "evaluate_course_scores",
]

NOT_DOSED = ("cancelled", "missed")  # session statuses that gave no dose
# The primary instrument of a course: the first of these with a score at or before the first
# dose; else the first with any score; else PHQ-9.
PRIMARY_ORDER_ESKETAMINE = ("madrs", "phq9", "qids-sr16", "hamd17")
PRIMARY_ORDER_OTHER = ("phq9", "madrs", "qids-sr16", "hamd17")
CHART_LOOKBACK_DAYS = 60  # scores shown on a course's chart start this long before its first dose


class DoseSession(Protocol):
    """What the outcome rules read of a treatment session (a stored row fits)."""

    @property
    def status(self) -> str: ...
    @property
    def phase(self) -> str: ...
    @property
    def planned_date(self) -> date: ...
    @property
    def dose_started_at(self) -> datetime | None: ...


def course_dose_times(sessions: Iterable[DoseSession], today: date) -> list[date | datetime]:
    """Dose start times of a course's sessions, in time order; the planned date where no dose
    time was recorded (past sessions only, and not cancelled, missed, planned or booked).

    >>> from types import SimpleNamespace as S
    >>> course_dose_times([S(status="discharged", phase="", planned_date=date(2026, 1, 9),
    ...                      dose_started_at=None),
    ...                    S(status="missed", phase="", planned_date=date(2026, 1, 2),
    ...                      dose_started_at=None)], date(2026, 2, 1))
    [datetime.date(2026, 1, 9)]
    """
    out: list[date | datetime] = []
    for ts in sessions:
        if ts.status in NOT_DOSED:
            continue
        if ts.dose_started_at is not None:
            out.append(ts.dose_started_at)
        elif ts.planned_date <= today and ts.status not in ("planned", "booked"):
            out.append(ts.planned_date)
    return sorted(out, key=_dt)


def course_end_of_induction(sessions: Iterable[DoseSession]) -> date | datetime | None:
    """:func:`end_of_induction_time` of a course's sessions: the last given induction dose once
    no induction session (not cancelled or missed) is waiting for its dose."""
    induction = [t for t in sessions if t.phase == "induction" and t.status not in NOT_DOSED]
    given = [t.dose_started_at for t in induction if t.dose_started_at is not None]
    return end_of_induction_time(given, sum(1 for t in induction if t.dose_started_at is None))


def choose_instrument(treatment: str, scores: Mapping[str, Sequence[tuple[datetime, float]]],
                      first_dose: datetime | None) -> str:
    """The course's primary instrument (see :data:`PRIMARY_ORDER_ESKETAMINE`).

    >>> t0 = datetime(2026, 1, 5)
    >>> choose_instrument("esketamine", {"phq9": [(t0, 20.0)], "madrs": [(t0, 30.0)]}, t0)
    'madrs'
    >>> choose_instrument("ketamine-iv", {}, None)
    'phq9'
    """
    order = PRIMARY_ORDER_ESKETAMINE if treatment == "esketamine" else PRIMARY_ORDER_OTHER
    if first_dose is not None:
        for name in order:
            if any(at <= first_dose for at, _ in scores.get(name, [])):
                return name
    return next((name for name in order if scores.get(name)), "phq9")


def course_ends(dose_times_by_course: Sequence[Sequence[date | datetime]]
                ) -> list[datetime | None]:
    """For each course of a patient (in start order, with its dose times), when its follow-up
    ends: the first dose of the next course that has one (None: still followed)."""
    out: list[datetime | None] = []
    for i in range(len(dose_times_by_course)):
        later = [_dt(times[0]) for times in dose_times_by_course[i + 1:] if times]
        out.append(later[0] if later else None)
    return out


@dataclass(frozen=True)
class CourseScores:
    """A course's primary instrument, its evaluated outcome and the scores its chart shows."""

    instrument: str
    outcome: CourseOutcome
    shown: list[tuple[datetime, float]]


def evaluate_course_scores(
    treatment: str,
    dose_times: Sequence[date | datetime],
    scores: Iterable[tuple[str, datetime, float]],
    events: Iterable[ClinicalEvent],
    *,
    until: datetime | None,
    as_of: datetime,
    end_of_induction: date | datetime | None = None,
) -> CourseScores:
    """One course of a patient: its scores (instrument, time, total) and events up to ``until``
    (the next course's first dose, :func:`course_ends`), the primary instrument and
    :func:`evaluate_course` on it with the shipped criteria of ``treatment``. Events count from
    the first dose; the chart shows scores from :data:`CHART_LOOKBACK_DAYS` before it."""
    by_instrument: dict[str, list[tuple[datetime, float]]] = {}
    for instrument, at, total in scores:
        if until is None or at < until:
            by_instrument.setdefault(instrument, []).append((at, float(total)))
    first = _dt(dose_times[0]) if dose_times else None
    instrument = choose_instrument(treatment, by_instrument, first)
    mine = by_instrument.get(instrument, [])
    kept = [e for e in events if (first is None or _dt(e.at) >= first)
            and (until is None or _dt(e.at) < until)]
    outcome = evaluate_course([Assessment(at, instrument, total) for at, total in mine],
                              dose_times, default_criteria(instrument, treatment), kept,
                              as_of=as_of, end_of_induction=end_of_induction)
    lookback = timedelta(days=CHART_LOOKBACK_DAYS)
    shown = [(at, v) for at, v in mine if first is None or at >= first - lookback]
    return CourseScores(instrument, outcome, shown)
