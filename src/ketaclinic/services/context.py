"""What every service needs: the database, the audit trail, the clock and the settings."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from ketaclinic.config import Settings
from ketaclinic.services.accounts.permissions import Perm, allowed, denial
from ketaclinic.services.audit.trail import SYSTEM, Actor, AuditTrail
from ketaclinic.services.clinic_time import ClinicTime
from ketaclinic.services.clock import Clock
from ketaclinic.services.errors import PermissionDenied
from ketaclinic.services.unit_of_work import UnitOfWork
from ketaclinic.store.db import Database


@dataclass
class Context:
    settings: Settings
    db: Database
    audit: AuditTrail
    clock: Clock
    clinic_time: ClinicTime = field(init=False)

    def __post_init__(self) -> None:
        self.clinic_time = ClinicTime(self.settings.clinic_timezone)

    def today(self) -> dt.date:
        """Today on the clinic's calendar (KETACLINIC_CLINIC_TIMEZONE), not UTC's."""
        return self.clinic_time.today(self.clock())

    def unit_of_work(self, actor: Actor, action: str, *, perm: Perm | None = None,
                     patient_id: int | None = None) -> UnitOfWork:
        """One use case's unit of work (services.unit_of_work): ``perm`` is checked now (a
        denial is audited as ``action`` and raised) and the clock read once; ``with`` it for
        the transaction."""
        if perm is not None:
            self.require(actor, perm, action, patient_id=patient_id)
        return UnitOfWork(self, actor, action, self.clock())

    def require(
        self, actor: Actor, perm: Perm, action: str, *, patient_id: int | None = None
    ) -> None:
        """Check a permission; a denial is audited in its own transaction, then raised.

        The SYSTEM actor (the operator at the command line, who holds the database) passes.
        """
        if actor is SYSTEM or allowed(actor, perm):
            return
        with self.db.transaction() as session:
            self.audit.record(
                session,
                actor,
                action,
                at=self.clock(),
                outcome="denied",
                patient_id=patient_id,
                detail=(f"missing scope {perm.value}" if actor.scopes is not None
                        else f"missing permission {perm.value}"),
            )
        raise PermissionDenied(denial(actor, perm))

    def record_failure(
        self, actor: Actor, action: str, outcome: str, *, patient_id: int | None = None,
        detail: str = "",
    ) -> None:
        """Audit an attempt that failed (its own transaction, since the work rolled back)."""
        with self.db.transaction() as session:
            self.audit.record(
                session, actor, action, at=self.clock(), outcome=outcome,
                patient_id=patient_id, detail=detail,
            )
