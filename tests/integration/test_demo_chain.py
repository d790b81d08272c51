"""The whole seeded demo history keeps the closed loop (issue 12): every administration has a
signed order of the same patient and course for its dose, every ledger administration row names
the patient and a real lot, and no precheck still carries the removed screening tick box."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import select

from ketaclinic.clinical.treatment_chain import SCREENING_TREATMENT, load_chain_rules
from ketaclinic.store.tables_care import TreatmentSession
from ketaclinic.store.tables_chair import DoseRecord, LedgerEntry, SessionPrecheck
from ketaclinic.store.tables_dosing import DoseOrder, Screening, ScreeningSignoff


@pytest.fixture
def demo(demo_clinic):
    """The shared demo clinic (tests/conftest.py), seeded once; these tests only read it."""
    return demo_clinic


def test_every_demo_administration_has_a_signed_matching_order_of_its_patient_and_course(demo):
    rules = load_chain_rules()
    with demo.db.transaction() as s:
        rows = s.execute(
            select(DoseRecord, TreatmentSession, DoseOrder)
            .join(TreatmentSession, TreatmentSession.id == DoseRecord.session_id)
            .outerjoin(DoseOrder, DoseOrder.id == DoseRecord.dose_order_id)).all()
    assert len(rows) > 20
    for record, session, order in rows:
        assert order is not None, f"dose record {record.id} has no order"
        assert (order.patient_id, order.course_id) == (session.patient_id, session.course_id)
        assert order.status == "signed" and order.ordered_by is not None
        assert order.treatment == SCREENING_TREATMENT[session.treatment]
        assert session.dose_order_id == order.id
        assert order.created_at < record.started_at
        tol = Decimal(str(rules.dose_match_tolerance_pct[session.treatment].value))
        off = abs(Decimal(record.dose_mg) - Decimal(order.dose_mg)) * 100 / Decimal(order.dose_mg)
        assert off <= tol
        if record.route == "iv":
            assert record.concentration_mg_per_ml == order.concentration_mg_per_ml is not None
            assert record.rate_ml_per_h == order.rate_ml_per_h is not None


def test_every_demo_ledger_administration_names_its_patient_and_a_received_lot(demo):
    with demo.db.transaction() as s:
        received = set(s.execute(select(LedgerEntry.lot).where(
            LedgerEntry.kind == "receipt")).scalars())
        given = s.execute(select(LedgerEntry.session_id, LedgerEntry.patient_id,
                                 LedgerEntry.lot).where(
            LedgerEntry.kind == "administration")).all()
        records = dict(s.execute(select(DoseRecord.session_id, DoseRecord.lot)).all())
    assert given and len(given) == len(records)
    assert len({sid for sid, _, _ in given}) == len(given)  # one row per administration
    for sid, pid, lot in given:
        assert pid is not None and lot in received and records[sid] == lot


def test_no_demo_precheck_carries_the_removed_screening_tick_box(demo):
    with demo.db.transaction() as s:
        answers = s.execute(select(SessionPrecheck.answers_json)).scalars().all()
    assert answers and not [a for a in answers if "screening_valid" in a]


def test_every_demo_check_in_had_a_screening_of_its_treatment_valid_that_day(demo):
    with demo.db.transaction() as s:
        sessions = s.execute(select(TreatmentSession.patient_id, TreatmentSession.treatment,
                                    TreatmentSession.planned_date).join(
            SessionPrecheck, SessionPrecheck.session_id == TreatmentSession.id)).all()
        screenings = s.execute(select(Screening)).scalars().all()
        signed = set(s.execute(select(ScreeningSignoff.screening_id)).scalars())
    assert sessions
    for pid, treatment, day in sessions:
        cover = [r for r in screenings if r.patient_id == pid
                 and r.treatment == SCREENING_TREATMENT[treatment]
                 and r.screened_on <= day <= r.expires_on]
        assert any(r.decision == "eligible" or (r.decision == "review" and r.id in signed)
                   for r in cover), (treatment, day, [(r.screened_on, r.decision) for r in cover])
