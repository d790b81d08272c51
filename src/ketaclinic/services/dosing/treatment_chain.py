"""Loading the facts of the closed loop for the core's gates.

Nothing here decides: these functions read the stored screening, sign-off, order and session
timeline and hand them to :mod:`ketaclinic.clinical.treatment_chain`, whose findings the
services then enforce (a HARD finding refuses the step and saves nothing).
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from functools import lru_cache

from sqlalchemy import select
from sqlalchemy.orm import Session

from ketaclinic.clinical.dose_checks import DoseOrder as CoreDoseOrder
from ketaclinic.clinical.dose_checks import Override
from ketaclinic.clinical.rems import RemsOrder
from ketaclinic.clinical.rules import Finding
from ketaclinic.clinical.treatment_chain import (
    SCREENING_TREATMENT,
    ChainRules,
    GivenDose,
    OrderFacts,
    ScreeningState,
    SessionFacts,
    SessionTimeline,
    check_screening,
    hard_messages,
    load_chain_rules,
    order_state,
    verbal_order_due,
)
from ketaclinic.services.dosing.facts import screening_input
from ketaclinic.services.dosing.rulesets import active_ruleset
from ketaclinic.services.errors import InvalidInput
from ketaclinic.store.tables import Patient, User
from ketaclinic.store.tables_chair import DischargeRecord, SessionPrecheck, VitalSignRow
from ketaclinic.store.tables_dosing import DoseOrder, DoseOverride, Screening, ScreeningSignoff
from ketaclinic.store.tables_treatment import TreatmentSession


@lru_cache(maxsize=1)
def chain_rules() -> ChainRules:
    return load_chain_rules()


def refuse_on_hard(findings: list[Finding], suffix: str = " (nothing was saved)") -> None:
    """Enforce the core's verdict: any HARD finding is a 422 naming each one."""
    hard = hard_messages(findings)
    if hard:
        raise InvalidInput("; ".join(hard) + suffix)


def _username(s: Session, user_id: int | None) -> str:
    if user_id is None:
        return ""
    return s.execute(select(User.username).where(User.id == user_id)).scalar_one_or_none() or ""


def screening_state(s: Session, patient_id: int, treatment: str) -> ScreeningState | None:
    """The latest screening of ``treatment`` with its latest sign-off (None: never screened)."""
    row = s.execute(select(Screening).where(
        Screening.patient_id == patient_id, Screening.treatment == treatment)
        .order_by(Screening.created_at.desc(), Screening.id.desc()).limit(1)
    ).scalar_one_or_none()
    if row is None:
        return None
    sign = s.execute(select(ScreeningSignoff).where(ScreeningSignoff.screening_id == row.id)
                     .order_by(ScreeningSignoff.id.desc()).limit(1)).scalar_one_or_none()
    return ScreeningState(
        screening_id=row.id, treatment=row.treatment, decision=row.decision,
        expires_on=row.expires_on, screened_inputs=json.loads(row.inputs_json or "{}"),
        signoff_by=_username(s, sign.signed_by) if sign else "",
        signoff_at=sign.signed_at if sign else None,
        signoff_reason=sign.reason if sign else "",
        signoff_inputs=json.loads(sign.inputs_json) if sign else None)


def screening_finding(s: Session, patient: Patient, treatment: str,
                      today: dt.date) -> Finding:
    """The core's screening gate for ``patient`` and ``treatment`` on ``today``: today's facts
    (withdrawn rows excluded, see :func:`screening_input`) against the stored screening, its
    basis judged under the rule set a new screening would use."""
    state = screening_state(s, patient.id, treatment)
    current = screening_input(s, patient, today)
    return check_screening(state, treatment, current, today, active_ruleset(s, treatment))


def order_facts(s: Session, order_id: int | None) -> OrderFacts | None:
    row = s.get(DoseOrder, order_id) if order_id is not None else None
    if row is None:
        return None
    return OrderFacts(
        order_id=row.id, patient_id=row.patient_id, course_id=row.course_id,
        treatment=row.treatment, dose_mg=Decimal(row.dose_mg), status=row.status,
        ordered_at=row.created_at, rate_ml_per_h=_dec(row.rate_ml_per_h),
        concentration_mg_per_ml=_dec(row.concentration_mg_per_ml), devices=row.devices)


def _dec(value: Decimal | None) -> Decimal | None:
    return None if value is None else Decimal(value).normalize()


def session_facts(row: TreatmentSession) -> SessionFacts:
    return SessionFacts(row.id, row.patient_id, row.course_id, row.treatment)


def timeline(s: Session, row: TreatmentSession) -> SessionTimeline:
    """Check-in, pre-dose BP, dose and discharge times of a session, for the order gates."""
    pre = s.execute(select(SessionPrecheck).where(SessionPrecheck.session_id == row.id)
                    .order_by(SessionPrecheck.id.desc()).limit(1)).scalar_one_or_none()
    bp = s.execute(select(VitalSignRow).where(
        VitalSignRow.session_id == row.id, VitalSignRow.kind == "predose").order_by(
        VitalSignRow.id.desc()).limit(1)).scalar_one_or_none()
    left = s.execute(select(DischargeRecord.discharged_at).where(
        DischargeRecord.session_id == row.id).limit(1)).scalar_one_or_none()
    return SessionTimeline(
        checked_in_at=pre.recorded_at if pre else None, checkin_outcome=pre.outcome if pre else "",
        predose_at=bp.taken_at if bp else None, predose_gate=bp.gate if bp else "",
        dosed_at=row.first_device_at or row.dose_started_at, discharged_at=left)


