"""Ledger invariant: on hand = received - administered - wasted - transferred, never negative.

An independent model keeps per-lot totals; every random entry is offered to the ledger, which
must accept exactly the entries the model says are covered by stock.
"""

import random
from datetime import date, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st
from kctest import examples

from ketaclinic.clinical.ledger import (
    Administration,
    Correction,
    Receipt,
    TransferOut,
    Waste,
    balance_by_lot,
    totals_by_lot,
    validate_event,
)
from ketaclinic.clinical.rules import Level

T0 = datetime(2026, 1, 1, 8, 0)
LOTS = ("L1", "L2", "L3")
OUT_KINDS = ("administer", "waste", "transfer")


class Model:
    def __init__(self):
        self.totals = {}  # lot -> {category: Decimal}
        self.amounts = {}  # entry_id -> (lot, category, Decimal)

    def on_hand(self, lot):
        t = self.totals.get(lot)
        if t is None:
            return None
        return t["received"] - t["administered"] - t["wasted"] - t["transferred"]

    def add(self, entry_id, lot, category, mg):
        t = self.totals.setdefault(lot, {c: Decimal(0) for c in
                                         ("received", "administered", "wasted", "transferred")})
        t[category] += mg
        self.amounts[entry_id] = (lot, category, mg)


def make_event(n, kind, lot, mg):
    common = dict(entry_id=f"e{n}", at=T0 + timedelta(minutes=n), actor_id="nurse1", lot=lot)
    if kind == "receive":
        return Receipt(**common, drug="ketamine HCl", supplier_name="S", supplier_address="A",
                       supplier_dea_number="AB1234563", expiry=date(2099, 1, 1), containers=1,
                       volume_ml_per_container=Decimal(10), concentration_mg_per_ml=mg / 10)
    if kind == "administer":
        return Administration(**common, dose_mg=mg, session_ref=f"s{n}", patient_ref="p1")
    if kind == "waste":
        return Waste(**common, waste_mg=mg, witness_id="nurse2", witness_reauthenticated=True)
    return TransferOut(**common, transfer_mg=mg, recipient_name="Reverse distributor")


CATEGORY = {"receive": "received", "administer": "administered", "waste": "wasted",
            "transfer": "transferred"}


def offer(log, model, n, kind, lot, mg):
    """Offer one entry; check the ledger agrees with the model; return the new log."""
    event = make_event(n, kind, lot, mg)
    accepted = not [f for f in validate_event(log, event) if f.level is Level.HARD]
    on_hand = model.on_hand(lot)
    expected = kind == "receive" or (on_hand is not None and mg <= on_hand)
    assert accepted == expected, (kind, lot, mg, on_hand)
    if accepted:
        model.add(event.entry_id, lot, CATEGORY[kind], mg)
        return [*log, event]
    return log


def offer_correction(log, model, n, target_index, corrected):
    targets = [eid for eid, (_, cat, _) in model.amounts.items() if cat != "received"]
    if not targets:
        return log
    target = targets[target_index % len(targets)]
    lot, category, old = model.amounts[target]
    fix = Correction(entry_id=f"e{n}", at=T0 + timedelta(minutes=n), actor_id="nurse1", lot=lot,
                     refers_to=target, corrected_mg=corrected, reason="recount")
    accepted = not [f for f in validate_event(log, fix) if f.level is Level.HARD]
    assert accepted == (model.on_hand(lot) + old - corrected >= 0)
    if accepted:
        model.add(target, lot, category, corrected - old)
        model.amounts[target] = (lot, category, corrected)
        return [*log, fix]
    return log


def check_invariant(log, model):
    balances, totals = balance_by_lot(log), totals_by_lot(log)
    assert set(balances) == set(model.totals)
    for lot, t in totals.items():
        m = model.totals[lot]
        assert (t.received, t.administered, t.wasted, t.transferred) == (
            m["received"], m["administered"], m["wasted"], m["transferred"])
        assert balances[lot] == t.received - t.administered - t.wasted - t.transferred
        assert balances[lot] >= 0


amounts = st.integers(min_value=1, max_value=4000).map(lambda n: Decimal(n) / 10)
ops = st.one_of(
    st.tuples(st.sampled_from(("receive",) + OUT_KINDS), st.sampled_from(LOTS), amounts),
    st.tuples(st.just("correct"), st.integers(0, 50), amounts),
)


@settings(max_examples=examples(150), deadline=None)
@given(st.lists(ops, min_size=1, max_size=40))
def test_random_ledger_sequences_keep_the_balance_identity(operations):
    log, model = [], Model()
    for n, (kind, a, b) in enumerate(operations):
        if kind == "correct":
            log = offer_correction(log, model, n, a, b)
        else:
            log = offer(log, model, n, kind, a, b)
        check_invariant(log, model)


@settings(max_examples=examples(2, fast=1), deadline=None)
@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_a_sequence_of_1000_random_events_keeps_the_balance_identity_per_lot(seed):
    rng = random.Random(seed)
    log, model = [], Model()
    for n in range(1000):
        kind = rng.choices(("receive",) + OUT_KINDS, weights=(1, 6, 2, 1))[0]
        mg = Decimal(rng.randint(1, 3000)) / 10 if kind != "receive" else Decimal(
            rng.randint(500, 5000))
        log = offer(log, model, n, kind, rng.choice(LOTS), mg)
    assert len(log) > 300
    check_invariant(log, model)
