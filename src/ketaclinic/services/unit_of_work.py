"""One use case's unit of work: actor, permission, transaction, clock and audit trail in one.

A service method opens one with :meth:`Context.unit_of_work
<ketaclinic.services.context.Context.unit_of_work>`::

    with self.ctx.unit_of_work(actor, "patient.view", perm=Perm.PATIENT_READ,
                               patient_id=patient_id) as uow:
        patient = uow.patients.get(patient_id)      # NotFound("no such patient")
        uow.audit(patient_id=patient_id)            # actor, action and time are bound
        return detail_of(patient)

What it does once, so no service writes it again:

* **Permission**: checked when the unit is made (before the transaction); a denial is audited
  in its own transaction (outcome ``denied``) and raised, exactly as ``Context.require``.
  When it depends on a row the unit has to read first (a session's patient), a first ``with``
  reads it and :meth:`UnitOfWork.require` checks it before the second ``with`` does the work.
* **Clock**: ``uow.now`` is read once when the unit is made; ``uow.today`` is that instant's
  date on the clinic calendar. Every row and audit entry of the unit carries the same time.
* **Transaction**: entering the unit opens one; leaving commits, an exception rolls back
  everything the unit wrote, its audit rows included (a failure is then audited with
  :meth:`UnitOfWork.record_failure`, in its own transaction).
* **Repositories**: ``uow.patients`` (the one patient loader) and ``uow.idempotency`` (the
  one implementation of "a resubmitted create records once", see
  :mod:`ketaclinic.services.idempotency`).
* **Analytic reads**: ``uow.analytics()`` is a read-only connection outside the unit's
  transaction, on the read replica when one is configured (``Database.analytics``); the unit's
  audit rows still go to the primary when it is entered.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from decimal import Decimal
from types import TracebackType
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy import Connection, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ketaclinic.services.audit.trail import Actor
from ketaclinic.services.errors import Conflict, NotFound
from ketaclinic.services.idempotency import IdempotencyRepository, IdempotentRequest, KeyReused
from ketaclinic.store.tables import Patient, PatientWeight

if TYPE_CHECKING:
    from ketaclinic.services.accounts.permissions import Perm
    from ketaclinic.services.context import Context

T = TypeVar("T")
NO_SUCH_PATIENT = "no such patient"


class PatientRepository:
    """Patients of one transaction. The only place a service loads a patient by id."""

    def __init__(self, session: Session) -> None:
        self.s = session

    def get(self, patient_id: int) -> Patient:
        """The patient, or :class:`NotFound` ("no such patient"; the web layer audits the
        404 of a patient route as a ``patient.lookup`` probe)."""
        patient = self.s.get(Patient, patient_id)
        if patient is None:
            raise NotFound(NO_SUCH_PATIENT)
        return patient

    def get_for_update(self, patient_id: int) -> Patient:
        """The patient, row-locked until the transaction ends (PostgreSQL)."""
        patient = self.s.get(Patient, patient_id, with_for_update=True)
        if patient is None:
            raise NotFound(NO_SUCH_PATIENT)
        return patient

    def latest_weight(self, patient_id: int) -> tuple[Decimal, dt.date] | None:
        """The most recent weight (kg, measured on), or None when none is recorded."""
        row = self.s.execute(select(PatientWeight.weight_kg, PatientWeight.measured_on).where(
            PatientWeight.patient_id == patient_id).order_by(
            PatientWeight.measured_on.desc(), PatientWeight.id.desc()).limit(1)).first()
        return None if row is None else (row[0], row[1])


Create = Callable[["UnitOfWork"], tuple[T, int]]
Replay = Callable[["UnitOfWork", int], tuple[T, int | None]]


class IdempotencyWork:
    """Idempotency keys as seen from a unit of work (``uow.idempotency``)."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow

    def replay(self, req: IdempotentRequest, rebuild: Replay[T]) -> T | None:
        """In the open unit: the first result of this keyed request, or None when the key is
        new. ``rebuild(uow, resource_id)`` returns (result, patient id); the replay is audited
        as a read (``<scope>.replay``, outcome ``replayed``). A key reused for a different
        request raises :class:`KeyReused`."""
        resource_id = IdempotencyRepository(self.uow.session).find(req)
        if resource_id is None:
            return None
        result, patient_id = rebuild(self.uow, resource_id)
        self.uow.audit(f"{req.scope}.replay", outcome="replayed", patient_id=patient_id,
                       detail=f"idempotent replay of record {resource_id}")
        return result

    def remember(self, req: IdempotentRequest, resource_id: int) -> None:
        IdempotencyRepository(self.uow.session).remember(req, resource_id, self.uow.now)

    def run(self, req: IdempotentRequest | None, *, create: Create[T], replay: Replay[T],
            conflict: str) -> tuple[T, bool]:
        """Run ``create`` once per keyed request; returns (result, created). Opens the unit
        itself (call it on a unit that is not open):

        * ``create(uow)`` does the work and returns (result, resource id);
        * a repeated key replays the first result (:meth:`replay`);
        * a key reused for a different request is audited ``rejected`` and raised (422);
        * an identical request that committed first (a unique constraint fails) is replayed;
          any other unique constraint is a 409 with ``conflict``.
        """
        uow = self.uow
        try:
            with uow:
                if req is not None:
                    earlier = self.replay(req, replay)
                    if earlier is not None:
                        return earlier, False
                result, resource_id = create(uow)
                if req is not None:
                    self.remember(req, resource_id)
                return result, True
        except KeyReused:
            assert req is not None
            uow.record_failure("rejected", action=req.scope,
                               detail="idempotency key reused for a different request")
            raise
        except IntegrityError as exc:
            if req is not None:  # an identical request committed first: replay it
                with uow:
                    earlier = self.replay(req, replay)
                    if earlier is not None:
                        return earlier, False
            raise Conflict(conflict) from exc