def administered_order(s: Session, order_id: int, given: GivenDose,
                       age_years: float) -> tuple[CoreDoseOrder, list[Override]]:
    """The core dose order for the values actually given (programmed rate, concentration),
    with the soft-limit overrides the prescriber recorded on the signed order."""
    row = s.get(DoseOrder, order_id)
    assert row is not None
    minutes = _f(row.infusion_min)
    if given.rate_ml_per_h and given.concentration_mg_per_ml:
        minutes = float(given.dose_mg / given.concentration_mg_per_ml / given.rate_ml_per_h * 60)
    order = CoreDoseOrder(
        route=row.route, dose_mg=float(given.dose_mg), dose_weight_kg=_f(row.dose_weight_kg),
        weight_kg=_f(row.weight_kg), infusion_min=minutes,
        previous_dose_mg=_f(row.previous_dose_mg), phase=row.phase or None,
        session_number=row.session_number, age_years=age_years,
        concentration_mg_per_ml=_f(given.concentration_mg_per_ml),
        rate_ml_per_h=_f(given.rate_ml_per_h),
        volume_ml=float(given.dose_mg / given.concentration_mg_per_ml)
        if given.concentration_mg_per_ml else None)
    overrides = [Override(o.rule, o.reason_code, o.free_text, o.username, o.at.isoformat())
                 for o in s.execute(select(DoseOverride).where(
                     DoseOverride.dose_order_id == order_id)).scalars()]
    return order, overrides


def _f(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def session_order(s: Session, row: TreatmentSession, now: dt.datetime) -> dict | None:
    """The order the chair page shows for this session: the latest order of this patient,
    course and treatment, with what the nurse confirms and its signing state."""
    order = s.execute(select(DoseOrder).where(
        DoseOrder.patient_id == row.patient_id, DoseOrder.course_id == row.course_id,
        DoseOrder.treatment == SCREENING_TREATMENT[row.treatment])
        .order_by(DoseOrder.created_at.desc(), DoseOrder.id.desc()).limit(1)
    ).scalar_one_or_none()
    if order is None:
        return None
    facts = order_facts(s, order.id)
    assert facts is not None
    rules = chain_rules()
    return {
        "id": order.id, "route": order.route, "dose_mg": _dec(order.dose_mg),
        "mg_per_kg": _dec(order.mg_per_kg), "weight_kg": _dec(order.dose_weight_kg
                                                              or order.weight_kg),
        "concentration_mg_per_ml": _dec(order.concentration_mg_per_ml),
        "rate_ml_per_h": _dec(order.rate_ml_per_h), "infusion_min": _dec(order.infusion_min),
        "devices": order.devices, "status": order.status,
        "state": order_state(facts, now, rules), "ordered_by": _username(s, order.ordered_by),
        "prescriber": _username(s, order.verbal_prescriber_id or order.ordered_by),
        "countersign_due": verbal_order_due(order.created_at, rules)
        if order.status == "verbal" else None,
        "created_at": order.created_at,
    }


def order_states(s: Session, session_ids: set[int], now: dt.datetime) -> dict[int, dict]:
    """session id -> {"order_id", "state"} of the order given there (one query), for the
    ledger: a verbal order not countersigned in its hours shows as overdue."""
    if not session_ids:
        return {}
    rows = s.execute(select(TreatmentSession.id, DoseOrder).join(
        DoseOrder, DoseOrder.id == TreatmentSession.dose_order_id).where(
        TreatmentSession.id.in_(session_ids))).all()
    rules = chain_rules()
    return {sid: {"order_id": o.id, "state": order_state(OrderFacts(
        order_id=o.id, patient_id=o.patient_id, course_id=o.course_id, treatment=o.treatment,
        dose_mg=Decimal(o.dose_mg), status=o.status, ordered_at=o.created_at), now, rules)}
        for sid, o in rows}


def rems_order(s: Session, order_id: int | None, now: dt.datetime) -> RemsOrder | None:
    """The order a session was given on, for the REMS form: written or verbal, prescriber,
    read back, countersigned by/at or overdue (the core's order state decides overdue)."""
    order = s.get(DoseOrder, order_id) if order_id is not None else None
    if order is None:
        return None
    rules = chain_rules()
    verbal = order.status in ("verbal", "countersigned")
    state = order_state(OrderFacts(
        order_id=order.id, patient_id=order.patient_id, course_id=order.course_id,
        treatment=order.treatment, dose_mg=Decimal(order.dose_mg), status=order.status,
        ordered_at=order.created_at), now, rules)
    return RemsOrder(
        order_id=order.id, verbal=verbal,
        prescriber=_username(s, order.verbal_prescriber_id or order.ordered_by),
        read_back_confirmed=bool(order.read_back_confirmed) if verbal else None,
        countersigned_by=_username(s, order.countersigned_by) if order.countersigned_by
        else None,
        countersigned_at=order.countersigned_at,
        countersign_due=verbal_order_due(order.created_at, rules) if verbal else None,
        overdue=state == "overdue")
