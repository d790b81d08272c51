"""Demo data for screening and dose safety: clinical facts, screenings and dose orders.

Works from what is in the database: patients with treatment sessions get facts, a screening for
their treatment and dose orders for their most recent sessions (a few with soft-limit
overrides). Without sessions, a subset of patients is screened anyway. Synthetic only; bulk
inserts in few transactions, with the audit rows a person would have left.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from collections import defaultdict

from sqlalchemy import select

from ketaclinic.bootstrap import Services
from ketaclinic.clinical.dose_checks import Override, check_dose_safely, override_records
from ketaclinic.clinical.dose_plan import DoseRequest, WeightFacts
from ketaclinic.clinical.dosing import ESKETAMINE_PHASES
from ketaclinic.services.audit.trail import SYSTEM, Actor
from ketaclinic.services.dosing.plan import order_columns, plan_dose
from ketaclinic.services.dosing.treatment_chain import SCREENING_TREATMENT, screening_finding
from ketaclinic.services.unit_of_work import PatientRepository
from ketaclinic.store.tables import User
from ketaclinic.store.tables_dosing import (
    DoseOrder,
    DoseOverride,
    PatientClinicalFacts,
    Screening,
    ScreeningSignoff,
)
from ketaclinic.store.tables_treatment import TreatmentSession

DRUGS = [("sertraline", 150), ("escitalopram", 20), ("venlafaxine", 225), ("duloxetine", 60),
         ("bupropion", 300), ("mirtazapine", 45), ("vortioxetine", 20)]
RECENT_SESSIONS = 3
FALLBACK_SCREENED = 40
ONE_DAY = dt.timedelta(days=1)


def _prescriber(svc: Services) -> Actor:
    with svc.db.transaction() as s:
        user = s.execute(select(User).where(User.role == "prescriber", User.active.is_(True))
                         .order_by(User.id).limit(1)).scalar_one_or_none()
    return SYSTEM if user is None else Actor(user.id, user.username, user.role)


def _facts(rng: random.Random) -> dict:
    trials = []
    for drug, dose in rng.sample(DRUGS, rng.randint(1, 4)):
        trials.append({"drug": drug, "dose_mg": dose, "weeks": rng.choice([4, 6, 8, 10, 12]),
                       "improvement_pct": rng.choice([0, 10, 15, 20, 30, 45]),
                       "response": None, "current_episode": rng.random() < 0.85,
                       "augmentation": False, "adequate_dose": None})
    if rng.random() < 0.3:
        trials.append({"drug": "aripiprazole", "dose_mg": 5, "weeks": 6, "improvement_pct": 15,
                       "response": None, "current_episode": True, "augmentation": True,
                       "adequate_dose": None})
    conditions = []
    if rng.random() < 0.05:
        conditions.append(rng.choice(["psychosis_history", "cardio_cerebrovascular_disease"]))
    return {"antidepressant_trials": trials, "conditions": conditions,
            "substance_use_disorder": rng.choice(["none"] * 12 + ["history"]),
            "episode_duration_months": rng.choice([4, 9, 14, 20, 30]),
            "symptom_severity": rng.choice(["moderate", "severe", "severe"]),
            "ect_used": rng.random() < 0.1, "pregnant": False, "breastfeeding": False,
            "bp": {"systolic_mmhg": rng.randint(108, 150), "diastolic_mmhg": rng.randint(66, 94)}}


def _request(session: TreatmentSession, rng: random.Random, soft: bool) -> DoseRequest:
    route = {"nasal": "intranasal", "im": "im", "oral": "oral", "sl": "sublingual"}.get(
        session.route or "", "intranasal" if session.treatment == "esketamine" else "iv")
    if route == "intranasal":
        phase = session.phase if session.phase in ESKETAMINE_PHASES else "induction"
        return DoseRequest(route=route, phase=phase, session_number=max(1, session.number or 1),
                           dose_mg=84 if soft else None)
    mg = 0.8 if soft else rng.choice([0.5, 0.5, 0.5, 0.6])
    if route == "iv":
        return DoseRequest(route=route, mg_per_kg=mg, infusion_min=40 if not soft else 60,
                           concentration_mg_per_ml=1.0)
    return DoseRequest(route=route, mg_per_kg=mg)


def seed_dosing(svc: Services, rng: random.Random, patient_ids: list[int],
                today: dt.date) -> None:
    """Facts, screenings and dose orders for demo patients (fast: a few transactions)."""
    actor = _prescriber(svc)
    now = svc.ctx.clock()
    with svc.db.transaction() as s:
        sessions = s.execute(select(TreatmentSession).where(
            TreatmentSession.patient_id.in_(patient_ids),
            TreatmentSession.status != "cancelled")
            .order_by(TreatmentSession.patient_id, TreatmentSession.planned_date,
                      TreatmentSession.id)).scalars().all()
        by_patient: dict[int, list[TreatmentSession]] = defaultdict(list)
        for sess in sessions:
            by_patient[sess.patient_id].append(sess)
        chosen = list(by_patient) or rng.sample(patient_ids, min(FALLBACK_SCREENED,
                                                                 len(patient_ids)))
        for pid in chosen:
            s.add(PatientClinicalFacts(patient_id=pid, facts_json=json.dumps(_facts(rng),
                                       sort_keys=True), updated_by=actor.user_id,
                                       updated_at=now))
            svc.ctx.audit.record(s, actor, "facts.update", at=now, patient_id=pid,
                                 detail="demo")
    for pid in chosen:  # a course's treatment ("iv_ketamine") is screened as "ketamine-iv"
        treatments = {SCREENING_TREATMENT.get(x.treatment, x.treatment)
                      for x in by_patient.get(pid, [])} or {"ketamine-iv"}
        for treatment in sorted(t for t in treatments if t in ("ketamine-iv", "esketamine")):
            screening = svc.dosing.screen(actor, pid, treatment)
            if screening.decision == "review":  # the prescriber reviews, as a clinic would
                svc.dosing.sign_off(actor, pid, screening.id,
                                    "Demo: findings reviewed with the patient; proceed")
    _backdate_screenings(svc, by_patient)
    _seed_orders(svc, rng, actor, by_patient, chosen, today, now)


def _backdate_screenings(svc: Services, by_patient: dict[int, list[TreatmentSession]]) -> None:
    """Earlier copies of each patient's screening (and sign-off), back to the day before the
    first session of that treatment, so every past check-in had one valid at the time.
    Synthetic: the copies carry today's findings; one flush, no per-row service calls."""
    first: dict[tuple[int, str], dt.date] = {}
    for pid, sessions in by_patient.items():
        for sess in sessions:
            key = (pid, SCREENING_TREATMENT.get(sess.treatment, sess.treatment))
            first[key] = min(first.get(key, sess.planned_date), sess.planned_date)
    at = svc.ctx.clinic_time.at
    with svc.db.transaction() as s:
        live = s.execute(select(Screening).where(Screening.patient_id.in_(list(by_patient)))
                         ).scalars().all()
        signs = {g.screening_id: g for g in s.execute(select(ScreeningSignoff).where(
            ScreeningSignoff.screening_id.in_([r.id for r in live]))).scalars()}
        copies: list[tuple[Screening, ScreeningSignoff | None]] = []
        for row in live:
            valid = row.expires_on - row.screened_on
            day = first.get((row.patient_id, row.treatment), row.screened_on) - ONE_DAY
            while day < row.screened_on:
                copies.append((Screening(
                    patient_id=row.patient_id, treatment=row.treatment,
                    ruleset_ref=row.ruleset_ref, decision=row.decision,
                    maudsley_score=row.maudsley_score,
                    adequate_failed_trials=row.adequate_failed_trials,
                    findings_json=row.findings_json, inputs_json=row.inputs_json,
                    screened_on=day, expires_on=day + valid, screened_by=row.screened_by,
                    created_at=at(day, dt.time(9, 0))), signs.get(row.id)))
                day += valid - ONE_DAY * 7
        s.add_all([c for c, _ in copies])
        s.flush()
        s.add_all([ScreeningSignoff(screening_id=c.id, patient_id=c.patient_id,
                                    reason=g.reason, inputs_json=g.inputs_json,
                                    signed_by=g.signed_by,
                                    signed_at=c.created_at + dt.timedelta(minutes=10))
                   for c, g in copies if g is not None])
        svc.ctx.audit.record(s, SYSTEM, "demo.screenings", at=svc.ctx.clock(),
                             detail=f"{len(copies)} back-dated screenings")


