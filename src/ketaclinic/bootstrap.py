"""The one place that wires settings, the database and the services together."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import make_url

from ketaclinic.config import Settings
from ketaclinic.services.accounts.api_tokens import ApiTokenService
from ketaclinic.services.accounts.auth import AuthService
from ketaclinic.services.accounts.lifecycle import AccountService
from ketaclinic.services.accounts.lock_screen import LockScreenService
from ketaclinic.services.audit.trail import AuditLog, AuditTrail, audit_key
from ketaclinic.services.chair.facade import ChairServices, build_chair_services
from ketaclinic.services.clock import Clock, utc_now
from ketaclinic.services.context import Context
from ketaclinic.services.dosing.service import DosingService
from ketaclinic.services.interop.webhooks import WebhookService
from ketaclinic.services.mbc.facade import MeasurementCare
from ketaclinic.services.outcomes import summary as outcome_summary
from ketaclinic.services.outcomes.facade import OutcomesService
from ketaclinic.services.pk.exposure import PkService
from ketaclinic.services.registry.patients import PatientService
from ketaclinic.store import migrate
from ketaclinic.store.db import (
    Database,
    DurabilityError,
    check_durability,
    make_engine,
    make_read_engine,
)


class NotMigrated(RuntimeError):
    pass


@dataclass
class Services:
    """Everything a shell (web, API, CLI) may call."""

    ctx: Context
    auth: AuthService
    patients: PatientService
    audit_log: AuditLog
    dosing: DosingService
    mbc: MeasurementCare
    chair: ChairServices
    pk: PkService
    outcomes: OutcomesService
    accounts: AccountService
    lock: LockScreenService
    tokens: ApiTokenService
    webhooks: WebhookService

    @property
    def db(self) -> Database:
        return self.ctx.db

    @property
    def settings(self) -> Settings:
        return self.ctx.settings

    def close(self) -> None:
        self.ctx.db.dispose()


def open_database(settings: Settings, *, upgrade: bool = False) -> Database:
    engine = make_engine(settings.effective_database_url,
                         busy_timeout_ms=settings.sqlite_busy_timeout_ms)
    problems = check_durability(engine)
    if problems and not settings.allow_weak_durability:
        engine.dispose()
        raise DurabilityError(
            "; ".join(problems) + " (set KETACLINIC_ALLOW_WEAK_DURABILITY=true to start anyway)"
        )
    if upgrade:
        try:
            migrate.upgrade(engine, secret_key=settings.secret_key.get_secret_value())
        except migrate.MigrationRefused as exc:
            engine.dispose()
            raise NotMigrated(str(exc)) from exc
    # The replica is only read (analytics), through an engine that cannot write; its schema
    # and durability are its primary's.
    replica = (make_read_engine(settings.read_database_url,
                                busy_timeout_ms=settings.sqlite_busy_timeout_ms)
               if settings.read_database_url else None)
    return Database(engine, replica)


def build_services(
    settings: Settings, *, clock: Clock = utc_now, upgrade: bool = False,
    require_current_schema: bool = True, database: Database | None = None,
) -> Services:
    """Open the database and build the services; refuses an out-of-date schema.

    ``database``: a :class:`Database` already opened (``open_database``) for these settings'
    database, to build on instead of opening one. Its engine, and so the engine's cache of
    compiled SQL, outlives the services: ``close()`` only closes its pooled connections. The
    test suite builds every test's services on one per worker, so each statement is compiled
    once per worker rather than once per test.
    """
    settings.check_startup()
    if database is None:
        db = open_database(settings, upgrade=upgrade)
    elif upgrade:
        raise ValueError("upgrade=True opens the database itself; do not pass one")
    elif database.engine.url != make_url(settings.effective_database_url):
        raise ValueError("the database given is not the one the settings name")
    else:
        db = database
    if require_current_schema and not migrate.is_up_to_date(db.engine):
        db.dispose()
        raise NotMigrated("the database schema is not up to date; run `ketaclinic init` "
                          "(or `ketaclinic migrate`)")
    outcome_summary.install(db)  # derived outcome rows follow every write, same transaction
    if upgrade:
        outcome_summary.ensure_current(db, clock())
    ctx = Context(settings=settings, db=db, audit=AuditTrail(audit_key(settings)), clock=clock)
    auth = AuthService(ctx)
    return Services(ctx=ctx, auth=auth, patients=PatientService(ctx),
                    audit_log=AuditLog(ctx), dosing=DosingService(ctx),
                    mbc=MeasurementCare.build(ctx), chair=build_chair_services(ctx, auth),
                    pk=PkService(ctx), outcomes=OutcomesService(ctx),
                    accounts=AccountService(ctx, auth), lock=LockScreenService(ctx),
                    tokens=ApiTokenService(ctx, auth), webhooks=WebhookService(ctx))
