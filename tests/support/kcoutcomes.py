"""A small hand-computed outcomes cohort written straight into the shared tables.

Imported as `kcoutcomes` by the outcomes tests (spec, integration, browser). PHQ-9 throughout;
day 0 = first dose at 09:00 UTC on 2026-01-05. The expected counts are worked out by hand in
tests/spec/test_outcomes_dashboard_cohort.py.

Course A (ketamine-iv): baseline 20 (day -1). Induction doses days 0,2,4,7,9,11 (all given →
  end of induction = day 11). Scores: d1 12, d12 8, d30 4, d40 15, d47 16, d91 14.
Course B (esketamine): scores 30 (day -2) and 28 (day 0, 08:00 → baseline 28). Induction doses
  days 0,3,7,10 (end of induction day 10). Scores: d1 13, d11 3, d30 5.
Course C (ketamine-iv): baseline 18 (day -1). Doses days 0,2; 4 induction sessions still
  planned (end of induction not reached). Scores: d1 9, d30 17. Event: hospitalisation day 20.
Course D (ketamine-iv): no baseline (first score after the first dose) → not in the table.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

from sqlalchemy.orm import Session

from ketaclinic.store.tables import Patient, PatientDiagnosis
from ketaclinic.store.tables_treatment import Assessment, ClinicalEvent, Course, TreatmentSession

T0 = dt.datetime(2026, 1, 5, 9, 0, 0)


def at(day: float, hour: int = 9) -> dt.datetime:
    return dt.datetime(2026, 1, 5, hour, 0, 0) + dt.timedelta(days=day)


def _patient(s: Session, tag: str, family: str, born: dt.date) -> Patient:
    p = Patient(mrn=f"{tag}-{uuid.uuid4().hex[:6]}", family_name=family, given_name="Hand",
                search_name=f"hand {family}".lower(), birth_date=born, sex="female",
                phone="+1 555 0100", email="hand@example.invalid", address="1 Test Lane",
                notes="free text that must never be exported", created_at=T0, updated_at=T0)
    s.add(p)
    s.flush()
    return p


def _course(s: Session, p: Patient, treatment: str, created_by: int | None,
            psychotherapy: bool) -> Course:
    c = Course(patient_id=p.id, template_id="hand", treatment=treatment, status="active",
               start_date=(T0 - dt.timedelta(days=3)).date(), psychotherapy=psychotherapy,
               concurrent_antidepressant=True, created_by=created_by, created_at=T0,
               updated_at=T0)
    s.add(c)
    s.flush()
    return c


def _doses(s: Session, c: Course, days: list[int], planned: int = 0,
           mg: float = 40.0) -> None:
    route = "nasal" if c.treatment == "esketamine" else "iv"
    for i, d in enumerate(days):
        s.add(TreatmentSession(patient_id=c.patient_id, course_id=c.id, number=i + 1,
                               phase="induction", treatment=c.treatment, status="discharged",
                               planned_date=at(d).date(), dose_mg=Decimal(str(mg)), route=route,
                               dose_started_at=at(d), dose_ended_at=at(d) + dt.timedelta(
                                   minutes=40), created_at=T0, updated_at=T0))
    for j in range(planned):
        s.add(TreatmentSession(patient_id=c.patient_id, course_id=c.id,
                               number=len(days) + j + 1, phase="induction",
                               treatment=c.treatment, status="planned",
                               planned_date=at(60 + j).date(), route=route, created_at=T0,
                               updated_at=T0))


def _scores(s: Session, c: Course, scores: list[tuple[float, float]], hour: int = 9,
            link: bool = True) -> None:
    for day, total in scores:
        when = at(day, hour)
        s.add(Assessment(patient_id=c.patient_id, course_id=c.id if link else None,
                         instrument_id="phq9", administered_at=when, total=Decimal(str(total)),
                         source="self-report", created_at=when))


def build_hand_cohort(s: Session, created_by: int | None = None,
                      family_prefix: str = "Handcohort") -> dict[str, int]:
    """Insert courses A–D; returns {"A": patient_id, ...}."""
    ids = {}
    pa = _patient(s, "HA", f"{family_prefix}A", dt.date(1980, 3, 1))
    ca = _course(s, pa, "ketamine-iv", created_by, psychotherapy=True)
    _doses(s, ca, [0, 2, 4, 7, 9, 11])
    _scores(s, ca, [(-1, 20), (1, 12), (12, 8), (30, 4), (40, 15), (47, 16), (91, 14)])
    s.add(PatientDiagnosis(patient_id=pa.id, system="icd10", code="F41.1",
                           display="Generalized anxiety disorder", active=True, recorded_at=T0))
    ids["A"] = pa.id

    pb = _patient(s, "HB", f"{family_prefix}B", dt.date(1950, 6, 1))
    cb = _course(s, pb, "esketamine", created_by, psychotherapy=False)
    _doses(s, cb, [0, 3, 7, 10], mg=56.0)
    _scores(s, cb, [(-2, 30)])
    _scores(s, cb, [(0, 28)], hour=8, link=False)  # unlinked pre-dose score: still the baseline
    _scores(s, cb, [(1, 13), (11, 3), (30, 5)])
    ids["B"] = pb.id

    pc = _patient(s, "HC", f"{family_prefix}C", dt.date(1990, 1, 1))
    cc = _course(s, pc, "ketamine-iv", created_by, psychotherapy=False)
    _doses(s, cc, [0, 2], planned=4)
    _scores(s, cc, [(-1, 18), (1, 9), (30, 17)])
    s.add(ClinicalEvent(patient_id=pc.id, course_id=cc.id, kind="hospitalisation",
                        occurred_on=at(20).date(), note="synthetic", recorded_at=at(20)))
    ids["C"] = pc.id

    pd = _patient(s, "HD", f"{family_prefix}D", dt.date(1970, 1, 1))
    cd = _course(s, pd, "ketamine-iv", created_by, psychotherapy=False)
    _doses(s, cd, [0, 2, 4])
    _scores(s, cd, [(1, 10), (30, 4)])
    ids["D"] = pd.id
    s.flush()
    return ids
