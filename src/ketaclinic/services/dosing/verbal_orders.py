"""Verbal and telephone orders: taken at the chair, countersigned by the prescriber.

A nurse records the order the prescriber gave by telephone: the prescriber is named, the order
is read back and confirmed, and the same dose checks and screening gate run as for a signed
order (no soft-limit override can be taken by telephone). The order is administrable until the
rule set's countersign hours pass; then it is *overdue* and the chair refuses it until the
named prescriber countersigns. Every step is audited; the core decides.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from sqlalchemy import select

from ketaclinic.clinical.treatment_chain import check_countersign, check_verbal_order
from ketaclinic.services.accounts.permissions import Perm, allowed
from ketaclinic.services.audit.trail import Actor
from ketaclinic.services.dosing.plan import order_columns
from ketaclinic.services.dosing.treatment_chain import refuse_on_hard
from ketaclinic.services.errors import NotFound
from ketaclinic.store.tables import User
from ketaclinic.store.tables_dosing import DoseOrder as DoseOrderRow

if TYPE_CHECKING:
    from ketaclinic.clinical.dose_plan import DoseRequest
    from ketaclinic.services.dosing.service import DoseRecord, DosingService


def _prescriber(s, username: str) -> User | None:
    return s.execute(select(User).where(User.username == username.strip(),
                                        User.active.is_(True))).scalar_one_or_none()


def take_verbal_order(svc: DosingService, actor: Actor, patient_id: int, req: DoseRequest,
                      prescriber: str, read_back_confirmed: bool) -> DoseRecord:
    with svc.ctx.unit_of_work(actor, "dose.verbal", perm=Perm.CLINICAL_WRITE,
                              patient_id=patient_id) as uow:
        s = uow.session
        patient = uow.patients.get(patient_id)
        user = _prescriber(s, prescriber)
        plan = svc._plan(s, patient, req)
        refuse_on_hard(check_verbal_order(
            user is not None and allowed(Actor(user.id, user.username, user.role),
                                         Perm.PRESCRIBE), read_back_confirmed,
            [f.rule for f in plan.result.soft_findings]))
        refuse_on_hard([f for f in plan.result.checks if f.level.value == "hard"],
                       " (the verbal order was not recorded)")
        assert user is not None
        row = DoseOrderRow(patient_id=patient.id, **order_columns(plan),
                           course_id=req.course_id, status="verbal",
                           verbal_prescriber_id=user.id, read_back_confirmed=True,
                           checks_json=json.dumps([f.as_dict() for f in plan.result.checks],
                                                  default=str),
                           ordered_by=actor.user_id, created_at=uow.now)
        s.add(row)
        s.flush()
        uow.audit(patient_id=patient.id, detail=f"order {row.id} from {user.username}, read back")
        return svc._record(s, row)


def countersign(svc: DosingService, actor: Actor, patient_id: int,
                order_id: int) -> DoseRecord:
    with svc.ctx.unit_of_work(actor, "dose.countersign", perm=Perm.PRESCRIBE,
                              patient_id=patient_id) as uow:
        s = uow.session
        row = s.get(DoseOrderRow, order_id, with_for_update=True)
        if row is None or row.patient_id != patient_id:
            raise NotFound("no such dose order for this patient")
        refuse_on_hard([check_countersign(row.status,
                                          row.verbal_prescriber_id == actor.user_id)])
        row.status, row.countersigned_by, row.countersigned_at = (
            "countersigned", actor.user_id, uow.now)
        uow.audit(patient_id=patient_id, detail=f"order {order_id}")
        return svc._record(s, row)


def prescribers(svc: DosingService, actor: Actor) -> list[tuple[str, str]]:
    """(username, full name) of the active users who may prescribe: the nurse names the
    prescriber who gave the order from this list."""
    with svc.ctx.unit_of_work(actor, "dose.verbal.prescribers",
                              perm=Perm.CLINICAL_WRITE) as uow:
        users = uow.session.execute(select(User).where(User.active.is_(True))
                          .order_by(User.full_name, User.username)).scalars().all()
        return [(u.username, u.full_name) for u in users
                if allowed(Actor(u.id, u.username, u.role), Perm.PRESCRIBE)]
