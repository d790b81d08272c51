"""Patient progress report (PDF) for the referring psychiatrist, built from the database."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from ketaclinic.clinical.course_scores import NOT_DOSED, course_end_of_induction
from ketaclinic.clinical.outcomes import (
    DEFAULT_CRITERIA,
    Assessment,
    ClinicalEvent,
    default_criteria,
    evaluate_course,
)
from ketaclinic.renderers.report_pdf import (
    AdverseEventLine,
    DoseLine,
    ProgressReport,
    ScorePoint,
    render_progress_report,
)
from ketaclinic.services.accounts.permissions import Perm
from ketaclinic.services.audit.trail import Actor
from ketaclinic.services.clinic_time import ClinicTime
from ketaclinic.services.context import Context
from ketaclinic.services.outcomes.dashboard import event_kind
from ketaclinic.store.tables import Patient
from ketaclinic.store.tables_chair import AdverseEventRow
from ketaclinic.store.tables_treatment import Assessment as AssessmentRow
from ketaclinic.store.tables_treatment import ClinicalEvent as EventRow
from ketaclinic.store.tables_treatment import Course, TreatmentSession

MAX_SCORE = {"phq9": 27, "qids-sr16": 27, "madrs": 60, "hamd17": 52}
STATUS_TEXT = {
    "not_started": "No dose given yet.",
    "no_baseline": "No baseline score before the first dose; response cannot be judged.",
    "baseline_only": "Baseline recorded; no score since the first dose yet.",
    "non_response": "Not responding so far (less than a 50 % fall from baseline).",
    "response": "Responding (at least a 50 % fall from baseline), not in remission.",
    "remission": "In remission.",
    "response_lost": "Responded earlier; the latest score no longer meets the response "
                     "criterion.",
    "relapsed": "Relapsed after response.",
}


class ProgressReportService:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def render(self, actor: Actor, patient_id: int, recipient: str = "Referring psychiatrist"
               ) -> bytes:
        """PDF bytes; clinical roles only; one audit row ``export.progress_report``."""
        with self.ctx.unit_of_work(actor, "export.progress_report", perm=Perm.PATIENT_READ,
                                   patient_id=patient_id) as uow:
            patient = uow.patients.get(patient_id)
            report = _report(uow.session, patient, recipient, uow.now,
                             self.ctx.settings.clinic_name, self.ctx.clinic_time)
            uow.audit(patient_id=patient_id)
        return render_progress_report(report)


def _report(s: Session, p: Patient, recipient: str, now: dt.datetime,
            clinic: str, ct: ClinicTime) -> ProgressReport:
    """Dates on the report are the clinic's calendar days (KETACLINIC_CLINIC_TIMEZONE)."""
    course = s.execute(select(Course).where(Course.patient_id == p.id)
                       .order_by(Course.start_date.desc(), Course.id.desc()).limit(1)).scalar()
    sessions = [] if course is None else list(s.execute(
        select(TreatmentSession).where(TreatmentSession.course_id == course.id)
        .order_by(TreatmentSession.number, TreatmentSession.id)).scalars())
    rows = list(s.execute(select(AssessmentRow).where(
        AssessmentRow.patient_id == p.id, AssessmentRow.total.is_not(None),
        AssessmentRow.instrument_id.in_(list(DEFAULT_CRITERIA)))
        .order_by(AssessmentRow.administered_at)).scalars())
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.instrument_id] = counts.get(r.instrument_id, 0) + 1
    instrument = max(counts, key=lambda k: counts[k]) if counts else "phq9"
    # (administered at, total): the query already left out assessments without a total.
    scores = [(r.administered_at, float(r.total)) for r in rows
              if r.instrument_id == instrument and r.total is not None]
    given = [(t, t.dose_started_at) for t in sessions if t.dose_started_at is not None
             and t.status not in NOT_DOSED]
    events = [] if course is None else [ClinicalEvent(e.occurred_on, event_kind(e.kind))
                                        for e in s.execute(select(EventRow).where(
                                            EventRow.patient_id == p.id)).scalars()]
    crit = default_criteria(instrument, course.treatment if course else "")
    outcome = evaluate_course(
        [Assessment(at, instrument, total) for at, total in scores],
        [started for _, started in given], crit, events, as_of=now,
        end_of_induction=course_end_of_induction(sessions))
    summary = []
    if outcome.baseline is not None:
        summary.append(f"Baseline {instrument} {outcome.baseline.total:g}; latest "
                       f"{outcome.latest.total:g} ({outcome.percent_change_latest} % change)."
                       if outcome.latest and outcome.percent_change_latest is not None
                       else f"Baseline {instrument} {outcome.baseline.total:g}.")
    if outcome.time_to_response_days is not None:
        summary.append(f"First response {outcome.time_to_response_days} days after the first "
                       "dose.")
    if outcome.relapse_at is not None:
        relapse_on = (ct.local_date(outcome.relapse_at)
                      if isinstance(outcome.relapse_at, dt.datetime) else outcome.relapse_at)
        summary.append(f"Relapse on {relapse_on:%Y-%m-%d} ({outcome.relapse_reason}).")
    baseline = outcome.baseline.total if outcome.baseline else None
    return ProgressReport(
        patient_label=f"{p.given_name} {p.family_name}, born {p.birth_date.year}, MRN {p.mrn}",
        clinic=clinic, recipient=recipient, generated_on=ct.local_date(now),
        treatment=course.treatment if course else "no course",
        course_status=course.status if course else "-",
        course_start=course.start_date if course else ct.local_date(now),
        sessions_done=len(given), sessions_planned=len(sessions) or None,
        instrument=instrument, max_score=MAX_SCORE.get(instrument, 60),
        scores=[ScorePoint(ct.local_date(at), total) for at, total in scores],
        doses=[DoseLine(ct.local_date(started),
                        "esketamine" if t.treatment == "esketamine" else "ketamine",
                        float(t.dose_mg or 0), t.route or "-") for t, started in given],
        adverse_events=_adverse_events(s, p.id, ct),
        baseline=baseline,
        response_line=None if baseline is None else baseline * (
            1 - float(crit.response_fraction.value)),
        remission_line=float(crit.remission_max.value),
        current_status=STATUS_TEXT.get(outcome.status, outcome.status),
        summary_lines=tuple(summary),
    )


def _adverse_events(s: Session, patient_id: int,
                    ct: ClinicTime | None = None) -> list[AdverseEventLine]:
    """The patient's ``chair_adverse_events`` (via their sessions), oldest first, dated on the
    clinic's calendar (UTC when ``ct`` is not given)."""
    ct = ct or ClinicTime()
    rows = s.execute(
        select(AdverseEventRow.onset_at, AdverseEventRow.code, AdverseEventRow.severity,
               AdverseEventRow.action_taken)
        .join(TreatmentSession, TreatmentSession.id == AdverseEventRow.session_id)
        .where(TreatmentSession.patient_id == patient_id)
        .order_by(AdverseEventRow.onset_at, AdverseEventRow.id)).all()
    return [AdverseEventLine(ct.local_date(r[0]) if isinstance(r[0], dt.datetime) else r[0],
                             str(r[1]), str(r[2]), str(r[3] or "")) for r in rows]
