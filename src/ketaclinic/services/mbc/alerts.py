"""Clinical alerts raised by scoring: the clinic worklist and acknowledgement with a note."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, case, func, or_, select
from sqlalchemy.orm import Session

from ketaclinic.clinical.monitoring import RESPIRATORY
from ketaclinic.services.accounts.permissions import Perm
from ketaclinic.services.audit.trail import Actor
from ketaclinic.services.chair.alert_links import close_session_twins
from ketaclinic.services.context import Context
from ketaclinic.services.errors import Conflict, InvalidInput, NotFound
from ketaclinic.services.paging import Paged, page_rows
from ketaclinic.store.tables import Patient, User
from ketaclinic.store.tables_chair import SessionAlert
from ketaclinic.store.tables_mbc import ClinicalAlert
from ketaclinic.store.tables_treatment import Assessment

PRIORITY_ORDER = {"urgent": 0, "high": 1, "routine": 2}
MAX_NOTE = 2000


@dataclass(frozen=True)
class AlertView:
    id: int
    patient_id: int
    patient_name: str
    mrn: str
    assessment_id: int
    instrument_id: str
    administered_at: dt.datetime
    source: str  # clinic | self-report
    rule: str
    priority: str
    message: str
    item: int | None
    value: int | None
    threshold: int | None
    rule_source: str
    raised_at: dt.datetime
    acknowledged_at: dt.datetime | None
    acknowledged_by: str
    ack_note: str

    @property
    def open(self) -> bool:
        return self.acknowledged_at is None


class AlertService:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def worklist(self, actor: Actor, *, include_acknowledged: bool = False,
                 limit: int = 200, offset: int = 0) -> Paged[AlertView]:
        """Open alerts across the clinic: urgent first, then the newest first within a
        priority (acknowledged ones, when asked for, after all open ones)."""
        with self.ctx.unit_of_work(actor, "alert.worklist", perm=Perm.PATIENT_READ) as uow:
            page = page_rows(uow.session, self._select(None, include_acknowledged), limit,
                             offset, scalars=False).map(lambda row: _view(*row))
            uow.audit_list([a.patient_id for a in page], detail=f"{len(page)} alerts")
            return page

    def for_patient(self, s: Session, patient_id: int) -> list[AlertView]:
        """All alerts of one patient, open first (used inside an audited panel read)."""
        return self._query(s, patient_id, True, 100)

    def urgent_open_count(self, actor: Actor) -> int:
        """Open urgent alerts across the clinic, with open SpO2 and respiratory-rate alerts at
        the chairs (the number in the navigation; no patient data, so no audit row)."""
        breathing = or_(*(SessionAlert.rule.like(f"vitals.{param}%")
                          for param in RESPIRATORY))
        with self.ctx.unit_of_work(actor, "alert.count", perm=Perm.PATIENT_READ) as uow:
            s = uow.session
            urgent = s.execute(select(func.count(ClinicalAlert.id)).where(
                ClinicalAlert.acknowledged_at.is_(None),
                ClinicalAlert.priority == "urgent")).scalar_one()
            # SpO2 and respiratory-rate alerts at a chair count like urgent ones until the
            # action taken is recorded.
            chair = s.execute(select(func.count(SessionAlert.id)).where(
                SessionAlert.action_taken == "", breathing)).scalar_one()
            return int(urgent) + int(chair)

    def _query(self, s: Session, patient_id: int | None, include_acknowledged: bool,
               limit: int, alert_id: int | None = None) -> list[AlertView]:
        rows = s.execute(self._select(patient_id, include_acknowledged, alert_id).limit(limit)
                         ).all()
        return [_view(a, p, asm, who) for a, p, asm, who in rows]

    @staticmethod
    def _select(patient_id: int | None, include_acknowledged: bool,
                alert_id: int | None = None) -> Select[*tuple[Any, ...]]:
        stmt = (select(ClinicalAlert, Patient, Assessment, User.username)
                .join(Patient, Patient.id == ClinicalAlert.patient_id)
                .join(Assessment, Assessment.id == ClinicalAlert.assessment_id)
                .outerjoin(User, User.id == ClinicalAlert.acknowledged_by))
        if patient_id is not None:
            stmt = stmt.where(ClinicalAlert.patient_id == patient_id)
        if alert_id is not None:
            stmt = stmt.where(ClinicalAlert.id == alert_id)
        if not include_acknowledged:
            stmt = stmt.where(ClinicalAlert.acknowledged_at.is_(None))
        # The whole order in SQL, so a page or a limit never drops an open alert for an old
        # acknowledged one: open first, then urgent first, the newest first within a priority.
        rank = case(PRIORITY_ORDER, value=ClinicalAlert.priority, else_=9)
        return stmt.order_by(ClinicalAlert.acknowledged_at.is_not(None), rank,
                             ClinicalAlert.raised_at.desc(), ClinicalAlert.id.desc())

    def acknowledge(self, actor: Actor, alert_id: int, note: str) -> AlertView:
        """A clinician acknowledges an alert with a note (required); who and when are kept."""
        note = (note or "").strip()
        work = self.ctx.unit_of_work(actor, "alert.acknowledge")
        with work as uow:  # whose alert it is, so that a denial names the patient
            alert = uow.session.get(ClinicalAlert, alert_id)
            patient_id = alert.patient_id if alert else None
        work.require(Perm.CLINICAL_WRITE, patient_id=patient_id)
        if alert is None:
            raise NotFound("no such alert")
        if not note:
            raise InvalidInput("note: an acknowledgement needs a note (what was done)")
        if len(note) > MAX_NOTE:
            raise InvalidInput(f"note: is longer than {MAX_NOTE} characters")
        with work as uow:
            s, now = uow.session, uow.now
            alert = s.get(ClinicalAlert, alert_id, with_for_update=True)
            if alert is None:
                raise NotFound("no such alert")
            if alert.acknowledged_at is not None:
                raise Conflict("this alert was already acknowledged")
            alert.acknowledged_at = now
            alert.acknowledged_by = actor.user_id
            alert.ack_note = note
            close_session_twins(s, alert, note, actor.user_id, now)
            s.flush()
            uow.audit(patient_id=alert.patient_id, detail=f"alert {alert.id} {alert.rule}")
            return self._query(s, alert.patient_id, True, 1, alert_id=alert_id)[0]


def _view(a: ClinicalAlert, p: Patient, asm: Assessment, who: str | None) -> AlertView:
    return AlertView(a.id, p.id, f"{p.family_name}, {p.given_name}", p.mrn, asm.id,
                     a.instrument_id, asm.administered_at, asm.source, a.rule, a.priority,
                     a.message, a.item, a.value, a.threshold, a.source, a.raised_at,
                     a.acknowledged_at, who or "", a.ack_note)
