"""The demo seeder for rating scales works from the database, in either seeding order."""

from __future__ import annotations

import datetime as dt
import random

from sqlalchemy import func, select

from ketaclinic.demo.mbc import seed_mbc
from ketaclinic.schemas import PatientCreate
from ketaclinic.services.audit.trail import SYSTEM
from ketaclinic.services.outcomes.course_outcomes import course_summaries
from ketaclinic.store.tables_treatment import Assessment, Course, TreatmentSession


def patients(services, n: int) -> list[int]:
    return [services.patients.create(SYSTEM, PatientCreate(
        mrn=f"D-{i}", family_name="Demo", given_name=f"P{i}", birth_date=dt.date(1975, 1, 1),
        sex="other"))[0].id for i in range(n)]


def test_without_courses_the_seeder_makes_them_and_scores_start_before_the_first_dose(services,
                                                                                       clock):
    ids = patients(services, 12)
    seed_mbc(services, random.Random(7), ids, clock.now.date())
    with services.db.transaction() as s:
        assert s.execute(select(func.count(Course.id))).scalar_one() >= 5
        summaries = [c for pid in ids for c in course_summaries(s, pid, clock.now)]
    started = [c for c in summaries if c.dose_times]
    assert started and all(c.outcome.baseline is not None for c in started)


def test_with_existing_courses_the_seeder_creates_none_and_scores_the_existing_sessions(
        services, clock):
    ids = patients(services, 4)
    now = clock.now
    with services.db.transaction() as s:
        c = Course(patient_id=ids[0], template_id="iv_ketamine_induction",
                   treatment="ketamine-iv", start_date=(now - dt.timedelta(days=30)).date(),
                   created_at=now, updated_at=now)
        s.add(c)
        s.flush()
        for n, d in enumerate((30, 28, 26, 23, 21, 19), 1):
            at = now - dt.timedelta(days=d)
            s.add(TreatmentSession(patient_id=ids[0], course_id=c.id, number=n,
                                   treatment="ketamine-iv", status="discharged",
                                   planned_date=at.date(), dose_started_at=at,
                                   created_at=now, updated_at=now))
    seed_mbc(services, random.Random(7), ids, now.date())
    with services.db.transaction() as s:
        assert s.execute(select(func.count(Course.id))).scalar_one() == 1
        per_patient = dict(s.execute(select(Assessment.patient_id, func.count(Assessment.id))
                                     .group_by(Assessment.patient_id)).all())
    assert set(per_patient) == {ids[0]} and per_patient[ids[0]] >= 8
