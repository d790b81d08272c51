"""Time to relapse after response: who is followed, for how long, and whether it ended in relapse.

The inputs of the dashboard's Kaplan–Meier curve (:func:`ketaclinic.clinical.km.kaplan_meier`,
the one estimator) and Cox model. A responder is followed from the relapse origin (the response
assessment at the end of induction, :func:`ketaclinic.clinical.outcomes.relapse_origin`) to the
day of relapse (event), or to the day of the last score after the origin (censored). Durations
are whole calendar days, never negative. The SQL pass over the outcome summary computes the same
(tests/integration/test_outcomes_relapse_sql.py checks it against :func:`time_to_relapse`).

Examples
--------
>>> from datetime import date
>>> s = survival_subject(41.6, True, baseline_severity=21, birth_date=date(1990, 6, 1),
...                      first_dose_day=date(2026, 1, 5), treatment="ketamine-iv")
>>> s.duration_days, s.relapsed, s.age_band
(42.0, True, '18-39')
>>> survival_subject(-0.4, False).duration_days
0.0
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from ketaclinic.clinical.age import age_band
from ketaclinic.clinical.outcomes import CourseOutcome

__all__ = ["SurvivalSubject", "survival_subject", "time_to_relapse"]


@dataclass(frozen=True)
class SurvivalSubject:
    """One responder followed from response to relapse or censoring."""

    duration_days: float
    relapsed: bool
    psychotherapy: bool | None = None
    antidepressant: bool | None = None
    comorbid_anxiety: bool | None = None
    baseline_severity: float | None = None  # baseline score on the course's instrument
    age_band: str | None = None  # e.g. "18-39", "40-64", "65+"
    treatment: str | None = None  # e.g. "iv_ketamine", "esketamine"


def _day(value: date | datetime) -> date:
    return value.date() if isinstance(value, datetime) else value


def time_to_relapse(outcome: CourseOutcome) -> tuple[int, bool] | None:
    """(calendar days from the relapse origin, relapsed) of an evaluated course; None when the
    course has no relapse origin (no response at the end of induction: not followed)."""
    origin = outcome.relapse_origin
    if origin is None:
        return None
    relapsed = outcome.relapse_at is not None
    end = outcome.relapse_at if relapsed else (outcome.latest.at if outcome.latest else origin.at)
    assert end is not None
    return (_day(end) - _day(origin.at)).days, relapsed


def survival_subject(duration_days: float, relapsed: bool, *, psychotherapy: bool | None = None,
                     antidepressant: bool | None = None, comorbid_anxiety: bool | None = None,
                     baseline_severity: float | None = None, birth_date: date | None = None,
                     first_dose_day: date | None = None,
                     treatment: str | None = None) -> SurvivalSubject:
    """A subject from its follow-up and covariates: the duration rounded to whole days and never
    below 0; the age band on the day of the course's first dose."""
    band = age_band(birth_date, first_dose_day) if first_dose_day is not None else None
    return SurvivalSubject(
        duration_days=float(max(round(duration_days), 0)),
        relapsed=bool(relapsed),
        psychotherapy=psychotherapy,
        antidepressant=antidepressant,
        comorbid_anxiety=comorbid_anxiety,
        baseline_severity=None if baseline_severity is None else float(baseline_severity),
        age_band=band,
        treatment=treatment,
    )
