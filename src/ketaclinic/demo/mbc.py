"""Synthetic rating-scale histories for the demo clinic (runs after the course/session seeder).

Targets (protocols.md §10, evidence for demo data): an IV series responds in about 60–70 % of
patients (Murrough 2013: 70.8 %; Phillips 2019: 59 %) and responders relapse with a median of
about 18 days after the last infusion (Murrough 2013); esketamine responds by day 28 in about
55–60 % (TRANSFORM pooled 58.7 %) and, on maintenance, relapses far less (SUSTAIN-1). Scores are
generated as item answers and scored by the clinical core, so every stored total is exact.

Works from the database: patients that already have treatment sessions get scores around
their doses. Only when no demo patient has a course yet (the course seeder did not run) does it
create a course with sessions for most patients itself.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import random
from decimal import Decimal

from sqlalchemy import select

from ketaclinic.bootstrap import Services
from ketaclinic.clinical.course_scores import course_dose_times
from ketaclinic.clinical.instruments import ScoreResult, load_bundled, score_answers
from ketaclinic.services.audit.trail import SYSTEM
from ketaclinic.store.tables_mbc import ClinicalAlert, ReminderSchedule
from ketaclinic.store.tables_treatment import Assessment, ClinicalEvent, Course, TreatmentSession

P_RESPONSE = {"iv": 0.65, "esketamine": 0.58}
# Latent relapse onset; with visits 5–7 days apart and the two-consecutive-scores rule the
# detected relapse lands about a week later, near the published median of 18 days.
RELAPSE_ONSET_MEDIAN_DAYS_IV = 7.0
P_RELAPSE = {"iv": 0.7, "esketamine": 0.3}
NOTES = ("Reviewed at next visit; no current plan or intent (demo)",
         "Phoned patient; safety plan reviewed (demo)",
         "Discussed with prescriber; C-SSRS screener negative (demo)")


def seed_mbc(svc: Services, rng: random.Random, patient_ids: list[int], today: dt.date) -> None:
    """Months of PHQ-9 (and QIDS-SR16 or MADRS for some) around each demo patient's doses."""
    now = svc.ctx.clock()
    with svc.db.transaction() as s:
        has_course = set(s.execute(select(Course.patient_id).where(
            Course.patient_id.in_(patient_ids))).scalars())
        if not has_course:
            for pid in patient_ids:
                if rng.random() < 0.7:
                    _make_course(s, rng, pid, today, now)
        courses = list(s.execute(select(Course).where(Course.patient_id.in_(patient_ids))
                                 .order_by(Course.patient_id, Course.start_date)).scalars())
        sessions = list(s.execute(select(TreatmentSession).where(
            TreatmentSession.patient_id.in_(patient_ids))).scalars())
    by_course: dict[int, list[TreatmentSession]] = {}
    for ts in sessions:
        by_course.setdefault(ts.course_id or 0, []).append(ts)
    for chunk in _chunks(courses, 40):
        with svc.db.transaction() as s:
            for course in chunk:
                doses = course_dose_times(by_course.get(course.id, []), today)
                if doses:
                    _seed_course(svc, s, rng, course, doses, now)


def _chunks(items: list, n: int) -> list[list]:
    return [items[i:i + n] for i in range(0, len(items), n)]


def _make_course(s, rng: random.Random, pid: int, today: dt.date, now: dt.datetime) -> None:
    esk = rng.random() < 0.35
    start = today - dt.timedelta(days=rng.randint(10, 200))
    while start.weekday() > 4:
        start += dt.timedelta(days=1)
    if esk:
        offsets = [0, 3, 7, 10, 14, 17, 21, 24, 28, 35, 42, 49]
    else:
        offsets = [0, 2, 4, 7, 9, 11]
    dates = [start + dt.timedelta(days=o) for o in offsets]
    course = Course(patient_id=pid, template_id="esketamine_trd" if esk else
                    "iv_ketamine_induction", treatment="esketamine" if esk else "ketamine-iv",
                    status="completed" if dates[-1] < today else "active", start_date=start,
                    end_date=dates[-1] if dates[-1] < today else None,
                    notes="Synthetic demo course.", created_at=now, updated_at=now)
    s.add(course)
    s.flush()
    for n, day in enumerate(dates, 1):
        past = day < today
        at = dt.datetime(day.year, day.month, day.day, 10, rng.choice((0, 15, 30)))
        s.add(TreatmentSession(
            patient_id=pid, course_id=course.id, number=n,
            phase="induction" if (not esk or n <= 8) else "optimisation",
            treatment=course.treatment, status="discharged" if past else "booked",
            planned_date=day, scheduled_start=at, scheduled_minutes=120 if esk else 90,
            dose_mg=Decimal(rng.choice((56, 84)) if esk else rng.randint(30, 60)),
            route="nasal" if esk else "iv", dose_started_at=at if past else None,
            dose_ended_at=at + dt.timedelta(minutes=40) if past else None,
            discharged_at=at + dt.timedelta(minutes=130 if esk else 100) if past else None,
            created_at=now, updated_at=now))


