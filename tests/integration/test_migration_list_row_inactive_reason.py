"""Migration 0003_list_row_inactive_reason: diagnoses and allergies get ``inactive_reason``
(why a row was deactivated); rows written before it keep their values and read NULL."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from kctest import drop_pg_database, fresh_database_url, make_settings
from sqlalchemy import inspect, select

from ketaclinic.bootstrap import build_services
from ketaclinic.schemas import (
    AllergyCreate,
    DiagnosisCreate,
    DiagnosisDeactivate,
    PatientCreate,
)
from ketaclinic.services.audit.trail import SYSTEM
from ketaclinic.services.clock import SteppingClock
from ketaclinic.store import migrate
from ketaclinic.store.db import make_engine
from ketaclinic.store.tables import PatientAllergy, PatientDiagnosis

REVISION = "0003_list_row_inactive_reason"
BEFORE = "0002_list_row_updated_at"
TABLES = ("patient_diagnoses", "patient_allergies")


@pytest.fixture
def url(backend: str, sqlite_folder: Path) -> Iterator[str]:
    url, handle = fresh_database_url(backend, sqlite_folder)
    yield url
    if handle is not None:
        drop_pg_database(handle)


def _columns(engine, table: str) -> set[str]:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return {c["name"] for c in inspect(conn).get_columns(table)}


def test_the_upgrade_adds_inactive_reason_and_the_downgrade_removes_it(url):
    svc = build_services(make_settings(url), clock=SteppingClock(dt.datetime(2026, 11, 2, 9)),
                         upgrade=True)
    try:
        pid = svc.patients.create(SYSTEM, PatientCreate(
            mrn="MIG-3", family_name="Migrant", given_name="Mo", birth_date="1970-01-01",
            sex="male"))[0].id
        for code in ("F33.2", "F41.1"):
            svc.patients.add_diagnosis(SYSTEM, pid, DiagnosisCreate(code=code, display=code))
        svc.patients.add_allergy(SYSTEM, pid, AllergyCreate(substance="penicillin"))
        first = svc.patients.get(SYSTEM, pid).diagnoses[0]["id"]
        svc.patients.deactivate_diagnosis(SYSTEM, pid, first, DiagnosisDeactivate(
            reason="resolved"))
    finally:
        svc.close()
    engine = make_engine(url)
    try:
        assert migrate.current_revision(engine) == migrate.head_revision(engine)
        with engine.connect() as conn:
            assert [tuple(r) for r in conn.execute(select(
                PatientDiagnosis.active, PatientDiagnosis.inactive_reason).order_by(
                PatientDiagnosis.id))] == [(False, "resolved"), (True, None)]
        command.downgrade(migrate.alembic_config(engine), BEFORE)
        for table in TABLES:
            assert "inactive_reason" not in _columns(engine, table)
        migrate.upgrade(engine, REVISION)
        assert migrate.current_revision(engine) == REVISION
        with engine.connect() as conn:
            assert [tuple(r) for r in conn.execute(select(
                PatientDiagnosis.active, PatientDiagnosis.inactive_reason).order_by(
                PatientDiagnosis.id))] == [(False, None), (True, None)]
            assert [tuple(r) for r in conn.execute(select(
                PatientAllergy.active, PatientAllergy.inactive_reason))] == [(True, None)]
    finally:
        engine.dispose()
