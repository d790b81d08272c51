"""KETACLINIC_READ_DATABASE_URL: the dashboard's analytic reads go to a second, real database
(the "replica"); writes, and the audit row of the dashboard view, stay on the primary.

The replica here holds a cohort the primary does not, so the dashboard can only show it if the
read really went there; and the audit row must be found in the primary and not in the replica.
"""

from __future__ import annotations

import datetime as dt

import pytest
from fastapi.testclient import TestClient
from kcoutcomes import build_hand_cohort
from kctest import drop_pg_database, fresh_database_url, make_settings
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from ketaclinic.bootstrap import build_services
from ketaclinic.schemas import PatientCreate
from ketaclinic.services.accounts.permissions import Perm
from ketaclinic.services.audit.trail import SYSTEM
from ketaclinic.services.outcomes.dashboard import DashboardFilters
from ketaclinic.store.tables import AuditEvent, Patient
from ketaclinic.web.app import create_app


@pytest.fixture
def replica(backend, sqlite_folder, clock):
    """A second database of the same kind, migrated, holding the hand cohort."""
    url, handle = fresh_database_url(backend, sqlite_folder)
    svc = build_services(make_settings(url), clock=clock, upgrade=True)
    with svc.db.transaction() as s:
        build_hand_cohort(s, family_prefix="Replicaonly")
    yield svc, url
    svc.close()
    if handle is not None:
        drop_pg_database(handle)


def _count(db, stmt) -> int:
    with db.transaction() as s:
        return int(s.execute(stmt).scalar_one())


def _views(db) -> int:
    return _count(db, select(func.count(AuditEvent.id)).where(
        AuditEvent.action == "dashboard.view"))


def test_the_dashboard_reads_the_replica_and_audits_on_the_primary(
        services, users, replica, database_url, clock):
    replica_svc, replica_url = replica
    analyst = users["analyst"].actor
    # The primary alone has no courses: its dashboard has no outcome rows.
    alone = services.outcomes.dashboard(analyst)
    assert sum(r.courses for r in alone.outcomes) == 0 and "ketamine-iv" not in alone.treatments
    routed = build_services(make_settings(database_url, read_database_url=replica_url),
                            clock=clock)
    try:
        assert routed.db.has_replica
        before_primary, before_replica = _views(services.db), _views(replica_svc.db)
        dash = routed.outcomes.dashboard(analyst, DashboardFilters())
        # Only the replica has the cohort: the dashboard shows it.
        assert {"ketamine-iv", "esketamine"} <= set(dash.treatments)
        assert sum(r.courses for r in dash.outcomes) > 0
        # The audit row went to the primary, none to the replica.
        assert _views(services.db) == before_primary + 1
        assert _views(replica_svc.db) == before_replica
        # Writes go to the primary, never the replica.
        routed.patients.create(SYSTEM, PatientCreate(
            mrn="RR-1", family_name="Primaryonly", given_name="Pat", birth_date="1980-01-01",
            sex="female"))
        where = select(func.count(Patient.id)).where(Patient.family_name == "Primaryonly")
        assert _count(services.db, where) == 1 and _count(replica_svc.db, where) == 0
    finally:
        routed.close()


def test_without_the_setting_the_dashboard_reads_the_primary(services, users):
    assert not services.db.has_replica
    assert services.db.read_engine is services.db.engine
    with services.db.transaction() as s:
        build_hand_cohort(s)
    dash = services.outcomes.dashboard(users["analyst"].actor)
    assert {"ketamine-iv", "esketamine"} <= set(dash.treatments)


def test_a_unit_of_work_reads_analytics_on_the_replica_and_audits_on_the_primary(
        services, users, replica, database_url, clock):
    """``uow.analytics()`` is the replica's connection; the unit's own audit row, written when
    the unit is entered, lands on the primary."""
    replica_svc, replica_url = replica
    routed = build_services(make_settings(database_url, read_database_url=replica_url),
                            clock=clock)
    cohort = select(func.count(Patient.id)).where(Patient.family_name.like("Replicaonly%"))
    probes = select(func.count(AuditEvent.id)).where(AuditEvent.action == "uow.analytics")
    try:
        work = routed.ctx.unit_of_work(users["analyst"].actor, "uow.analytics",
                                       perm=Perm.DASHBOARD)
        with work.analytics() as conn:
            assert int(conn.execute(cohort).scalar_one()) > 0  # only the replica has them
        assert _count(services.db, cohort) == 0
        with work as uow:
            uow.audit(detail="an analytic read")
        assert (_count(services.db, probes), _count(replica_svc.db, probes)) == (1, 0)
    finally:
        routed.close()


def _missing_database_url(backend, database_url, tmp_path) -> str:  # type: ignore[no-untyped-def]
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'no-replica-here.sqlite3'}"
    return make_url(database_url).set(database="kc_no_such_replica").render_as_string(
        hide_password=False)


def test_the_replica_is_opened_read_only_so_a_write_through_it_is_refused(
        services, replica, database_url, clock):
    """SQLite opens the replica file with mode=ro; PostgreSQL marks its transactions READ
    ONLY. Either way nothing can be written where only the dashboard's reads belong."""
    replica_svc, replica_url = replica
    routed = build_services(make_settings(database_url, read_database_url=replica_url),
                            clock=clock)
    where = select(func.count(Patient.id)).where(Patient.family_name == "Neverwritten")
    try:
        with pytest.raises(DBAPIError, match="read-?only"):
            with routed.db.analytics() as conn:
                conn.execute(Patient.__table__.insert().values(
                    mrn="RO-1", family_name="Neverwritten", given_name="Pat",
                    search_name="pat neverwritten", birth_date=dt.date(1980, 1, 1), sex="female",
                    created_at=clock(), updated_at=clock(), version=1))
                conn.commit()
        with routed.db.analytics() as conn:  # and it still reads
            assert int(conn.execute(select(func.count(Patient.id))).scalar_one()) > 0
        assert _count(replica_svc.db, where) == 0
    finally:
        routed.close()


def test_readyz_is_not_ready_while_the_replica_cannot_be_read(
        services, users, backend, database_url, tmp_path, clock):
    missing = _missing_database_url(backend, database_url, tmp_path)
    routed = build_services(make_settings(database_url, read_database_url=missing), clock=clock)
    try:
        with TestClient(create_app(routed), raise_server_exceptions=False) as c:
            r = c.get("/readyz")
        assert r.status_code == 503, r.text
        [problem] = r.json()["problems"]
        assert problem.startswith("read replica cannot be read (")
        assert "no_such" not in problem and "no-replica" not in problem  # the type, no URL
    finally:
        routed.close()
    if backend == "sqlite":  # a read-only open never creates an empty database instead
        assert not (tmp_path / "no-replica-here.sqlite3").exists()
    routed = build_services(make_settings(database_url, read_database_url=database_url),
                            clock=clock)
    try:
        with TestClient(create_app(routed), raise_server_exceptions=False) as c:
            assert c.get("/readyz").json() == {"status": "ok"}
    finally:
        routed.close()