class UnitOfWork:
    """One use case for one actor: see the module docstring. Made by
    ``ctx.unit_of_work(...)``; enter it (``with``) for its transaction."""

    def __init__(self, ctx: Context, actor: Actor, action: str, now: dt.datetime) -> None:
        self.ctx = ctx
        self.actor = actor
        self.action = action
        self.now = now
        self.today = ctx.clinic_time.local_date(now)
        self._tx: AbstractContextManager[Session] | None = None
        self._session: Session | None = None

    # --- the transaction -------------------------------------------------------------------
    def __enter__(self) -> UnitOfWork:
        if self._session is not None:
            raise RuntimeError("this unit of work is already open")
        self._tx = self.ctx.db.transaction()
        self._session = self._tx.__enter__()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        tx, self._tx, self._session = self._tx, None, None
        if tx is not None:
            tx.__exit__(kind, exc, tb)

    @property
    def session(self) -> Session:
        """The open transaction's session (for queries the repositories do not cover)."""
        if self._session is None:
            raise RuntimeError("the unit of work is not open (use it in a with block)")
        return self._session

    def analytics(self) -> AbstractContextManager[Connection]:
        """A read-only connection for analytic queries, apart from the unit's transaction: the
        read replica's when one is configured, else the primary's; rolled back at the end.
        Audit the read with the unit itself (``with uow: uow.audit(...)``), on the primary."""
        return self.ctx.db.analytics()

    # --- the permission, when it depends on what the unit read ------------------------------
    def require(self, perm: Perm, *, patient_id: int | None = None) -> None:
        """Check ``perm`` for ``patient_id`` now, between two ``with`` blocks of this unit:
        for a use case whose patient is known only from a row (a session, a form) that a first
        block read. A denial is audited as the unit's action and raised (``Context.require``)."""
        if self._session is not None:
            raise RuntimeError("check the permission between the unit's transactions, not in one")
        self.ctx.require(self.actor, perm, self.action, patient_id=patient_id)

    # --- repositories ----------------------------------------------------------------------
    @property
    def patients(self) -> PatientRepository:
        return PatientRepository(self.session)

    @property
    def idempotency(self) -> IdempotencyWork:
        return IdempotencyWork(self)

    # --- the audit trail -------------------------------------------------------------------
    def audit(self, action: str | None = None, *, patient_id: int | None = None,
              outcome: str = "ok", detail: str = "") -> None:
        """One audit row in this unit's transaction (it rolls back with the unit)."""
        self.ctx.audit.record(self.session, self.actor, action or self.action, at=self.now,
                              outcome=outcome, patient_id=patient_id, detail=detail)

    def audit_list(self, patient_ids: Iterable[int | None], action: str | None = None, *,
                   detail: str = "") -> int:
        """A list read: one row per distinct patient shown (``AuditTrail.record_list``)."""
        return self.ctx.audit.record_list(self.session, self.actor, action or self.action,
                                          patient_ids, at=self.now, detail=detail)

    def record_failure(self, outcome: str, *, action: str | None = None,
                       patient_id: int | None = None, detail: str = "") -> None:
        """Audit an attempt that failed, in its own transaction (the unit's rolled back)."""
        self.ctx.record_failure(self.actor, action or self.action, outcome,
                                patient_id=patient_id, detail=detail)
