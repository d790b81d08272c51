"""The dashboard's exposure figures agree with the pure core (clinical/exposure.summarise_exposure).

The dashboard answers most patients from the outcome summary's per-course dose totals and sums
dose by dose only for patients screened between two doses or dosed after today. Random cohorts
(seeded) exercise both paths: screens before, between and after the doses, doses after today,
doses without mg, cancelled sessions, two courses per patient. Both backends.
"""

from __future__ import annotations

import datetime as dt
import random
import statistics
import uuid
from decimal import Decimal

from ketaclinic.clinical.exposure import (
    DoseExposure,
    ScreeningRecord,
    load_screening_rules,
    summarise_exposure,
)
from ketaclinic.services.audit.trail import SYSTEM
from ketaclinic.services.outcomes.dashboard import DashboardFilters
from ketaclinic.store.tables import Patient
from ketaclinic.store.tables_treatment import ClinicalEvent, Course, TreatmentSession

T0 = dt.datetime(2026, 1, 5, 9, 0)


def _cohort(s, rng: random.Random, today: dt.date):  # type: ignore[no-untyped-def]
    doses, screens = [], []
    for _ in range(60):
        p = Patient(mrn=f"X-{uuid.uuid4().hex[:8]}", family_name="Expo", given_name="Sure",
                    search_name="sure expo", birth_date=dt.date(1980, 1, 1), sex="other",
                    created_at=T0, updated_at=T0)
        s.add(p)
        s.flush()
        # a quarter dosed every 3 days since about 10 weeks: screens between their doses are
        # recent, so only the mg given after them can make the screen due
        dense = rng.random() < 0.25
        first = today - dt.timedelta(days=rng.randint(60, 75) if dense else rng.randint(-5, 260))
        for k in range(1 if dense else rng.choice([1, 1, 2])):
            treatment = rng.choice(["ketamine-iv", "esketamine"])
            start = first + dt.timedelta(days=100 * k)
            c = Course(patient_id=p.id, template_id="x", treatment=treatment, status="active",
                       start_date=start, created_at=T0, updated_at=T0)
            s.add(c)
            s.flush()
            for n in range(20 if dense else rng.randint(1, 14)):
                when = dt.datetime.combine(start + dt.timedelta(days=(3 if dense else 5) * n),
                                           dt.time(10))
                mg = None if rng.random() < 0.1 else Decimal(rng.choice([56, 84, 112, 35.5]))
                status = "cancelled" if rng.random() < 0.1 else "discharged"
                s.add(TreatmentSession(patient_id=p.id, course_id=c.id, number=n + 1,
                                       phase="induction", treatment=treatment, status=status,
                                       planned_date=when.date(), dose_started_at=when,
                                       dose_mg=mg, route="iv", created_at=T0, updated_at=T0))
                if status == "discharged" and mg is not None:
                    doses.append(DoseExposure(str(p.id), "esketamine" if treatment ==
                                              "esketamine" else "ketamine", float(mg),
                                              when.date()))
        for kind in ("urinary", "cognition"):
            for _ in range(rng.choice([0, 0, 1, 2])):
                day = first + dt.timedelta(days=rng.randint(1, 20) if dense
                                           else rng.randint(-30, 250))
                s.add(ClinicalEvent(patient_id=p.id, kind=f"screen-{kind}", occurred_on=day,
                                    recorded_at=T0))
                screens.append(ScreeningRecord(str(p.id), kind, day))
    return doses, screens


def test_exposure_figures_match_the_pure_core_on_random_cohorts(services):
    today = services.ctx.clock().date()
    rng = random.Random(5)
    with services.db.transaction() as s:
        doses, screens = _cohort(s, rng, today)
    expected = summarise_exposure(doses, screens, today)
    got = services.outcomes.dashboard(SYSTEM, DashboardFilters()).exposure
    totals = sorted(e.total_mg for e in expected)
    assert got.patients == len(expected)
    assert got.max_mg == max(totals)
    assert got.median_mg == statistics.median(totals)
    due = {r.kind: sum(1 for e in expected if f"{r.kind}_screen" in " ".join(
        f.rule for f in e.findings if f.level.value != "ok")) for r in load_screening_rules()}
    assert got.due == due
    assert 0 < due["urinary"] < len(expected)  # the cohort exercises both outcomes
    assert 0 < due["cognition"] < len(expected)


def test_the_median_of_grouped_totals_is_the_median_of_the_totals():
    from ketaclinic.services.outcomes.dashboard import median_of_counts

    rng = random.Random(2)
    for _ in range(200):
        values = [rng.choice([56.0, 84.0, 112.5, 28.0, 300.25]) for _ in range(rng.randint(1, 9))]
        counts = sorted((v, values.count(v)) for v in set(values))
        assert median_of_counts(counts) == statistics.median(values)
