"""Migration 0002_list_row_updated_at: diagnoses, medications and allergies get ``updated_at``,
and a medication stopped before the upgrade gets the time of its stop from the amendment
history, so an incremental FHIR export after the upgrade still carries that stop."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from kctest import drop_pg_database, fresh_database_url, make_settings
from sqlalchemy import inspect, select, update

from ketaclinic.bootstrap import build_services
from ketaclinic.schemas import (
    AllergyCreate,
    DiagnosisCreate,
    MedicationCreate,
    MedicationStop,
    PatientCreate,
)
from ketaclinic.services.audit.trail import SYSTEM
from ketaclinic.services.clock import SteppingClock
from ketaclinic.store import migrate
from ketaclinic.store.db import make_engine
from ketaclinic.store.tables import (
    PatientAllergy,
    PatientAmendment,
    PatientDiagnosis,
    PatientMedication,
)

START = dt.datetime(2026, 11, 2, 9, 0, 0)
REVISION = "0002_list_row_updated_at"
TABLES = ("patient_diagnoses", "patient_medications", "patient_allergies")


@pytest.fixture
def url(backend: str, sqlite_folder: Path) -> Iterator[str]:
    url, handle = fresh_database_url(backend, sqlite_folder)
    yield url
    if handle is not None:
        drop_pg_database(handle)


def _clinic_with_a_stopped_medication(url: str) -> tuple[int, dt.datetime]:
    """A patient with a diagnosis, an allergy, a running and a stopped medication (written by
    today's services); the time of the stop."""
    clock = SteppingClock(START)
    svc = build_services(make_settings(url), clock=clock, upgrade=True)
    try:
        pid = svc.patients.create(SYSTEM, PatientCreate(
            mrn="MIG-1", family_name="Migrant", given_name="Mo", birth_date="1970-01-01",
            sex="male"))[0].id
        svc.patients.add_diagnosis(SYSTEM, pid, DiagnosisCreate(
            system="icd10", code="F33.2", display="Recurrent depressive disorder"))
        svc.patients.add_allergy(SYSTEM, pid, AllergyCreate(substance="penicillin"))
        for name in ("sertraline", "lorazepam"):
            svc.patients.add_medication(SYSTEM, pid, MedicationCreate(name=name))
        stopped = next(m for m in svc.patients.get(SYSTEM, pid).medications
                       if m["name"] == "sertraline")
        clock.advance(days=3)
        stop_at = clock()
        svc.patients.stop_medication(SYSTEM, pid, stopped["id"],
                                     MedicationStop(reason="completed"))
        clock.advance(days=1)
        svc.patients.add_medication(SYSTEM, pid, MedicationCreate(name="bupropion"))
        return pid, stop_at
    finally:
        svc.close()


def _updated(engine, model) -> list[tuple]:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(
            select(model.active, model.updated_at).order_by(model.id))]


def test_the_upgrade_adds_updated_at_and_dates_a_stop_made_before_it(url):
    _pid, stop_at = _clinic_with_a_stopped_medication(url)
    engine = make_engine(url)
    try:
        assert migrate.current_revision(engine) == migrate.head_revision(engine)
        assert [r[1] for r in _updated(engine, PatientMedication)] == [stop_at, None, None]
        # Back to the baseline (rows written before the revision), then the upgrade itself.
        command.downgrade(migrate.alembic_config(engine), migrate.BASELINE)
        with engine.connect() as conn:
            for table in TABLES:
                assert "updated_at" not in {c["name"] for c in inspect(conn).get_columns(table)}
        with engine.begin() as conn:  # the history as the services wrote a stop before it
            conn.execute(update(PatientAmendment).where(
                PatientAmendment.field == "medication",
                PatientAmendment.new_value.like("sertraline stopped%")).values(
                new_value="sertraline active=False"))
        migrate.upgrade(engine, REVISION)
        assert migrate.current_revision(engine) == REVISION
        meds = _updated(engine, PatientMedication)
        assert [bool(active) for active, _ in meds] == [False, True, True]
        assert [at for _, at in meds] == [stop_at, None, None]  # from the amendment history
        assert _updated(engine, PatientDiagnosis) == [(True, None)]
        assert _updated(engine, PatientAllergy) == [(True, None)]
    finally:
        engine.dispose()
