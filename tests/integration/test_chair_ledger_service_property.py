"""Ledger invariant through the SERVICE layer on a real database: over more than 1,000 random
receive/administer/waste/transfer requests, every lot's on-hand equals receipts - administered
- wasted - transferred, refused requests change nothing, and the stored log agrees."""

from __future__ import annotations

import datetime as dt
import random
from collections import defaultdict
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kctest import fresh_database_url, make_settings
from sqlalchemy import func, select

from ketaclinic.bootstrap import build_services
from ketaclinic.clinical import ledger as core
from ketaclinic.schemas import PatientCreate
from ketaclinic.schemas_chair import CourseCreate, ReceiptCreate, TransferCreate, WasteCreate
from ketaclinic.services.audit.trail import SYSTEM
from ketaclinic.services.chair.ledger import to_event
from ketaclinic.services.clock import SteppingClock
from ketaclinic.services.errors import InvalidInput
from ketaclinic.store import migrate
from ketaclinic.store.db import make_engine
from ketaclinic.store.tables_chair import LedgerEntry
from ketaclinic.store.tables_treatment import TreatmentSession

# A long property run (1,050 ledger events through the services); the pure ledger property
# (tests/unit/test_chair_ledger_property.py) and test_chair_workflow.py stay in the fast loop.
pytestmark = pytest.mark.slow

EVENTS = 1_050
KINDS = ("administration", "waste", "transfer")


@pytest.fixture(scope="module")
def ledger_world(tmp_path_factory):  # type: ignore[no-untyped-def]
    url, _ = fresh_database_url("sqlite", tmp_path_factory.mktemp("ledger-prop"))
    engine = make_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    clock = SteppingClock(dt.datetime(2026, 1, 5, 8, 0))
    svc = build_services(make_settings(url), clock=clock)
    nurse = svc.auth.create_user(SYSTEM, "nurse", "N", "nurse", "nurse-password-1")
    svc.auth.create_user(SYSTEM, "witness", "W", "nurse", "witness-password-1")
    pres = svc.auth.create_user(SYSTEM, "pres", "P", "prescriber", "pres-password-1")
    patient, _ = svc.patients.create(nurse.actor, PatientCreate(
        mrn="LP-1", family_name="Ledger", given_name="Prop", birth_date=dt.date(1970, 1, 1),
        sex="female"))
    svc.chair.courses.create(pres.actor, patient.id, CourseCreate(
        template_id="esketamine_trd", start_date=dt.date(2026, 1, 5)))
    with svc.db.transaction() as s:
        sessions = list(s.execute(select(TreatmentSession.id)).scalars())
    yield svc, clock, nurse.actor, sessions
    svc.close()


def _administer(svc, actor, lot: str, mg: Decimal, session_id: int) -> None:  # type: ignore[no-untyped-def]
    with svc.ctx.unit_of_work(actor, "ledger.administration") as uow:
        patient_id = uow.session.get(TreatmentSession, session_id).patient_id
        svc.chair.ledger.append(uow, LedgerEntry(
            kind="administration", lot=lot, at=uow.now, amount_mg=mg,
            session_id=session_id, patient_id=patient_id))


@settings(max_examples=1, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1))
def test_on_hand_equals_receipts_minus_administered_wasted_transferred_for_every_lot(
        ledger_world, seed):  # type: ignore[no-untyped-def]
    svc, clock, actor, sessions = ledger_world
    rng = random.Random(seed)
    model: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    lots: list[str] = []
    given: set[tuple[str, int]] = set()
    refused = 0
    with svc.db.transaction() as s:
        before = s.execute(select(func.count(LedgerEntry.id))).scalar_one()
    for _ in range(EVENTS):
        clock.advance(minutes=1)
        if not lots or rng.random() < 0.06:
            lot = f"S{seed % 1000}-{len(lots)}"
            containers = rng.randint(1, 40)
            svc.chair.ledger.record_receipt(actor, ReceiptCreate(
                drug="ketamine hydrochloride injection 50 mg/mL", lot=lot, supplier_name="S",
                supplier_address="A", supplier_dea_number="AB1234563",
                expiry=dt.date(2030, 1, 1), containers=containers,
                volume_ml_per_container=Decimal(1), concentration_mg_per_ml=Decimal(50)))
            lots.append(lot)
            model[lot]["received"] += containers * 50
            continue
        lot, kind = rng.choice(lots), rng.choice(KINDS)
        mg = Decimal(rng.randint(1, 4000)) / 10
        on_hand = model[lot]["received"] - sum(model[lot][k] for k in KINDS)
        sid = rng.choice(sessions)
        # One administration per session (a second one is a correction, not a new row).
        repeat = kind == "administration" and (lot, sid) in given
        try:
            if kind == "administration":
                _administer(svc, actor, lot, mg, sid)
            elif kind == "waste":
                svc.chair.ledger.record_waste(actor, WasteCreate(
                    lot=lot, waste_mg=mg, witness_username="witness",
                    witness_password="witness-password-1"))
            else:
                svc.chair.ledger.record_transfer(actor, TransferCreate(
                    lot=lot, transfer_mg=mg, recipient="Other clinic"))
        except InvalidInput as exc:
            assert mg > on_hand or repeat, f"refused although covered: {exc}"
            refused += 1
            continue
        assert mg <= on_hand and not repeat, "accepted more than on hand, or twice"
        model[lot][kind] += mg
        if kind == "administration":
            given.add((lot, sid))
    assert refused > 0  # the run exercised refusals too
    rows = {r.lot: r for r in svc.chair.ledger.lots(actor)}
    for lot in lots:
        m = model[lot]
        expected = m["received"] - m["administration"] - m["waste"] - m["transfer"]
        assert rows[lot].on_hand == expected >= 0
        assert (rows[lot].administered, rows[lot].wasted, rows[lot].transferred) == (
            m["administration"], m["waste"], m["transfer"])
    with svc.db.transaction() as s:
        stored = list(s.execute(select(LedgerEntry).order_by(LedgerEntry.id)).scalars())
    assert len(stored) - before == EVENTS - refused
    assert core.balance_by_lot([to_event(r) for r in stored])[lots[0]] == rows[lots[0]].on_hand
