"""Measurement-based care, as one entry in the Services container (``svc.mbc``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from ketaclinic.services.accounts.permissions import Perm
from ketaclinic.services.audit.trail import Actor
from ketaclinic.services.context import Context
from ketaclinic.services.mbc.alerts import AlertService
from ketaclinic.services.mbc.assessments import AssessmentService
from ketaclinic.services.mbc.instrument_forms import entry_form
from ketaclinic.services.mbc.instruments import InstrumentCatalogue
from ketaclinic.services.mbc.outbox import OutboxService
from ketaclinic.services.mbc.self_report import SelfReportService
from ketaclinic.services.outcomes.course_outcomes import chart_for, course_summaries, outcome_dict
from ketaclinic.services.paging import Paged, page_list


@dataclass
class MeasurementCare:
    ctx: Context
    instruments: InstrumentCatalogue
    assessments: AssessmentService
    alerts: AlertService
    self_report: SelfReportService
    outbox: OutboxService

    @classmethod
    def build(cls, ctx: Context) -> MeasurementCare:
        catalogue = InstrumentCatalogue(ctx)
        assessments = AssessmentService(ctx, catalogue)
        return cls(ctx, catalogue, assessments, AlertService(ctx),
                   SelfReportService(ctx, catalogue, assessments), OutboxService(ctx))

    def outcomes(self, actor: Actor, patient_id: int, limit: int | None = None,
                 offset: int = 0) -> Paged[dict[str, Any]]:
        """Outcome of every course of the patient (newest first); each is computed from the
        course's assessments, so the window is taken in Python."""
        with self.ctx.unit_of_work(actor, "outcome.view", perm=Perm.PATIENT_READ,
                                   patient_id=patient_id) as uow:
            s = uow.session
            uow.patients.get(patient_id)
            out = [outcome_dict(c) for c in course_summaries(s, patient_id, uow.now)]
            uow.audit(patient_id=patient_id)
            return page_list(out, limit, offset)

    def panel(self, actor: Actor, patient_id: int) -> dict[str, Any]:
        """Everything the patient-page panel shows, in one audited read."""
        work = self.ctx.unit_of_work(actor, "mbc.panel", perm=Perm.PATIENT_READ,
                                     patient_id=patient_id)
        from ketaclinic.services.mbc.assessments import record_of
        from ketaclinic.store.tables_treatment import Assessment

        now = work.now
        with work as uow:
            s = uow.session
            uow.patients.get(patient_id)
            summaries = course_summaries(s, patient_id, now)
            rows = s.execute(select(Assessment).where(Assessment.patient_id == patient_id)
                             .order_by(Assessment.administered_at.desc(), Assessment.id.desc())
                             .limit(12)).scalars().all()
            data = {
                "courses": [{"summary": c, "outcome": outcome_dict(c),
                             "chart": chart_for(c, f"trajectory-{c.course_id}")}
                            for c in summaries],
                "assessments": [record_of(a) for a in rows],
                "alerts": self.alerts.for_patient(s, patient_id),
                "events": self.assessments.events_for_patient(s, patient_id),
                "links": self.self_report.links_for_patient(s, patient_id),
                "schedules": self.self_report.schedules_for_patient(s, patient_id),
                "instruments": self.instruments.known_ids(s),
                "entry_forms": [entry_form(self.instruments.for_display(s, i))
                                for i in self.instruments.known_ids(s)],
                "self_report_instruments": self.instruments.self_report_ids(s),
                "email_enabled": bool(self.ctx.settings.smtp_host),
                "sms_enabled": bool(self.ctx.settings.sms_url),
                "default_days": self.ctx.settings.reminder_days,
                "now": now,
            }
            uow.audit(patient_id=patient_id)
            return data