def _as_dt(v: dt.datetime | dt.date) -> dt.datetime:
    return v if isinstance(v, dt.datetime) else dt.datetime(v.year, v.month, v.day, 10)


class _Course:
    """The latent course of one patient: a fraction of baseline remaining over time."""

    def __init__(self, rng: random.Random, kind: str, first: dt.datetime, last: dt.datetime):
        self.rng = rng
        self.first, self.last = first, last
        self.responder = rng.random() < P_RESPONSE[kind]
        self.tau_days = rng.uniform(2, 6) if kind == "iv" else rng.uniform(4, 9)
        self.floor = rng.uniform(0.12, 0.38) if self.responder else rng.uniform(0.65, 0.95)
        # The rapid effect of the first dose: a dip within hours that fades over days unless
        # the series builds on it (roughly half respond 24 h after one IV infusion; less with
        # the first esketamine session). Synthetic, shaped after protocols.md section 10.
        lo, hi = ((0.35, 0.8) if self.responder else (0.0, 0.55)) if kind == "iv" else (
            (0.2, 0.6) if self.responder else (0.0, 0.35))
        self.acute = rng.uniform(lo, hi)
        self.relapse_at = None
        if self.responder and rng.random() < P_RELAPSE[kind]:
            if kind == "iv":
                days = RELAPSE_ONSET_MEDIAN_DAYS_IV * math.exp(rng.gauss(0, 0.55))
            else:
                days = rng.uniform(30, 200)
            self.relapse_at = last + dt.timedelta(days=days)

    def fraction(self, at: dt.datetime) -> float:
        if at <= self.first:
            return 1.0
        t = (at - self.first).total_seconds() / 86400
        f = self.floor + (1 - self.floor) * math.exp(-t / self.tau_days)
        if t >= 2 / 24:
            f = min(f, 1 - self.acute * math.exp(-max(0.0, t - 1) / 3))
        if self.relapse_at is not None and at > self.relapse_at:
            back = min(1.0, (at - self.relapse_at).days / 6)
            f = f + (self.rng.uniform(0.75, 0.95) - f) * back
        return f


def _seed_course(svc: Services, s, rng: random.Random, course: Course,
                 doses: list, now: dt.datetime) -> None:
    kind = "esketamine" if course.treatment == "esketamine" else "iv"
    first, last = _as_dt(doses[0]), _as_dt(doses[-1])
    latent = _Course(rng, kind, first, last)
    plan = {"phq9": rng.uniform(15, 24)}
    if kind == "esketamine":
        plan["madrs"] = rng.uniform(28, 40)
    elif rng.random() < 0.35:
        plan["qids-sr16"] = rng.uniform(14, 21)
    times = _visit_times(rng, doses, now)
    rows = []
    for at, source in times:
        f = latent.fraction(at)
        for instrument, base in plan.items():
            if instrument == "madrs" and source == "self-report":
                continue
            target = max(0.0, base * f + rng.gauss(0, 1.3))
            rows.append(_assessment(rng, course, instrument, target, at, source, now))
    s.add_all([r for r, _ in rows])
    s.flush()
    recent = now - dt.timedelta(days=10)
    for row, result in rows:
        for alert in result.alerts:
            ack = row.administered_at < recent
            s.add(ClinicalAlert(
                patient_id=course.patient_id, assessment_id=row.id, instrument_id=row.instrument_id,
                rule=alert.rule, priority=alert.priority, message=alert.message,
                item=alert.item, value=alert.value, threshold=alert.threshold,
                source=alert.source[:500], raised_at=row.administered_at,
                acknowledged_at=row.administered_at + dt.timedelta(hours=3) if ack else None,
                ack_note=rng.choice(NOTES) if ack else ""))
    if latent.relapse_at is not None and latent.relapse_at < now and rng.random() < 0.12:
        s.add(ClinicalEvent(patient_id=course.patient_id, course_id=course.id,
                            kind="hospitalisation_for_depression",
                            occurred_on=(latent.relapse_at + dt.timedelta(days=8)).date(),
                            note="Synthetic demo event.", recorded_at=now))
    if course.status == "active" and rng.random() < 0.5:
        s.add(ReminderSchedule(patient_id=course.patient_id, course_id=course.id,
                               instrument_id="phq9", days_after_dose="1,3,7", channel="console",
                               active=True, created_at=now))
    svc.ctx.audit.record(s, SYSTEM, "assessment.import", at=now, patient_id=course.patient_id,
                         detail=f"{len(rows)} synthetic demo assessments")