def _seed_orders(svc: Services, rng: random.Random, actor: Actor,
                 by_patient: dict[int, list[TreatmentSession]], chosen: list[int],
                 today: dt.date, now: dt.datetime) -> None:
    with svc.db.transaction() as s:
        for pid in chosen:
            patients = PatientRepository(s)
            patient = patients.get(pid)
            weight = patients.latest_weight(pid)
            recent = by_patient.get(pid, [])[-RECENT_SESSIONS:]
            targets: list[TreatmentSession | None] = list(recent) or (
                [None] if rng.random() < 0.5 else [])
            previous: dict[str, float] = {}
            for sess in targets:
                soft = rng.random() < (0.08 if sess is not None else 0.3)
                req = (_request(sess, rng, soft) if sess is not None else
                       DoseRequest(route="iv", mg_per_kg=0.8 if soft else 0.5,
                                   infusion_min=60 if soft else 40,
                                   concentration_mg_per_ml=1.0))
                rs = svc.dosing.rulesets.active_in(s, req.treatment)
                w = None if weight is None else float(weight[0])
                try:
                    plan = plan_dose(
                        req, rs, today=today, birth_date=patient.birth_date, sex=patient.sex,
                        weights=WeightFacts(w, today, None, None),
                        previous_dose_mg=previous.get(req.route), previous_mg_per_kg=None,
                        screening=screening_finding(s, patient, req.treatment, today),
                        check=check_dose_safely)
                except Exception:  # noqa: BLE001 - demo: skip what the clinic would not order
                    continue
                overrides = [Override(f.rule, rng.choice(rs.override_reason_codes),
                                      "Demo: tolerated this dose before", actor.username,
                                      now.isoformat()) for f in plan.result.soft_findings]
                if plan.result.blocked:
                    continue
                order = DoseOrder(patient_id=pid, **order_columns(plan), status="signed",
                                  course_id=None if sess is None else sess.course_id,
                                  checks_json=json.dumps([f.as_dict() for f in
                                                          plan.result.checks], default=str),
                                  ordered_by=actor.user_id, created_at=_when(sess, today, now))
                s.add(order)
                s.flush()
                for rec in override_records(plan.result, overrides):
                    s.add(DoseOverride(dose_order_id=order.id, rule=rec["rule"],
                                       reason_code=rec["reason_code"], free_text=rec["free_text"],
                                       value=str(rec["value"] or ""),
                                       limit_value=str(rec["limit"] or ""),
                                       message=rec["message"][:500], ruleset_ref=rs.ref,
                                       user_id=actor.user_id, username=actor.username, at=now))
                live = None if sess is None else s.get(TreatmentSession, sess.id)
                if live is not None and live.dose_order_id is None:
                    live.dose_order_id = order.id
                previous[req.route] = plan.dose_mg
                svc.ctx.audit.record(s, actor, "dose.create", at=now, patient_id=pid,
                                     detail=f"demo {req.route} {rs.ref}")


def _when(sess: TreatmentSession | None, today: dt.date, now: dt.datetime) -> dt.datetime:
    if sess is None or sess.planned_date > today:
        return now
    return sess.dose_started_at or dt.datetime.combine(sess.planned_date, dt.time(8, 30))
