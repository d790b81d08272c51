"""Outcomes per treatment course (baseline, response, remission, relapse) and the score chart.

The rules (the dosed sessions, the end of induction, the course's *primary instrument*, which
scores and events belong to which course) are the clinical core's
(:func:`ketaclinic.clinical.course_scores.evaluate_course_scores`); this module loads the patient's
rows, hands them to it and draws the chart.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ketaclinic.clinical.course_scores import (
    course_dose_times,
    course_end_of_induction,
    course_ends,
    evaluate_course_scores,
)
from ketaclinic.clinical.instruments import load_bundled
from ketaclinic.clinical.outcomes import ClinicalEvent as CoreEvent
from ketaclinic.clinical.outcomes import CourseOutcome
from ketaclinic.renderers.charts import Band, svg_trajectory_chart
from ketaclinic.store.tables_treatment import Assessment, ClinicalEvent, Course, TreatmentSession

STATUS_TEXT = {
    "not_started": "not started (no dose yet)",
    "no_baseline": "no qualifying baseline (see the note below)",
    "baseline_only": "baseline only",
    "non_response": "no response yet",
    "response": "response",
    "remission": "remission",
    "response_lost": "response lost",
    "relapsed": "relapsed",
}


@dataclass(frozen=True)
class CourseSummary:
    course_id: int
    template_id: str
    treatment: str
    status: str
    start_date: dt.date
    instrument: str
    dose_times: list[dt.datetime | dt.date]
    outcome: CourseOutcome
    scores: list[tuple[dt.datetime, float]]

    @property
    def status_text(self) -> str:
        return STATUS_TEXT.get(self.outcome.status, self.outcome.status)


def course_summaries(s: Session, patient_id: int, now: dt.datetime) -> list[CourseSummary]:
    """Every course of the patient (newest first) with its evaluated outcome."""
    courses = list(s.execute(select(Course).where(Course.patient_id == patient_id)
                             .order_by(Course.start_date, Course.id)).scalars())
    if not courses:
        return []
    sessions = list(s.execute(select(TreatmentSession).where(
        TreatmentSession.patient_id == patient_id)).scalars())
    rows = s.execute(select(Assessment.instrument_id, Assessment.administered_at,
                            Assessment.total).where(
        Assessment.patient_id == patient_id, Assessment.total.is_not(None))
        .order_by(Assessment.administered_at)).all()
    events = list(s.execute(select(ClinicalEvent).where(
        ClinicalEvent.patient_id == patient_id)).scalars())
    doses = [course_dose_times([t for t in sessions if t.course_id == c.id], now.date())
             for c in courses]
    ends = course_ends(doses)
    # the query left out assessments without a total
    scores = [(instrument, at, float(total)) for instrument, at, total in rows
              if total is not None]
    out = []
    for course, times, until in zip(courses, doses, ends, strict=True):
        mine = [t for t in sessions if t.course_id == course.id]
        result = evaluate_course_scores(
            course.treatment, times, scores,
            [CoreEvent(e.occurred_on, e.kind) for e in events if e.course_id in (None, course.id)],
            until=until, as_of=now, end_of_induction=course_end_of_induction(mine))
        out.append(CourseSummary(course.id, course.template_id, course.treatment, course.status,
                                 course.start_date, result.instrument, times, result.outcome,
                                 result.shown))
    return list(reversed(out))


def chart_for(summary: CourseSummary, chart_id: str) -> str | None:
    """The SVG trajectory of a course's primary instrument (None without scores)."""
    if not summary.scores:
        return None
    definition = load_bundled(summary.instrument)
    band_set = definition.band_set()
    bands = [Band(b.min_score, b.max_score, b.label) for b in band_set.bands] if band_set else []
    o = summary.outcome
    baseline = o.baseline.total if o.baseline else None
    fraction = float(o.criteria.response_fraction.value)
    return svg_trajectory_chart(
        [at for at, _ in summary.scores], [v for _, v in summary.scores],
        instrument=definition.short_name, max_score=float(definition.total_max or 27),
        infusions=summary.dose_times, bands=bands, baseline=baseline,
        response_line=None if baseline is None else baseline * (1 - fraction),
        remission_line=float(o.criteria.remission_max.value), chart_id=chart_id)


def outcome_dict(summary: CourseSummary) -> dict[str, Any]:
    o = summary.outcome
    return {
        "course_id": summary.course_id, "template_id": summary.template_id,
        "treatment": summary.treatment, "instrument": summary.instrument,
        "status": o.status, "baseline": o.baseline.total if o.baseline else None,
        "latest": o.latest.total if o.latest else None,
        "percent_change_latest": o.percent_change_latest,
        "first_response_at": _iso(o.first_response.at) if o.first_response else None,
        "first_remission_at": _iso(o.first_remission.at) if o.first_remission else None,
        "time_to_response_days": o.time_to_response_days,
        "relapse_at": _iso(o.relapse_at) if o.relapse_at else None,
        "relapse_reason": o.relapse_reason,
        "relapse_origin_at": _iso(o.relapse_origin.at) if o.relapse_origin else None,
        "notes": list(o.notes),
        "days_since_last_dose": o.days_since_last_dose,
        "doses": len(summary.dose_times),
        "remission_max": o.criteria.remission_max.value,
        "criteria_source": o.criteria.remission_max.source,
    }


def _iso(v: dt.date | dt.datetime) -> str:
    return v.isoformat()
