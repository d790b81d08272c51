"""The SQL relapse pass agrees with the pure core (clinical/outcomes.evaluate_course).

Relapse is counted from the response assessment at the end of induction (issue 13): the SQL's
relapse origin, relapse flags and durations must equal the core's on every course.

Random cohorts (seeded) of courses with random PHQ-9 trajectories, visit spacing of 1-20 days
and occasional hospitalisations are written to the database; for every course the pure core is
run on the same values, and the dashboard's responders, relapse flags and durations must match.
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from decimal import Decimal

from ketaclinic.clinical.outcomes import (
    Assessment,
    ClinicalEvent,
    default_criteria,
    evaluate_course,
)
from ketaclinic.clinical.survival import time_to_relapse
from ketaclinic.services.outcomes.dashboard import DashboardFilters, relapse_subjects
from ketaclinic.services.outcomes.dashboard_sql import Dialect
from ketaclinic.store.tables import Patient
from ketaclinic.store.tables_treatment import Assessment as ARow
from ketaclinic.store.tables_treatment import ClinicalEvent as ERow
from ketaclinic.store.tables_treatment import Course, TreatmentSession

T0 = dt.datetime(2026, 1, 5, 9, 0)


def _insert_random_cohort(s, rng, n_courses):
    expected = {}
    crit = default_criteria("phq9")
    for _ in range(n_courses):
        p = Patient(mrn=f"R-{uuid.uuid4().hex[:8]}", family_name="Rand", given_name="Om",
                    search_name="om rand", birth_date=dt.date(1980, 1, 1), sex="other",
                    created_at=T0, updated_at=T0)
        s.add(p)
        s.flush()
        start = T0 + dt.timedelta(days=rng.randrange(100))
        c = Course(patient_id=p.id, template_id="r", treatment="ketamine-iv", status="active",
                   start_date=start.date(), created_at=T0, updated_at=T0)
        s.add(c)
        s.flush()
        s.add(TreatmentSession(patient_id=p.id, course_id=c.id, treatment="ketamine-iv",
                               status="discharged", planned_date=start.date(), phase="induction",
                               dose_started_at=start, dose_mg=Decimal(35), route="iv",
                               created_at=T0, updated_at=T0))
        base = rng.randint(10, 27)
        times = [start - dt.timedelta(hours=2)]
        t = start
        for _ in range(rng.randint(1, 12)):
            t = t + dt.timedelta(days=rng.randint(1, 20), minutes=rng.randrange(600))
            times.append(t)
        scores = [base] + [rng.randint(0, 27) for _ in times[1:]]
        for when, total in zip(times, scores, strict=True):
            s.add(ARow(patient_id=p.id, course_id=c.id, instrument_id="phq9",
                       administered_at=when, total=Decimal(total), created_at=when))
        events = []
        if rng.random() < 0.3:
            day = (start + dt.timedelta(days=rng.randint(1, 120))).date()
            kind = rng.choice(["hospitalisation", "suicide-attempt", "fall"])
            s.add(ERow(patient_id=p.id, course_id=c.id, kind=kind, occurred_on=day,
                       recorded_at=T0))
            events.append(ClinicalEvent(day, {"hospitalisation": "hospitalisation_for_depression",
                                              "suicide-attempt": "suicide_attempt"}.get(kind,
                                                                                         kind)))
        # one induction dose, none pending: the end of induction is the first dose
        out = evaluate_course([Assessment(w, "phq9", float(v)) for w, v in zip(
            times, scores, strict=True)], [start], crit, events, end_of_induction=start)
        followed = time_to_relapse(out)
        if followed is not None:
            expected[c.id] = followed
    return expected


def test_sql_relapse_matches_the_pure_core_on_random_cohorts(services):
    rng = random.Random(11)
    with services.db.transaction() as s:
        expected = _insert_random_cohort(s, rng, 120)
    with services.db.engine.connect() as conn:
        got = {cid: (int(sub.duration_days), sub.relapsed) for cid, sub in relapse_subjects(
            conn, Dialect(services.db.dialect), DashboardFilters(), default_criteria("phq9"))}
    assert got == expected
    assert sum(r for _d, r in expected.values()) >= 5  # the cohort exercises relapse
