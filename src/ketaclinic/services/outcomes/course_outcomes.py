"""Outcomes per treatment course (baseline, response, remission, relapse) and the score chart.

The course's *primary instrument* is not stored on the shared ``courses`` table; it is chosen
from the patient's data: the first of the instruments with outcome criteria (MADRS first for an
esketamine course, PHQ-9 first otherwise) that has a score at or before the first dose; else
the first with any score; else PHQ-9.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ketaclinic.clinical.instruments import load_bundled
from ketaclinic.clinical.outcomes import Assessment as CoreAssessment
from ketaclinic.clinical.outcomes import ClinicalEvent as CoreEvent
from ketaclinic.clinical.outcomes import (
    CourseOutcome,
    default_criteria,
    end_of_induction_time,
    evaluate_course,
)
from ketaclinic.renderers.charts import Band, svg_trajectory_chart
from ketaclinic.store.tables_treatment import Assessment, ClinicalEvent, Course, TreatmentSession

NOT_DOSED = ("cancelled", "missed")
ORDER_IV = ("phq9", "madrs", "qids-sr16", "hamd17")
ORDER_ESKETAMINE = ("madrs", "phq9", "qids-sr16", "hamd17")
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


def dose_times(sessions: list[TreatmentSession], today: dt.date) -> list[dt.datetime | dt.date]:
    """Dose start times; the planned date when no dose time was recorded (past sessions only)."""
    out: list[dt.datetime | dt.date] = []
    for ts in sessions:
        if ts.status in NOT_DOSED:
            continue
        if ts.dose_started_at is not None:
            out.append(ts.dose_started_at)
        elif ts.planned_date <= today and ts.status not in ("planned", "booked"):
            out.append(ts.planned_date)
    return sorted(out, key=lambda v: v if isinstance(v, dt.datetime)
                  else dt.datetime(v.year, v.month, v.day))


def end_of_induction(sessions: list[TreatmentSession]) -> dt.datetime | None:
    """The last given induction dose once no induction session is pending (as the outcome
    summary's ``eoi_at``)."""
    induction = [t for t in sessions if t.phase == "induction" and t.status not in NOT_DOSED]
    given = [t.dose_started_at for t in induction if t.dose_started_at is not None]
    return end_of_induction_time(given, sum(1 for t in induction if t.dose_started_at is None))


def _as_dt(v: dt.datetime | dt.date) -> dt.datetime:
    return v if isinstance(v, dt.datetime) else dt.datetime(v.year, v.month, v.day)


def choose_instrument(treatment: str, scores: dict[str, list[tuple[dt.datetime, float]]],
                      first_dose: dt.datetime | None) -> str:
    order = ORDER_ESKETAMINE if treatment == "esketamine" else ORDER_IV
    if first_dose is not None:
        for name in order:
            if any(at <= first_dose for at, _ in scores.get(name, [])):
                return name
    return next((name for name in order if scores.get(name)), "phq9")


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
    doses = {c.id: dose_times([t for t in sessions if t.course_id == c.id], now.date())
             for c in courses}
    eoi = {c.id: end_of_induction([t for t in sessions if t.course_id == c.id])
           for c in courses}
    out = []
    for i, course in enumerate(courses):
        later = [doses[c.id][0] for c in courses[i + 1:] if doses[c.id]]
        until = _as_dt(later[0]) if later else None
        out.append(_summary(course, doses[course.id], rows, events, until, now, eoi[course.id]))
    return list(reversed(out))


def _summary(course: Course, times: list, rows: list, events: list[ClinicalEvent],
             until: dt.datetime | None, now: dt.datetime,
             eoi: dt.datetime | None = None) -> CourseSummary:
    scores: dict[str, list[tuple[dt.datetime, float]]] = {}
    for instrument, at, total in rows:
        if until is None or at < until:
            scores.setdefault(instrument, []).append((at, float(total)))
    first = _as_dt(times[0]) if times else None
    instrument = choose_instrument(course.treatment, scores, first)
    mine = scores.get(instrument, [])
    core_events = [CoreEvent(e.occurred_on, e.kind) for e in events
                   if e.course_id in (None, course.id)
                   and (first is None or _as_dt(e.occurred_on) >= first)
                   and (until is None or _as_dt(e.occurred_on) < until)]
    outcome = evaluate_course([CoreAssessment(at, instrument, total) for at, total in mine],
                              times, default_criteria(instrument, course.treatment),
                              core_events, as_of=now, end_of_induction=eoi)
    shown = [(at, v) for at, v in mine if first is None or at >= first - dt.timedelta(days=60)]
    return CourseSummary(course.id, course.template_id, course.treatment, course.status,
                         course.start_date, instrument, times, outcome, shown)


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
