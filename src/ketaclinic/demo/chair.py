"""Demo clinic, chair area: courses over the last 1–6 months, sessions with doses, lots, vitals
(BP peaking near 40 min), ratings, some adverse events and alerts, REMS forms and a ledger whose
lot balances add up. Synthetic only. Bulk inserts in one transaction keep it fast."""

from __future__ import annotations

import datetime as dt
import json
import math
import random
from collections import defaultdict
from decimal import Decimal
from typing import Any

from sqlalchemy import insert, select

from ketaclinic.bootstrap import Services
from ketaclinic.clinical.courses import load_course_template, plan_course
from ketaclinic.clinical.instruments import load_bundled
from ketaclinic.clinical.monitoring import VitalSigns, check_vitals
from ketaclinic.clinical.rems import form_due_date
from ketaclinic.services.audit.trail import SYSTEM, Actor
from ketaclinic.services.chair.common import session_rules
from ketaclinic.services.chair.session import VITAL_FIELDS
from ketaclinic.store.tables import User
from ketaclinic.store.tables_chair import (
    AdverseEventRow,
    DischargeRecord,
    DoseRecord,
    LedgerEntry,
    RemsFormRow,
    SessionAlert,
    SessionPrecheck,
    VitalSignRow,
)
from ketaclinic.store.tables_dosing import DoseOrder
from ketaclinic.store.tables_treatment import Assessment, Course, TreatmentSession

IV_VIAL_MG = 50  # ketamine HCl 50 mg/mL, 1 mL single-use vials
DRUGS = {"iv_ketamine": ("ketamine hydrochloride injection 50 mg/mL, 1 mL vial", Decimal(1),
                         Decimal(50)),
         "esketamine": ("esketamine nasal spray 28 mg device", Decimal("0.2"), Decimal(140))}
SLOTS = (dt.time(8, 0), dt.time(10, 30), dt.time(13, 0), dt.time(15, 30))
AES = (("nausea", "mild", ""), ("headache", "mild", ""), ("dizziness", "mild", ""),
       ("vomiting", "moderate", "Antiemetic given; airway protected"),
       ("anxiety", "moderate", "Reassured; reduced stimulation"))


def _rise(t_min: float) -> float:
    """BP rise shape peaking at 40 min (protocols.md §4), 0 at dosing, fading by 2 h."""
    x = t_min / 40
    return x * math.exp(1 - x)


