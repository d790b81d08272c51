"""Demo data for the outcomes area: a few relapse and screening events on seeded courses.

Runs after the areas that seed courses, sessions and assessments; does nothing when there are
none. Synthetic only. Each event gets the audit row a clinician's entry would have.
"""

from __future__ import annotations

import datetime as dt
import random

from sqlalchemy import func, select

from ketaclinic.bootstrap import Services
from ketaclinic.services.audit.trail import SYSTEM
from ketaclinic.store.tables_treatment import ClinicalEvent, TreatmentSession


def seed_outcomes(svc: Services, rng: random.Random, patient_ids: list[int],
                  today: dt.date) -> None:
    """Hospitalisations for about 4 % and urinary/cognition screens for about a third of the
    patients who received doses."""
    now = svc.ctx.clock()
    with svc.db.transaction() as s:
        rows = s.execute(select(TreatmentSession.patient_id, TreatmentSession.course_id,
                                func.min(TreatmentSession.dose_started_at))
                         .where(TreatmentSession.dose_started_at.is_not(None),
                                TreatmentSession.course_id.is_not(None))
                         .group_by(TreatmentSession.patient_id, TreatmentSession.course_id)
                         ).all()
        for patient_id, course_id, first in rows:
            if first is None:  # not returned: the query keeps dosed sessions only
                continue
            first_day = first.date()
            picks = []
            if rng.random() < 0.04:
                picks.append(("hospitalisation", first_day + dt.timedelta(
                    days=rng.randint(30, 150))))
            if rng.random() < 0.35:
                picks.append(("screen-urinary", first_day + dt.timedelta(
                    days=rng.randint(20, 80))))
            if rng.random() < 0.2:
                picks.append(("screen-cognition", first_day + dt.timedelta(
                    days=rng.randint(20, 120))))
            for kind, day in picks:
                if day > today:
                    continue
                s.add(ClinicalEvent(patient_id=patient_id, course_id=course_id, kind=kind,
                                    occurred_on=day, note="", recorded_at=now))
                svc.ctx.audit.record(s, SYSTEM, "clinical_event.record", at=now,
                                     patient_id=patient_id, detail=f"demo: {kind}")
