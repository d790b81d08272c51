"""The dosing demo seeder works from the sessions in the database (or screens a subset)."""

from __future__ import annotations

import datetime as dt
import random

from sqlalchemy import func, select

from ketaclinic.demo.dosing import seed_dosing
from ketaclinic.schemas import DiagnosisCreate, PatientCreate
from ketaclinic.services.audit.trail import SYSTEM
from ketaclinic.store.tables_dosing import DoseOrder, Screening
from ketaclinic.store.tables_treatment import TreatmentSession


def _patients(services, n: int) -> list[int]:  # type: ignore[no-untyped-def]
    ids = []
    for i in range(n):
        p, _ = services.patients.create(SYSTEM, PatientCreate(
            mrn=f"DEMO-{i}", family_name="Demo", given_name="Pat", sex="male",
            birth_date=dt.date(1970 + i, 1, 1), weight=f"{70 + i} kg"))
        services.patients.add_diagnosis(SYSTEM, p.id, DiagnosisCreate(code="F33.1",
                                                                      display="MDD"))
        ids.append(p.id)
    return ids


def test_patients_with_sessions_get_screenings_and_linked_dose_orders(services, users, clock):
    ids = _patients(services, 3)
    now = clock()
    with services.db.transaction() as s:
        for n in range(1, 5):
            s.add(TreatmentSession(patient_id=ids[0], number=n, phase="induction",
                                   treatment="esketamine", route="nasal", status="discharged",
                                   planned_date=now.date() - dt.timedelta(days=10 - n),
                                   created_at=now, updated_at=now))
            s.add(TreatmentSession(patient_id=ids[1], number=n, treatment="ketamine-iv",
                                   route="iv", status="discharged",
                                   planned_date=now.date() - dt.timedelta(days=10 - n),
                                   created_at=now, updated_at=now))
    seed_dosing(services, random.Random(3), ids, now.date())
    with services.db.transaction() as s:
        screened = set(s.execute(select(Screening.patient_id)).scalars())
        assert screened == {ids[0], ids[1]}
        orders = s.execute(select(DoseOrder)).scalars().all()
        assert {o.route for o in orders} == {"intranasal", "iv"}
        linked = s.execute(select(func.count()).select_from(TreatmentSession).where(
            TreatmentSession.dose_order_id.is_not(None))).scalar_one()
        assert linked == len(orders) >= 4


def test_without_sessions_a_subset_is_screened(services, users, clock):
    ids = _patients(services, 4)
    seed_dosing(services, random.Random(1), ids, clock().date())
    with services.db.transaction() as s:
        assert s.execute(select(func.count()).select_from(Screening)).scalar_one() == 4
