"""Helpers shared by the chair services: loading rows, version checks, amendments, rules."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any, TypeVar

from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from ketaclinic.clinical.monitoring import VitalSigns
from ketaclinic.clinical.rules import ClinicalInputError, Finding
from ketaclinic.clinical.scheduling import SchedulingRules, load_scheduling_rules
from ketaclinic.clinical.session_rules import SessionRules, load_session_rules
from ketaclinic.services.accounts.permissions import Perm
from ketaclinic.services.audit.trail import Actor
from ketaclinic.services.context import Context
from ketaclinic.services.errors import Conflict, InvalidInput, NotFound
from ketaclinic.services.unit_of_work import UnitOfWork
from ketaclinic.store.tables_chair import ChairAmendment, VitalSignRow
from ketaclinic.store.tables_treatment import Course, TreatmentSession

T = TypeVar("T")


@lru_cache(maxsize=1)
def session_rules() -> SessionRules:
    return load_session_rules()


@lru_cache(maxsize=1)
def scheduling_rules() -> SchedulingRules:
    return load_scheduling_rules()


def clinical(call: Callable[[], T]) -> T:
    """Run a pure-core call; its one-line ClinicalInputError becomes InvalidInput (422)."""
    try:
        return call()
    except ClinicalInputError as exc:
        raise InvalidInput(str(exc)) from exc


@contextmanager
def stale_as_conflict() -> Iterator[None]:
    try:
        yield
    except StaleDataError as exc:
        raise Conflict("this record was changed by someone else at the same moment; reload "
                       "and apply your changes again") from exc


def check_version(kind: str, row: Course | TreatmentSession, expected: int) -> None:
    if row.version != expected:
        raise Conflict(f"this {kind} changed since you opened it (you edited version {expected}, "
                       f"it is now version {row.version}); nothing was saved: reload, check "
                       "what changed and enter your changes again")


def load_session(s: Session, session_id: int, *, lock: bool = False) -> TreatmentSession:
    row = s.get(TreatmentSession, session_id, with_for_update=lock or None)
    if row is None:
        raise NotFound("no such treatment session")
    return row


def unit_for_patient_of(ctx: Context, actor: Actor, action: str, perm: Perm,
                        patient_of: Callable[[Session], int]) -> tuple[UnitOfWork, int]:
    """The unit of work of ``action`` on a row that names its patient: a first transaction
    reads the patient id (``patient_of``; a missing row is its 404, before the permission),
    then ``perm`` is checked for that patient (a denial is audited as ``action`` with it).
    Returns the unit, not yet open (``with`` it for the work), and the patient id."""
    uow = ctx.unit_of_work(actor, action)
    with uow:
        patient_id = patient_of(uow.session)
    uow.require(perm, patient_id=patient_id)
    return uow, patient_id


def session_unit(ctx: Context, actor: Actor, session_id: int, action: str,
                 perm: Perm = Perm.CLINICAL_WRITE) -> tuple[UnitOfWork, int]:
    """:func:`unit_for_patient_of` a treatment session."""
    return unit_for_patient_of(ctx, actor, action, perm,
                               lambda s: load_session(s, session_id).patient_id)


def course_unit(ctx: Context, actor: Actor, course_id: int, action: str,
                perm: Perm) -> tuple[UnitOfWork, int]:
    """:func:`unit_for_patient_of` a course."""
    return unit_for_patient_of(ctx, actor, action, perm,
                               lambda s: load_course(s, course_id).patient_id)


@contextmanager
def changing_session(uow: UnitOfWork, session_id: int, version: int) -> Iterator[TreatmentSession]:
    """Open ``uow`` to change a treatment session: the row is loaded and its version checked
    (a stale one is a 409, never a merge); a concurrent write is a 409 as well."""
    with stale_as_conflict(), uow:
        row = load_session(uow.session, session_id)
        check_version("session", row, version)
        yield row


def require_status(row: TreatmentSession, allowed: tuple[str, ...], what: str) -> None:
    if row.status not in allowed:
        raise InvalidInput(f"{what} is not possible in a {row.status} session")


def touch(uow: UnitOfWork, row: TreatmentSession, status: str | None = None) -> None:
    """Stamp a changed session (and its new status); flushing bumps its version, so a
    concurrent writer gets StaleDataError (a 409)."""
    row.updated_at = uow.now
    if status:
        row.status = status
    uow.session.flush()


def audit_session(uow: UnitOfWork, action: str, row: TreatmentSession, detail: str = "") -> None:
    """The audit row of a step on a session: its patient, "session <id>[; detail]"."""
    uow.audit(action, patient_id=row.patient_id,
              detail=f"session {row.id}" + (f"; {detail}" if detail else ""))


VITAL_FIELDS = ("sbp_mmhg", "dbp_mmhg", "hr_bpm", "spo2_pct", "rr_per_min")


def vital_signs(v: VitalSignRow) -> VitalSigns:
    """A stored vitals row as the core's value."""
    return VitalSigns(v.taken_at, *(None if getattr(v, f) is None else float(getattr(v, f))
                                     for f in VITAL_FIELDS))


def load_course(s: Session, course_id: int) -> Course:
    row = s.get(Course, course_id)
    if row is None:
        raise NotFound("no such course")
    return row


def amend(s: Session, actor: Actor, at: dt.datetime, entity: str, entity_id: int,
          patient_id: int, field: str, old: object, new: object, reason_code: str = "",
          reason: str = "") -> None:
    s.add(ChairAmendment(entity=entity, entity_id=entity_id, patient_id=patient_id, field=field,
                         old_value=_text(old), new_value=_text(new), reason_code=reason_code,
                         reason=reason, changed_by=actor.user_id, changed_at=at))


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    return str(value)


def findings_json(findings: list[Finding]) -> str:
    return json.dumps([f.as_dict() for f in findings], default=str)


def findings_from_json(text: str) -> list[dict[str, Any]]:
    try:
        return list(json.loads(text or "[]"))
    except ValueError:
        return []


