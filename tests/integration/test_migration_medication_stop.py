"""Migration 0004_medication_stop: medications get ``stopped_on``, ``stop_reason`` and
``stop_note``; a medication stopped before it keeps its stop and reads NULL in all three
("not recorded": nobody knows when or why), a running one NULL too."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from kctest import drop_pg_database, fresh_database_url, make_settings
from sqlalchemy import inspect, select

from ketaclinic.bootstrap import build_services
from ketaclinic.schemas import MedicationCreate, MedicationStop, PatientCreate
from ketaclinic.services.audit.trail import SYSTEM
from ketaclinic.services.clock import SteppingClock
from ketaclinic.store import migrate
from ketaclinic.store.db import make_engine
from ketaclinic.store.tables import PatientMedication

REVISION = "0004_medication_stop"
BEFORE = "0003_list_row_inactive_reason"
COLUMNS = {"stopped_on", "stop_reason", "stop_note"}


@pytest.fixture
def url(backend: str, tmp_path: Path) -> Iterator[str]:
    url, handle = fresh_database_url(backend, tmp_path)
    yield url
    if handle is not None:
        drop_pg_database(handle)


def _stops(engine) -> list[tuple]:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(
            PatientMedication.active, PatientMedication.stopped_on, PatientMedication.stop_reason,
            PatientMedication.stop_note).order_by(PatientMedication.id))]


def test_the_upgrade_adds_the_stop_columns_and_an_earlier_stop_reads_not_recorded(url):
    svc = build_services(make_settings(url), clock=SteppingClock(dt.datetime(2026, 11, 2, 9)),
                         upgrade=True)
    try:
        pid = svc.patients.create(SYSTEM, PatientCreate(
            mrn="MIG-4", family_name="Migrant", given_name="Mo", birth_date="1970-01-01",
            sex="male"))[0].id
        for name in ("sertraline", "lorazepam"):
            svc.patients.add_medication(SYSTEM, pid, MedicationCreate(name=name))
        first = svc.patients.get(SYSTEM, pid).medications[0]["id"]
        svc.patients.stop_medication(SYSTEM, pid, first, MedicationStop(
            reason="adverse-effect", note="rash"))
    finally:
        svc.close()
    engine = make_engine(url)
    try:
        assert migrate.current_revision(engine) == migrate.head_revision(engine)
        assert _stops(engine) == [(False, dt.date(2026, 11, 2), "adverse-effect", "rash"),
                                  (True, None, None, None)]
        command.downgrade(migrate.alembic_config(engine), BEFORE)
        with engine.connect() as conn:
            names = {c["name"] for c in inspect(conn).get_columns("patient_medications")}
        assert not names & COLUMNS and "active" in names
        migrate.upgrade(engine, REVISION)
        assert migrate.current_revision(engine) == REVISION
        assert _stops(engine) == [(False, None, None, None), (True, None, None, None)]
    finally:
        engine.dispose()
