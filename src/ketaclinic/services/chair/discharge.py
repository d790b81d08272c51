"""The end of a session at the chair: discharge when the core's checklist passes, or record a
patient who leaves against advice. Either way the session's outcome, its checklist and findings
are stored, an esketamine session gets its REMS form due, and the step is audited; a refused
discharge saves nothing and is audited as refused.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from ketaclinic.clinical.discharge import (
    LEFT_AGAINST_ADVICE,
    DischargeDecision,
    DischargeInput,
    evaluate_discharge,
    left_against_advice,
)
from ketaclinic.clinical.rems import form_due_date
from ketaclinic.clinical.rules import Finding, Level
from ketaclinic.schemas_chair import DischargeCreate, LeftAgainstAdviceCreate
from ketaclinic.services.audit.trail import Actor
from ketaclinic.services.chair.common import (
    audit_session,
    changing_session,
    clinical,
    findings_json,
    require_status,
    session_rules,
    session_unit,
    touch,
    vital_signs,
)
from ketaclinic.services.context import Context
from ketaclinic.services.dosing.rulesets import RuleSetService
from ketaclinic.services.errors import ServiceError
from ketaclinic.services.unit_of_work import UnitOfWork
from ketaclinic.store.tables_chair import DischargeRecord, RemsFormRow, SessionAlert, VitalSignRow
from ketaclinic.store.tables_treatment import Assessment, TreatmentSession


class DischargeRefused(ServiceError):
    """The discharge checklist is not complete; ``findings`` say what is missing."""

    status = 422

    def __init__(self, message: str, findings: list[Finding]) -> None:
        super().__init__(message)
        self.findings = findings


def rule_set_treatment(session_treatment: str) -> str:
    """The rule-set treatment of a chair session (``iv_ketamine`` → ``ketamine-iv``)."""
    return "esketamine" if session_treatment == "esketamine" else "ketamine-iv"


class SessionDischarge:
    """Discharge and leaving against advice (``SessionService`` offers both)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def discharge(self, actor: Actor, session_id: int, data: DischargeCreate) -> list[Finding]:
        """Discharge when the core's checklist passes (no override: esketamine before 120 min
        after the first device is refused; a patient who leaves anyway is recorded with
        :meth:`leave_against_advice`). Refusals save nothing and are audited."""
        work, patient_id = session_unit(self.ctx, actor, session_id, "session.discharge")
        try:
            with changing_session(work, session_id, data.version) as row:
                require_status(row, ("monitoring",), "discharge")
                decision = self._decide(work.session, row, data, work.now)
                if not decision.ready:
                    blocking = [f for f in decision.findings if f.level in (Level.HARD,
                                                                            Level.SOFT)]
                    raise DischargeRefused("not ready for discharge: " + "; ".join(
                        f.message for f in blocking) + ". Nothing was saved.",
                        list(decision.findings))
                findings = list(decision.findings)
                self._leave(work, row, data, findings, "discharged", "")
                return findings
        except DischargeRefused as exc:
            work.record_failure("refused", patient_id=patient_id,
                                detail=f"session {session_id}: " + ", ".join(
                                    f.rule for f in exc.findings if f.level in (
                                        Level.HARD, Level.SOFT))[:300])
            raise

    def leave_against_advice(self, actor: Actor, session_id: int,
                             data: LeftAgainstAdviceCreate) -> list[Finding]:
        """The patient leaves before the checklist passes: record who, when and what was said
        (status ``left-against-advice``, never "discharged"/ready; the REMS form says so)."""
        work, _ = session_unit(self.ctx, actor, session_id, "session.left_against_advice")
        with changing_session(work, session_id, data.version) as row:
            require_status(row, ("monitoring",), "recording a patient leaving")
            decision = self._decide(work.session, row, data, work.now)
            findings = clinical(lambda: left_against_advice(decision, data.statement))
            self._leave(work, row, data, findings, LEFT_AGAINST_ADVICE, data.statement)
            return findings

    def _leave(self, uow: UnitOfWork, row: TreatmentSession,
               data: DischargeCreate | LeftAgainstAdviceCreate, findings: list[Finding],
               outcome: str, statement: str) -> None:
        s, now = uow.session, uow.now
        s.add(DischargeRecord(
            session_id=row.id, discharged_at=now, ready_at=getattr(data, "ready_at", None),
            checklist_json=data.model_dump_json(exclude={"version"}),
            findings_json=findings_json(findings), override_reason="", outcome=outcome,
            statement=statement.strip(), recorded_by=uow.actor.user_id))
        row.discharged_at = now
        row.discharge_override_reason = ""
        if row.treatment == "esketamine" and row.first_device_at is not None:
            day = self.ctx.clinic_time.local_date(row.first_device_at)
            s.add(RemsFormRow(session_id=row.id, patient_id=row.patient_id,
                              treatment_date=day, due_on=form_due_date(day),
                              status="due", created_at=now))
        touch(uow, row, outcome)
        audit_session(uow, uow.action, row, outcome)

    def _decide(self, s: Session, row: TreatmentSession,
                data: DischargeCreate | LeftAgainstAdviceCreate,
                now: dt.datetime) -> DischargeDecision:
        """Gather the session's facts and ask the clinical core (the only gate)."""
        open_alerts = len(s.execute(select(SessionAlert.id).where(
            SessionAlert.session_id == row.id, SessionAlert.action_taken == "")).all())
        vitals = s.execute(select(VitalSignRow).where(VitalSignRow.session_id == row.id)
                           ).scalars().all()
        moaas = s.execute(select(Assessment).where(
            Assessment.session_id == row.id, Assessment.instrument_id == "moaas",
            Assessment.total.is_not(None)).order_by(
            Assessment.administered_at.desc(), Assessment.id.desc()).limit(1)
        ).scalar_one_or_none()
        limits = RuleSetService(self.ctx).active_in(s, rule_set_treatment(row.treatment))
        inp = DischargeInput(
            treatment=row.treatment, now=now, first_device_at=row.first_device_at,
            infusion_end_at=row.dose_ended_at,
            moaas=int(moaas.total) if moaas is not None and moaas.total is not None else None,
            moaas_at=moaas.administered_at if moaas is not None else None,
            dissociation_resolved=getattr(data, "dissociation_resolved", None),
            respiratory_depression_resolved=getattr(data, "respiratory_depression_resolved",
                                                    None),
            responsible_adult_present=getattr(data, "responsible_adult_present", None),
            vitals=tuple(vital_signs(v) for v in vitals), open_alerts=open_alerts)
        return clinical(lambda: evaluate_discharge(inp, session_rules(), limits))
