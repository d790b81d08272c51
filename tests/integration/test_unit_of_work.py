"""The unit of work's invariants, proved once for every service that opens one.

A unit checks its permission (a denial is audited, then raised), loads patients through one
repository (one "no such patient" 404, still audited as a probe by the web layer), writes its
audit rows in its own transaction (they roll back with a failed unit) and reads the clock
once (every row of a unit carries the same time).
"""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from ketaclinic.schemas import PatientCreate
from ketaclinic.services.accounts.permissions import Perm
from ketaclinic.services.audit.trail import SYSTEM
from ketaclinic.services.errors import InvalidInput, NotFound, PermissionDenied
from ketaclinic.services.idempotency import IdempotentRequest
from ketaclinic.services.unit_of_work import NO_SUCH_PATIENT, UnitOfWork
from ketaclinic.store.tables import AuditEvent, Patient


def _rows(services, action: str) -> list[AuditEvent]:  # type: ignore[no-untyped-def]
    with services.db.transaction() as s:
        return list(s.execute(select(AuditEvent).where(AuditEvent.action == action)
                              .order_by(AuditEvent.id)).scalars())


def _patient(services) -> int:  # type: ignore[no-untyped-def]
    p, _ = services.patients.create(SYSTEM, PatientCreate(
        mrn="UOW-1", family_name="Unit", given_name="Ida", birth_date=dt.date(1981, 5, 6),
        sex="female"))
    return p.id


def test_a_unit_without_the_permission_is_refused_audited_and_opens_nothing(services, users):
    pid = _patient(services)
    analyst = users["analyst"].actor
    with pytest.raises(PermissionDenied):
        services.ctx.unit_of_work(analyst, "uow.probe", perm=Perm.PATIENT_READ, patient_id=pid)
    [row] = _rows(services, "uow.probe")
    assert (row.outcome, row.patient_id, row.username) == ("denied", pid, analyst.username)
    assert row.detail == f"missing permission {Perm.PATIENT_READ.value}"


def test_a_permission_checked_after_a_first_read_is_audited_for_that_patient(services, users):
    """uow.require: the patient is known only from what a first transaction of the unit read;
    a denial is audited as the unit's action with that patient, and nothing else is written."""
    pid = _patient(services)
    analyst, nurse = users["analyst"].actor, users["nurse"].actor
    for actor in (analyst, nurse):
        work = services.ctx.unit_of_work(actor, "uow.later")
        with work:
            found = work.patients.get(pid).id
        if actor is analyst:
            with pytest.raises(PermissionDenied):
                work.require(Perm.PATIENT_READ, patient_id=found)
        else:
            work.require(Perm.PATIENT_READ, patient_id=found)
            with work:
                work.audit(patient_id=found)
    assert [(r.username, r.outcome, r.patient_id) for r in _rows(services, "uow.later")] == [
        (analyst.username, "denied", pid), (nurse.username, "ok", pid)]
    with services.ctx.unit_of_work(nurse, "uow.later") as open_unit:  # not inside a transaction
        with pytest.raises(RuntimeError, match="between"):
            open_unit.require(Perm.PATIENT_READ, patient_id=pid)


def test_a_missing_patient_is_one_not_found_message_and_a_probe_is_audited(
        services, users, login):
    with services.ctx.unit_of_work(users["nurse"].actor, "uow.get") as uow:
        with pytest.raises(NotFound, match=f"^{NO_SUCH_PATIENT}$"):
            uow.patients.get(987654)
        with pytest.raises(NotFound, match=f"^{NO_SUCH_PATIENT}$"):
            uow.patients.get_for_update(987654)
    c, _ = login("nurse")
    got = c.get("/api/patients/987654")
    assert got.status_code == 404 and NO_SUCH_PATIENT in got.text
    probes = [r for r in _rows(services, "patient.lookup") if r.patient_id == 987654]
    assert [r.outcome for r in probes] == ["not_found"]


def test_audit_rows_of_a_failed_unit_roll_back_with_it(services, users):
    pid = _patient(services)
    nurse = users["nurse"].actor
    with pytest.raises(InvalidInput):
        with services.ctx.unit_of_work(nurse, "uow.write", perm=Perm.PATIENT_WRITE,
                                       patient_id=pid) as uow:
            uow.patients.get(pid).notes = "half-done"
            uow.audit(patient_id=pid, detail="before the failure")
            raise InvalidInput("the rest of the work was refused")
    assert _rows(services, "uow.write") == []
    with services.db.transaction() as s:
        assert s.get(Patient, pid).notes == ""
    # and a failure recorded afterwards has its own transaction
    services.ctx.unit_of_work(nurse, "uow.write").record_failure("rejected", patient_id=pid)
    assert [r.outcome for r in _rows(services, "uow.write")] == ["rejected"]


def test_now_is_read_once_per_unit(services, users, clock):
    pid = _patient(services)
    nurse = users["nurse"].actor
    with services.ctx.unit_of_work(nurse, "uow.time", perm=Perm.PATIENT_READ,
                                   patient_id=pid) as uow:
        first = uow.now
        uow.audit(patient_id=pid)
        clock.advance(minutes=7)
        uow.audit(patient_id=pid, detail="later in the same unit")
        assert uow.now == first
        assert uow.today == services.ctx.clinic_time.local_date(first)
    assert {r.occurred_at.replace(tzinfo=None) for r in _rows(services, "uow.time")} == {
        first.replace(tzinfo=None)}


def test_a_unit_is_not_opened_twice_at_once(services, users):
    uow = services.ctx.unit_of_work(users["nurse"].actor, "uow.nested")
    with uow, pytest.raises(RuntimeError):
        uow.__enter__()
    with pytest.raises(RuntimeError):
        uow.session  # noqa: B018 - closed: no session outside the with block


def test_idempotency_replays_through_the_unit_and_audits_the_replay(services, users):
    pid = _patient(services)
    nurse = users["nurse"].actor
    req = IdempotentRequest.of(nurse, "uow.keyed", "k-1", pid)
    assert req is not None
    made: list[int] = []

    def create(uow: UnitOfWork) -> tuple[str, int]:
        made.append(pid)
        uow.audit(patient_id=pid)
        return "first", pid

    def replay(uow: UnitOfWork, resource_id: int) -> tuple[str, int | None]:
        return "again", uow.patients.get(resource_id).id

    work = services.ctx.unit_of_work(nurse, "uow.keyed")
    assert work.idempotency.run(req, create=create, replay=replay, conflict="x") == (
        "first", True)
    work = services.ctx.unit_of_work(nurse, "uow.keyed")
    assert work.idempotency.run(req, create=create, replay=replay, conflict="x") == (
        "again", False)
    assert made == [pid]
    assert [r.outcome for r in _rows(services, "uow.keyed.replay")] == ["replayed"]
