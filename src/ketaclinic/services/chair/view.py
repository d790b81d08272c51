"""Read side of the session at the chair: everything the tablet page shows, in one audited read."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ketaclinic.clinical.age import age_on
from ketaclinic.clinical.monitoring import assessments_due, vitals_due
from ketaclinic.clinical.session_rules import pregnancy_test_relevant
from ketaclinic.clinical.treatment_chain import SCREENING_TREATMENT
from ketaclinic.services.accounts.permissions import Perm
from ketaclinic.services.audit.trail import Actor
from ketaclinic.services.chair.common import (
    findings_from_json,
    load_session,
    scheduling_rules,
    session_rules,
    session_unit,
)
from ketaclinic.services.chair.ledger import LedgerService
from ketaclinic.services.chair.session import RATING_LABEL, start_of
from ketaclinic.services.context import Context
from ketaclinic.services.dosing.treatment_chain import (
    order_states,
    screening_finding,
    session_order,
)
from ketaclinic.services.paging import Paged, page_rows
from ketaclinic.services.unit_of_work import PatientRepository
from ketaclinic.store.tables import User
from ketaclinic.store.tables_chair import (
    AdverseEventRow,
    ChairAmendment,
    DischargeRecord,
    DoseRecord,
    LedgerEntry,
    RemsFormRow,
    SessionAlert,
    SessionPrecheck,
    VitalSignRow,
)
from ketaclinic.store.tables_treatment import Assessment, Chair, TreatmentSession


def _rows(s: Session, model: Any, session_id: int, *order: Any) -> list[Any]:
    return list(s.execute(select(model).where(model.session_id == session_id).order_by(
        *order)).scalars())


def session_dict(r: TreatmentSession) -> dict[str, Any]:
    keys = ("id", "patient_id", "course_id", "number", "phase", "treatment", "status",
            "planned_date", "scheduled_start", "scheduled_minutes", "chair_id", "dose_order_id",
            "dose_mg", "route", "lot_numbers", "dose_started_at", "dose_ended_at",
            "first_device_at", "discharged_at", "discharge_override_reason", "cancel_reason",
            "version")
    return {k: getattr(r, k) for k in keys}


class SessionViewService:
    def __init__(self, ctx: Context, ledger: LedgerService) -> None:
        self.ctx = ctx
        self.ledger = ledger

    def view(self, actor: Actor, session_id: int) -> dict[str, Any]:
        work, _ = session_unit(self.ctx, actor, session_id, "session.view", Perm.PATIENT_READ)
        with work:
            row = load_session(work.session, session_id)
            out = self._load(work.session, row, work.now)
            work.audit(patient_id=row.patient_id, detail=f"session {session_id}")
        out["lots"] = [lot for lot in self.ledger.lots(actor, row.treatment) if lot.on_hand > 0]
        return out

    def _load(self, s: Session, row: TreatmentSession, now: dt.datetime) -> dict[str, Any]:
        p = PatientRepository(s).get(row.patient_id)
        names = dict(s.execute(select(User.id, User.full_name)).all())
        vitals = _rows(s, VitalSignRow, row.id, VitalSignRow.taken_at, VitalSignRow.id)
        ratings = _rows(s, Assessment, row.id, Assessment.administered_at, Assessment.id)
        pre = _rows(s, SessionPrecheck, row.id, SessionPrecheck.id)
        dose = _rows(s, DoseRecord, row.id, DoseRecord.id)
        discharge = _rows(s, DischargeRecord, row.id, DischargeRecord.id)
        rems = _rows(s, RemsFormRow, row.id, RemsFormRow.id)
        chair = s.get(Chair, row.chair_id) if row.chair_id else None
        start = start_of(row)
        age = age_on(p.birth_date, self.ctx.clinic_time.local_date(now))
        out: dict[str, Any] = {
            "session": session_dict(row),
            "chair_name": chair.name if chair else "",
            "patient": {"id": p.id, "name": f"{p.family_name}, {p.given_name}", "mrn": p.mrn,
                        "birth_date": p.birth_date, "sex": p.sex,
                        "age": age},
            "pregnancy_relevant": pregnancy_test_relevant(p.sex, age),
            "precheck": self._precheck(pre[-1]) if pre else None,
            "predose": next(({"vitals": v, "gate": v.gate, "reason": v.gate_reason}
                             for v in reversed(vitals) if v.kind == "predose"), None),
            "dose": self._dose(dose[-1]) if dose else None,
            "vitals": vitals,
            "alerts": _rows(s, SessionAlert, row.id, SessionAlert.id),
            "ratings": ratings,
            "adverse_events": _rows(s, AdverseEventRow, row.id, AdverseEventRow.id),
            "discharge": ({"row": discharge[-1], "findings": findings_from_json(
                discharge[-1].findings_json)} if discharge else None),
            "rems": rems[-1] if rems else None,
            "start_at": start,
            "due": [],
            "names": names,
            "history": list(s.execute(select(ChairAmendment).where(
                ChairAmendment.entity == "session", ChairAmendment.entity_id == row.id
            ).order_by(ChairAmendment.id)).scalars()),
            "ledger": list(s.execute(select(LedgerEntry).where(
                LedgerEntry.session_id == row.id).order_by(LedgerEntry.id)).scalars()),
            "reason_codes": scheduling_rules().reason_codes,
            "ae_terms": session_rules().ae_terms,
            "ae_severities": session_rules().ae_severities,
            "screening": screening_finding(s, p, SCREENING_TREATMENT[row.treatment],
                                           self.ctx.clinic_time.local_date(now)).as_dict(),
            "order": session_order(s, row, now),
            "given_order": order_states(s, {row.id}, now).get(row.id),
        }
        if start is not None and row.status == "monitoring":
            rules = session_rules()
            timed = [v.taken_at for v in vitals]
            rated = [(RATING_LABEL.get(a.instrument_id, a.instrument_id), a.administered_at)
                     for a in ratings]
            out["due"] = (vitals_due(start, timed, now, row.treatment, rules)
                          + assessments_due(start, rated, now, row.treatment, rules))
            out["due"].sort(key=lambda d: (d.due_at, d.label))
            out["minutes_since_start"] = int((now - start).total_seconds() // 60)
        return out

    @staticmethod
    def _precheck(r: SessionPrecheck) -> dict[str, Any]:
        return {"outcome": r.outcome, "findings": findings_from_json(r.findings_json),
                "override_reason": r.override_reason, "recorded_at": r.recorded_at,
                "answers": json.loads(r.answers_json or "{}")}

    @staticmethod
    def _dose(r: DoseRecord) -> dict[str, Any]:
        return {"row": r, "device_times": [dt.datetime.fromisoformat(t) for t in json.loads(
            r.device_times_json or "[]")]}

    def patient_sessions(self, actor: Actor, patient_id: int, limit: int | None = None,
                         offset: int = 0) -> Paged[dict[str, Any]]:
        """Sessions of a patient for the patient page (by planned date)."""
        with self.ctx.unit_of_work(actor, "session.list", perm=Perm.PATIENT_READ,
                                   patient_id=patient_id) as uow:
            page = page_rows(uow.session, select(TreatmentSession).where(
                TreatmentSession.patient_id == patient_id).order_by(
                TreatmentSession.planned_date, TreatmentSession.id), limit, offset)
            uow.audit(patient_id=patient_id, detail=f"{page.total} sessions")
            return page.map(session_dict)