def _visit_times(rng: random.Random, doses: list, now: dt.datetime) -> list[tuple]:
    """Before the first dose (baseline), before each dose, then weekly self-report."""
    out = [(_as_dt(doses[0]) - dt.timedelta(days=rng.randint(1, 6), hours=1), "clinic")]
    out += [(_as_dt(d) - dt.timedelta(minutes=30), "clinic") for d in doses]
    if rng.random() < 0.85:  # the next-day check-in by self-report link (the 24 h timepoint)
        out.append((_as_dt(doses[0]) + dt.timedelta(hours=rng.randint(20, 30)), "self-report"))
    at = _as_dt(doses[-1]) + dt.timedelta(days=rng.randint(2, 5), hours=8)
    end = min(now, _as_dt(doses[-1]) + dt.timedelta(days=rng.randint(60, 150)))
    while at < end:
        out.append((at, "self-report"))
        at += dt.timedelta(days=rng.choice((5, 6, 7, 7)))
    return sorted((t, src) for t, src in out if t < now)


def _assessment(rng: random.Random, course: Course, instrument: str, target: float,
                at: dt.datetime, source: str, now: dt.datetime) -> tuple[Assessment, ScoreResult]:
    definition = load_bundled(instrument)
    answers = _answers(rng, instrument, target)
    result = score_answers(definition, answers)
    row = Assessment(
        patient_id=course.patient_id, course_id=course.id, instrument_id=instrument,
        instrument_version=definition.version, administered_at=at, source=source,
        total=None if result.total is None else Decimal(result.total),
        severity=result.severity or "", complete=result.complete, prorated=result.prorated,
        answers_json=json.dumps([None if a is None else str(a) for a in answers]),
        result_json=json.dumps(_result_dict(result), ensure_ascii=False), created_at=now)
    return row, result


def _result_dict(result: ScoreResult) -> dict:
    """``result.as_dict()`` without dataclasses.asdict's deep copy (4 000 rows in a demo)."""
    out = dataclasses.replace(result, items=(), domains=()).as_dict()
    out["items"] = [dict(vars(i)) for i in result.items]
    out["domains"] = [{**vars(d), "items": list(d.items)} for d in result.domains]
    return out


def _spread(rng: random.Random, total: int, slots: int, top: int) -> list[int]:
    values = [0] * slots
    for _ in range(min(total, slots * top)):
        free = [i for i, v in enumerate(values) if v < top]
        values[rng.choice(free)] += 1
    return values


def _answers(rng: random.Random, instrument: str, target: float) -> list[int]:
    total = int(round(target))
    if instrument == "phq9":
        suicidal = rng.random() < (0.08 if total >= 15 else 0.025 if total >= 8 else 0.003)
        item9 = (2 if rng.random() < 0.2 else 1) if suicidal else 0
        rest = _spread(rng, max(0, min(24, total - item9)), 8, 3)
        return [*rest, item9, rng.randint(0, 3) if total >= 5 else 0]
    if instrument == "madrs":
        item10 = min(6, max(0, int(rng.gauss(total / 12, 0.8))))
        return [*_spread(rng, max(0, min(54, total - item10)), 9, 6), item10]
    # QIDS-SR16: 9 domains 0–3; domain max placed on one item of each multi-item domain.
    domains = _spread(rng, min(27, total), 9, 3)
    if rng.random() > 0.05 or total < 6:
        domains[5] = min(domains[5], 0 if total < 12 else 1)
    sleep = [domains[0], rng.randint(0, domains[0]), rng.randint(0, domains[0]), 0]
    weight = [domains[2], 0, rng.randint(0, domains[2]), 0]
    return [*sleep, domains[1], *weight, domains[3], domains[4], domains[5], domains[6],
            domains[7], domains[8], rng.randint(0, domains[8])]