class _Seed:
    def __init__(self, svc: Services, rng: random.Random, today: dt.date) -> None:
        self.svc, self.rng, self.today = svc, rng, today
        self.at = svc.ctx.clinic_time.at  # demo times are on the clinic's clock
        self.now = self.at(today, dt.time(7, 0))
        self.rows: dict[type, list[dict[str, Any]]] = defaultdict(list)
        self.usage: list[tuple[dt.datetime, str, int, int, Decimal]] = []  # time, drug, sid...
        self.slots: dict[dt.date, int] = defaultdict(int)
        self.rulesets: dict[str, Any] = {}  # active dose rule set per treatment

    def user_ids(self) -> None:
        with self.svc.db.transaction() as s:
            ids = dict(s.execute(select(User.username, User.id)).all())
        self.nurse, self.prescriber = ids.get("nurse"), ids.get("prescriber")
        self.witness = ids.get("admin") if ids.get("admin") != self.nurse else self.prescriber

    def slot(self, day: dt.date, chairs: list[int]) -> tuple[int | None, dt.datetime | None]:
        n = self.slots[day]
        self.slots[day] += 1
        if day.weekday() > 4 or n >= len(chairs) * len(SLOTS):
            return None, None
        return chairs[n % len(chairs)], self.at(day, SLOTS[n // len(chairs)])


def seed_chair(svc: Services, rng: random.Random, patient_ids: list[int],
               today: dt.date) -> None:
    """Seed courses, sessions and the ledger for ~80 % of the demo patients."""
    seed = _Seed(svc, rng, today)
    seed.user_ids()
    with svc.db.transaction() as s:
        seed.rulesets = {t: svc.dosing.rulesets.active_in(s, t)
                         for t in ("ketamine-iv", "esketamine")}
        chairs = [c.id for c in svc.chair.schedule.ensure_demo_chairs(s)]
        birth = dict(s.execute(_patient_birth()).all())
        for pid in patient_ids:
            if rng.random() < 0.8:
                _course(seed, s, pid, chairs, birth.get(pid))
        _ledger(seed, s)
        for model, rows in seed.rows.items():
            if rows:
                s.execute(insert(model), rows)
        svc.ctx.audit.record(s, SYSTEM, "demo.chair", at=svc.ctx.clock(),
                             detail=f"{len(seed.rows[VitalSignRow])} vitals, "
                                    f"{len(seed.rows[LedgerEntry])} ledger entries")


def _patient_birth():
    from ketaclinic.store.tables import Patient

    return select(Patient.id, Patient.birth_date)


def _course(seed: _Seed, s, pid: int, chairs: list[int], birth) -> None:
    rng, today = seed.rng, seed.today
    template_id = rng.choice(["iv_ketamine_induction", "iv_ketamine_induction", "esketamine_trd"])
    template = load_course_template(template_id)
    start = today - dt.timedelta(days=rng.randint(30, 180))
    plan = plan_course(template, start)
    created = seed.at(start - dt.timedelta(days=3), dt.time(16, 0))
    done = all(p.on < today for p in plan)
    stopped = rng.random() < 0.08
    course = Course(patient_id=pid, template_id=template.id, treatment=template.treatment,
                    status="stopped" if stopped else "completed" if done else "active",
                    start_date=start, end_date=plan[-1].on if done else None,
                    ruleset_ref=template.version, psychotherapy=rng.random() < 0.4,
                    concurrent_antidepressant=rng.random() < 0.85,
                    stop_reason="no response after 3 infusions (futility review)" if stopped
                    else "", created_by=seed.prescriber, created_at=created, updated_at=created)
    s.add(course)
    s.flush()
    seed.svc.ctx.audit.record(s, Actor(seed.prescriber, "prescriber", "prescriber"),
                              "course.create", at=created, patient_id=pid,
                              detail=f"course {course.id} {template.id} (demo)")
    stop_after = 3 if stopped else len(plan)
    sessions = []
    for p in plan:
        past = p.on < today and p.number <= stop_after
        status = "discharged" if past else "cancelled" if p.number > stop_after else "planned"
        chair, start_at = seed.slot(p.on, chairs) if (past or p.on <= today + dt.timedelta(
            days=7)) and status != "cancelled" else (None, None)
        if status == "planned" and start_at is not None:
            status = "booked"
        sessions.append(TreatmentSession(
            patient_id=pid, course_id=course.id, number=p.number, phase=p.phase,
            treatment=template.treatment, status=status, planned_date=p.on,
            scheduled_start=start_at, scheduled_minutes=None, chair_id=chair,
            cancel_reason="clinical_hold: course stopped" if status == "cancelled" else "",
            created_by=seed.prescriber, created_at=created, updated_at=created))
    s.add_all(sessions)
    s.flush()
    given = [(row, _session(seed, row, birth)) for row in sessions if row.status == "discharged"]
    orders = [_order(seed, row, record) for row, record in given]
    s.add_all(orders)
    s.flush()  # one batched insert per course; the dose records point at the orders
    for (_, record), order in zip(given, orders, strict=True):
        record["dose_order_id"] = order.id  # the session row gets it in _ledger's update


def _order(seed: _Seed, row: TreatmentSession, record: dict[str, Any]) -> DoseOrder:
    """The signed order behind a past administration: same patient, course and dose, written
    by the demo prescriber the day before. Its checks are an honest note, not a re-run."""
    esk = row.treatment == "esketamine"
    rs = seed.rulesets["esketamine" if esk else "ketamine-iv"]
    dose = record["dose_mg"]
    iv = {} if esk else dict(
        infusion_min=Decimal(40), concentration_mg_per_ml=record["concentration_mg_per_ml"],
        rate_mg_per_h=dose * 60 / 40, rate_ml_per_h=record["rate_ml_per_h"])
    note = {"rule": "demo_history", "level": "info", "passed": True,
            "message": "synthetic historical order (demo): dose checks were not re-run",
            "source": "ketaclinic demo seed"}
    return DoseOrder(
        patient_id=row.patient_id, course_id=row.course_id, status="signed",
        treatment="esketamine" if esk else "ketamine-iv",
        route="intranasal" if esk else "iv", ruleset_ref=rs.ref, dose_mg=dose,
        phase=(row.phase or "") if esk else "", session_number=row.number if esk else None,
        devices=int(dose) // 28 if esk else None, checks_json=json.dumps([note]),
        inputs_json="{}", ordered_by=seed.prescriber,
        created_at=seed.at(row.planned_date - dt.timedelta(days=1), dt.time(17, 0)), **iv)


def _session(seed: _Seed, row: TreatmentSession, birth) -> dict[str, Any]:
    rng = seed.rng
    esk = row.treatment == "esketamine"
    t0 = row.scheduled_start or seed.at(row.planned_date, dt.time(12, 0))
    start = t0 + dt.timedelta(minutes=rng.randint(10, 20))
    if esk:
        dose = Decimal(56 if row.number == 1 or rng.random() < 0.4 else 84)
        devices = [start + dt.timedelta(minutes=5 * i) for i in range(int(dose) // 28)]
        end, span, extra = devices[-1], 120, [40]
    else:
        dose = Decimal(rng.randint(30, 55))
        devices, end, span, extra = [], start + dt.timedelta(minutes=40), 100, []
    rows, nurse = seed.rows, seed.nurse
    rows[SessionPrecheck].append(dict(
        session_id=row.id, answers_json=json.dumps({"consent_on_file": True,
                                                    "rems_enrolled": esk}),
        findings_json="[]", outcome="ok", override_reason="", recorded_by=nurse,
        recorded_at=t0 + dt.timedelta(minutes=2)))
    base_s, base_d = rng.randint(112, 142), rng.randint(68, 88)
    rise_s = rng.uniform(8, 22) if esk else rng.uniform(10, 25)
    if rng.random() < 0.04:
        rise_s += 35  # an occasional large rise: a BP alert with the action taken
    hr = rng.randint(62, 84)
    rows[VitalSignRow].append(dict(
        session_id=row.id, kind="predose", taken_at=t0 + dt.timedelta(minutes=5),
        sbp_mmhg=base_s, dbp_mmhg=base_d, hr_bpm=hr, spo2_pct=rng.randint(96, 99),
        rr_per_min=rng.randint(12, 16), gate="ok" if base_s <= 140 else "warn",
        gate_reason="" if base_s <= 140 else "benefit outweighs a modest rise (demo)",
        idempotency_key=None, entered_by=nurse, created_at=t0 + dt.timedelta(minutes=5)))
    for t in sorted(set(range(15, span + 1, 15)) | set(extra)):
        at = start + dt.timedelta(minutes=t)
        sbp = round(base_s + rise_s * _rise(t) + rng.uniform(-4, 4))
        dbp = round(base_d + rise_s * 0.5 * _rise(t) + rng.uniform(-3, 3))
        rows[VitalSignRow].append(dict(
            session_id=row.id, kind="timed", taken_at=at, sbp_mmhg=sbp, dbp_mmhg=dbp,
            hr_bpm=hr + rng.randint(-4, 8), spo2_pct=rng.randint(95, 99),
            rr_per_min=rng.randint(12, 18), gate="", gate_reason="", idempotency_key=None,
            entered_by=nurse, created_at=at))
        reading = rows[VitalSignRow][-1]
        for alert in check_vitals(VitalSigns(at, *(float(reading[f]) for f in VITAL_FIELDS)),
                                  row.treatment, session_rules()):
            rows[SessionAlert].append(dict(
                session_id=row.id, vitals_id=None, rule=alert.rule,
                message=alert.message + " (demo)",
                suggested_action=str(alert.values.get("action", "")),
                action_taken="Rechecked after 5 min; prescriber informed; settled",
                action_by=nurse, action_at=at + dt.timedelta(minutes=5), created_at=at))
    for t in (0, 40, span):
        rows[Assessment].append(_rating(row, "moaas", start + dt.timedelta(minutes=t),
                                        [5 if t != 40 or rng.random() < 0.7 else 4], nurse))
    rows[Assessment].append(_rating(row, "cadss6", start + dt.timedelta(minutes=40),
                                    [rng.randint(0, 2) for _ in range(6)], nurse))
    if rng.random() < 0.1:
        code, severity, action = rng.choice(AES)
        rows[AdverseEventRow].append(dict(
            session_id=row.id, code=code, severity=severity, action_taken=action,
            onset_at=start + dt.timedelta(minutes=30), description="", recorded_by=nurse,
            created_at=start + dt.timedelta(minutes=31)))
    leave = start + dt.timedelta(minutes=span + rng.randint(0, 15)) if esk else \
        end + dt.timedelta(minutes=60 + rng.randint(0, 15))
    row.dose_mg, row.route, row.dose_started_at = dose, "nasal" if esk else "iv", start
    row.dose_ended_at = None if esk else end
    row.first_device_at, row.discharged_at = (start if esk else None), leave
    row.updated_at = leave
    rows[DischargeRecord].append(dict(
        session_id=row.id, discharged_at=leave, ready_at=leave - dt.timedelta(minutes=30),
        checklist_json="{}", findings_json="[]", override_reason="", recorded_by=nurse))
    if esk:
        day = start.date()
        submitted = day < seed.today - dt.timedelta(days=3) and rng.random() < 0.95
        rows[RemsFormRow].append(dict(
            session_id=row.id, patient_id=row.patient_id, treatment_date=day,
            due_on=form_due_date(day), status="submitted" if submitted else "due",
            details_json="{}", submitted_on=day + dt.timedelta(days=1) if submitted else None,
            submitted_by=nurse if submitted else None, confirmation="", created_at=leave))
    seed.usage.append((start, row.treatment, row.id, row.patient_id, dose))
    conc = None if esk else Decimal(str(seed.rulesets["ketamine-iv"]
                                        .infusion_concentrations["iv"][0].mg_per_ml))
    rows[DoseRecord].append(dict(
        session_id=row.id, dose_order_id=None, dose_mg=dose, route=row.route, lot="",
        started_at=start, ended_at=row.dose_ended_at,
        device_times_json=json.dumps([d.isoformat() for d in devices]), override_reason="",
        concentration_mg_per_ml=conc,
        rate_ml_per_h=None if conc is None else (dose * 60 / 40 / conc).quantize(Decimal("0.001")),
        recorded_by=nurse, recorded_at=start))
    return rows[DoseRecord][-1]


def _rating(row: TreatmentSession, instrument: str, at: dt.datetime, answers: list[int],
            nurse: int | None) -> dict[str, Any]:
    total = sum(answers)
    severity = {5: "alert"}.get(total, "") if instrument == "moaas" else ""
    return dict(patient_id=row.patient_id, course_id=row.course_id, session_id=row.id,
                instrument_id=instrument, instrument_version=load_bundled(instrument).version,
                administered_at=at,
                source="clinic", total=Decimal(total), severity=severity, complete=True,
                prorated=False, answers_json=json.dumps(answers),
                result_json=json.dumps({"instrument": instrument, "total": total}),
                entered_by=nurse, created_at=at)


def _ledger(seed: _Seed, s) -> None:
    """Receipts (one lot per drug per 60 days, sized to the use) then administrations and
    witnessed wastes in time order, so every lot balance stays >= 0."""
    by_window: dict[tuple[str, int], list] = defaultdict(list)
    first = min((u[0] for u in seed.usage), default=seed.now)
    for u in sorted(seed.usage):
        by_window[(u[1], (u[0] - first).days // 60)].append(u)
    lots: dict[tuple[str, int], str] = {}
    actor = Actor(seed.nurse, "nurse", "nurse")
    for (treatment, window), uses in sorted(by_window.items()):
        drug, vol, conc = DRUGS[treatment]
        per_container = vol * conc
        need = sum(_drawn(treatment, u[4]) for u in uses)
        containers = int(math.ceil(float(need / per_container) * 1.1)) + 5
        prefix = "ESK" if treatment == "esketamine" else "KET"
        lot = f"{prefix}-{window + 1:02d}{seed.rng.randint(100, 999)}"
        lots[(treatment, window)] = lot
        at = first.replace(hour=7, minute=0) + dt.timedelta(days=60 * window) - dt.timedelta(
            days=1)
        seed.rows[LedgerEntry].append(dict(
            kind="receipt", lot=lot, drug=drug, at=at,
            amount_mg=Decimal(containers) * per_container, actor_id=seed.nurse,
            supplier_name="Demo Pharma Wholesale", supplier_address="1 Supply Way, Demo Town",
            supplier_dea_number="AB1234563", expiry=at.date() + dt.timedelta(days=720),
            containers=containers, volume_ml_per_container=vol, concentration_mg_per_ml=conc,
            created_at=at))
        seed.svc.ctx.audit.record(s, actor, "ledger.receipt", at=at,
                                  detail=f"lot {lot} (demo)")
    for at, treatment, sid, pid, dose in sorted(seed.usage):
        lot = lots[(treatment, (at - first).days // 60)]
        base = dict(lot=lot, drug=DRUGS[treatment][0], actor_id=seed.nurse, session_id=sid,
                    patient_id=pid, created_at=at)
        seed.rows[LedgerEntry].append(dict(base, kind="administration", at=at, amount_mg=dose))
        waste = _drawn(treatment, dose) - dose
        if waste > 0:
            seed.rows[LedgerEntry].append(dict(
                base, kind="waste", at=at + dt.timedelta(minutes=45), amount_mg=waste,
                witness_id=seed.witness, note="remainder of single-use vial"))
    lot_of = {u[2]: lots[(u[1], (u[0] - first).days // 60)] for u in seed.usage}
    order_of = {}
    for d in seed.rows[DoseRecord]:
        d["lot"] = lot_of[d["session_id"]]
        order_of[d["session_id"]] = d["dose_order_id"]
    for sess in s.execute(select(TreatmentSession).where(
            TreatmentSession.id.in_(list(lot_of)))).scalars():
        sess.lot_numbers, sess.dose_order_id = lot_of[sess.id], order_of[sess.id]


def _drawn(treatment: str, dose: Decimal) -> Decimal:
    if treatment == "esketamine":
        return dose
    return Decimal(math.ceil(dose / IV_VIAL_MG) * IV_VIAL_MG)
