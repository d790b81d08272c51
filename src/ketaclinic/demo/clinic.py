"""A synthetic demo clinic: invented people with plausible histories. No real patient data."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from ketaclinic.bootstrap import Services
from ketaclinic.schemas import (
    DiagnosisCreate,
    MedicationCreate,
    PatientCreate,
    Sex,
    WeightCreate,
)
from ketaclinic.services.audit.trail import SYSTEM

DEMO_USERS = (
    ("admin", "Ada Admin (demo)", "admin", "demo-admin-pass"),
    ("prescriber", "Dr Priya Prescriber (demo)", "prescriber", "demo-prescriber-pass"),
    ("nurse", "Noah Nurse (demo)", "nurse", "demo-nurse-pass"),
    ("analyst", "Ana Analyst (demo)", "analyst", "demo-analyst-pass"),
)

GIVEN_F = ["Alma", "Bea", "Cora", "Dalia", "Edda", "Fenna", "Greta", "Hanne", "Ines", "Juna",
           "Kaja", "Lotte", "Mira", "Nele", "Odile", "Pia", "Rhea", "Sanne", "Tove", "Ulla",
           "Vera", "Wanda", "Xenia", "Yara", "Zora"]
GIVEN_M = ["Aron", "Bram", "Cas", "Dirk", "Emil", "Finn", "Gijs", "Hugo", "Ivo", "Joris",
           "Kees", "Lars", "Mats", "Nils", "Otto", "Piet", "Quin", "Rens", "Stijn", "Teun",
           "Ube", "Vince", "Wout", "Xander", "Yorick"]
FAMILY = ["Aalders", "Brink", "Claessen", "Dekkers", "Elzinga", "Feenstra", "Gerritsen",
          "Hoekstra", "IJzerman", "Jonkers", "Kuipers", "Lammers", "Mulder", "Noordhoff",
          "Oosterhuis", "Postma", "Quist", "Rietveld", "Schouten", "Terpstra", "Uiterwijk",
          "Verbeek", "Wijnands", "Ypma", "Zwart", "Bakema", "Hazeleger", "Knol", "Smits",
          "Vonk"]
DIAGNOSES = [
    ("F33.2", "Major depressive disorder, recurrent, severe without psychotic features"),
    ("F33.1", "Major depressive disorder, recurrent, moderate"),
    ("F32.2", "Major depressive disorder, single episode, severe without psychotic features"),
    ("F32.1", "Major depressive disorder, single episode, moderate"),
]
COMORBID = [("F41.1", "Generalized anxiety disorder"), ("F43.10", "Post-traumatic stress disorder"),
            ("I10", "Essential (primary) hypertension")]
ANTIDEPRESSANTS = [("Sertraline", "SSRI", 150), ("Escitalopram", "SSRI", 20),
                   ("Venlafaxine", "SNRI", 225), ("Duloxetine", "SNRI", 60),
                   ("Bupropion", "NDRI", 300), ("Mirtazapine", "NaSSA", 45),
                   ("Vortioxetine", "multimodal", 20)]
OTHER_MEDS = [("Lorazepam", "benzodiazepine", 2), ("Quetiapine", "antipsychotic", 150),
              ("Lamotrigine", "lamotrigine", 200), ("Lisinopril", "ACE inhibitor", 10),
              ("Methylphenidate", "stimulant", 36)]


@dataclass(frozen=True)
class DemoResult:
    created_users: int
    created_patients: int


def seed_demo(
    svc: Services, *, patients: int = 220, seed: int = 2026,
    progress: Callable[[int], None] | None = None,
) -> DemoResult:
    """Create demo users (if missing) and ``patients`` synthetic patients."""
    rng = random.Random(seed)
    users = _ensure_users(svc)
    today = svc.ctx.today()
    ids = []
    for i in range(patients):
        ids.append(_make_patient(svc, rng, i, today))
        if progress:
            progress(1)
    for seeder in area_seeders():
        seeder(svc, random.Random(seed + 1), ids, today)
    return DemoResult(users, patients)


Seeder = Callable[[Services, random.Random, list[int], dt.date], None]


def area_seeders() -> list[Seeder]:
    """Each area adds one line: courses and sessions first, then what builds on them."""
    from ketaclinic.demo.chair import seed_chair
    from ketaclinic.demo.dosing import seed_dosing
    from ketaclinic.demo.mbc import seed_mbc
    from ketaclinic.demo.outcomes import seed_outcomes

    # Courses, sessions and the ledger first; the others build on their sessions.
    seeders: list[Seeder] = [seed_chair, seed_dosing, seed_mbc, seed_outcomes]
    return seeders


def _ensure_users(svc: Services) -> int:
    existing = {u.username for u in svc.auth.list_users(SYSTEM)}
    made = 0
    for username, name, role, password in DEMO_USERS:
        if username not in existing:
            svc.auth.create_user(SYSTEM, username, name, role, password)
            made += 1
    return made


def _make_patient(svc: Services, rng: random.Random, i: int, today: dt.date) -> int:
    sexes: list[Sex] = ["female", "female", "male", "male", "other"]
    sex = rng.choice(sexes)
    given = rng.choice(GIVEN_F if sex == "female" else GIVEN_M if sex == "male" else
                       GIVEN_F + GIVEN_M)
    family = rng.choice(FAMILY)
    age = rng.randint(19, 78)
    birth = today - dt.timedelta(days=age * 365 + rng.randint(0, 364))
    weight = Decimal(rng.randint(520, 1150)) / 10
    data = PatientCreate(
        mrn=f"DEMO-{i + 1:05d}", family_name=family, given_name=given, birth_date=birth,
        sex=sex, phone=f"+1 555 01{rng.randint(0, 99):02d}",
        email=f"{given.lower()}.{family.lower()}@example.invalid",
        address=f"{rng.randint(1, 200)} Synthetic Lane, Demo Town",
        notes="Synthetic demo patient; not a real person.",
        weight=f"{weight} kg",
    )
    patient, _ = svc.patients.create(SYSTEM, data, idempotency_key=f"demo-{i}")
    for months_ago in (6, 3):
        drift = Decimal(rng.randint(-30, 30)) / 10
        svc.patients.add_weight(SYSTEM, patient.id, WeightCreate(
            weight=f"{weight + drift} kg", measured_on=today - dt.timedelta(days=30 * months_ago)))
    code, display = rng.choice(DIAGNOSES)
    onset = today - dt.timedelta(days=rng.randint(200, 3000))
    svc.patients.add_diagnosis(SYSTEM, patient.id, DiagnosisCreate(
        system="icd10", code=code, display=display, onset_on=onset))
    if rng.random() < 0.35:
        c_code, c_display = rng.choice(COMORBID)
        svc.patients.add_diagnosis(SYSTEM, patient.id, DiagnosisCreate(
            system="icd10", code=c_code, display=c_display))
    name, drug_class, dose = rng.choice(ANTIDEPRESSANTS)
    svc.patients.add_medication(SYSTEM, patient.id, MedicationCreate(
        name=name, drug_class=drug_class, daily_dose_mg=Decimal(dose),
        started_on=today - dt.timedelta(days=rng.randint(60, 400))))
    if rng.random() < 0.25:
        name, drug_class, dose = rng.choice(OTHER_MEDS)
        svc.patients.add_medication(SYSTEM, patient.id, MedicationCreate(
            name=name, drug_class=drug_class, daily_dose_mg=Decimal(dose)))
    return patient.id
