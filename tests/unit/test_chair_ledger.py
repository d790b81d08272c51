"""Controlled-substance ledger: refusals, corrections, reports and deadlines."""

from datetime import date, datetime, timedelta
from decimal import Decimal as D

import pytest

from ketaclinic.clinical.ledger import (
    Administration,
    Correction,
    InventoryCount,
    LedgerRefused,
    LossReport,
    Receipt,
    TransferOut,
    Waste,
    append_event,
    balance_by_lot,
    dea_number_checksum_ok,
    running_balance,
    totals_by_lot,
    validate_event,
)
from ketaclinic.clinical.ledger_reports import (
    INVENTORY_POLICIES,
    add_business_days,
    check_count_method,
    discrepancy_report,
    inventory_due,
    loss_report_deadlines,
)
from ketaclinic.clinical.rules import Level

T0 = datetime(2026, 1, 5, 8, 0)


def receipt(entry_id="r1", lot="L1", containers=2, expiry=date(2027, 1, 1), at=T0):
    # 2 vials x 10 mL x 50 mg/mL = 1000 mg
    return Receipt(entry_id=entry_id, at=at, actor_id="u1", lot=lot, drug="ketamine HCl",
                   supplier_name="Synthetic Pharma", supplier_address="1 Depot Rd",
                   supplier_dea_number="AB1234563", expiry=expiry, containers=containers,
                   volume_ml_per_container=D("10"), concentration_mg_per_ml=D("50"))


def admin(entry_id, mg, lot="L1", at=T0 + timedelta(hours=1)):
    return Administration(entry_id=entry_id, at=at, actor_id="u1", lot=lot, dose_mg=D(mg),
                          session_ref=f"s-{entry_id}", patient_ref="p1")


def waste(entry_id, mg, witness="u2", reauth=True, lot="L1"):
    return Waste(entry_id=entry_id, at=T0 + timedelta(hours=2), actor_id="u1", lot=lot,
                 waste_mg=D(mg), witness_id=witness, witness_reauthenticated=reauth)


def rules_of(findings):
    return [f.rule for f in findings if f.level is Level.HARD]


LOG = (receipt(),)


def test_receipt_mg_is_containers_times_volume_times_concentration():
    assert balance_by_lot(LOG) == {"L1": D("1000")}


def test_administer_waste_and_transfer_reduce_the_lot():
    log = append_event(LOG, admin("a1", "35.5"))
    log = append_event(log, waste("w1", "14.5"))
    log = append_event(log, TransferOut(entry_id="t1", at=T0, actor_id="u1", lot="L1",
                                        transfer_mg=D("500"), recipient_name="Reverse Dist."))
    totals = totals_by_lot(log)["L1"]
    assert (totals.administered, totals.wasted, totals.transferred) == (D("35.5"), D("14.5"),
                                                                         D("500"))
    assert balance_by_lot(log)["L1"] == D("450.0")


@pytest.mark.parametrize(
    ("event", "rule"),
    [
        (admin("a1", "1000.01"), "ledger.exceeds_on_hand"),
        (admin("a1", "-5"), "ledger.amount_negative"),
        (admin("a1", "0"), "ledger.amount_negative"),
        (admin("a1", "10", lot="NOPE"), "ledger.unknown_lot"),
        (admin("a1", "10", at=datetime(2027, 1, 2, 9)), "ledger.expired_lot"),
        (waste("w1", "5", witness=None), "ledger.witness_missing"),
        (waste("w1", "5", witness="u1"), "ledger.self_witness"),
        (waste("w1", "5", reauth=False), "ledger.witness_not_reauthenticated"),
        (receipt(entry_id="r1"), "ledger.duplicate_entry"),
    ],
)
def test_the_ledger_refuses_unsafe_entries(event, rule):
    assert rules_of(validate_event(LOG, event)) == [rule]
    with pytest.raises(LedgerRefused):
        append_event(LOG, event)


def test_float_amounts_are_refused_in_favour_of_decimal():
    ev = Administration(entry_id="a1", at=T0, actor_id="u1", lot="L1", dose_mg=12.5,
                        session_ref="s1", patient_ref="p1")
    assert rules_of(validate_event(LOG, ev)) == ["ledger.amount_type"]


def test_a_supplier_dea_number_with_a_bad_check_digit_is_a_warning():
    assert dea_number_checksum_ok("AB1234563") and not dea_number_checksum_ok("AB1234564")
    bad = Receipt(**{**receipt(entry_id="r2").__dict__, "supplier_dea_number": "AB1234564"})
    assert [f.rule for f in validate_event(LOG, bad)] == ["ledger.dea_number"]


def test_a_correction_is_a_new_entry_that_replaces_the_amount():
    log = append_event(LOG, admin("a1", "50"))
    fix = Correction(entry_id="c1", at=T0 + timedelta(hours=3), actor_id="u1", lot="L1",
                     refers_to="a1", corrected_mg=D("40"), reason="typed 50, gave 40")
    log = append_event(log, fix)
    assert balance_by_lot(log)["L1"] == D("960")
    assert log[1] == admin("a1", "50")  # the original entry is untouched
    assert [row[1:] for row in running_balance(log, "L1")] == [
        (D("1000"), D("1000")), (D("-50"), D("950")), (D("10"), D("960"))]


def test_a_correction_to_zero_reverses_the_entry():
    log = append_event(LOG, admin("a1", "50"))
    log = append_event(log, Correction(entry_id="c1", at=T0, actor_id="u1", lot="L1",
                                       refers_to="a1", corrected_mg=D("0"), reason="wrong lot"))
    assert balance_by_lot(log)["L1"] == D("1000")


@pytest.mark.parametrize(
    ("refers_to", "corrected", "reason", "rule"),
    [
        ("zzz", "1", "x", "ledger.correction_target"),
        ("a1", "1", "  ", "ledger.correction_reason"),
        ("a1", "2000", "x", "ledger.exceeds_on_hand"),
        ("r1", "5", "x", "ledger.correction_of_receipt"),
    ],
)
def test_bad_corrections_are_refused(refers_to, corrected, reason, rule):
    log = append_event(LOG, admin("a1", "50"))
    fix = Correction(entry_id="c1", at=T0, actor_id="u1", lot="L1", refers_to=refers_to,
                     corrected_mg=D(corrected), reason=reason)
    assert rule in rules_of(validate_event(log, fix))


def test_a_correction_of_a_correction_is_refused():
    log = append_event(LOG, admin("a1", "50"))
    log = append_event(log, Correction(entry_id="c1", at=T0, actor_id="u1", lot="L1",
                                       refers_to="a1", corrected_mg=D("40"), reason="x"))
    again = Correction(entry_id="c2", at=T0, actor_id="u1", lot="L1", refers_to="c1",
                       corrected_mg=D("30"), reason="x")
    assert "ledger.correction_of_correction" in rules_of(validate_event(log, again))


def test_loss_reduces_the_balance_and_has_deadlines():
    log = append_event(LOG, LossReport(entry_id="x1", at=T0, actor_id="u1", lot="L1",
                                       lost_mg=D("100"), kind="theft", discovered_on=T0.date()))
    assert balance_by_lot(log)["L1"] == D("900")


@pytest.mark.parametrize(
    ("discovered", "notice", "form_106"),
    [
        (date(2026, 1, 7), date(2026, 1, 8), date(2026, 2, 21)),  # Wednesday -> Thursday
        (date(2026, 1, 9), date(2026, 1, 12), date(2026, 2, 23)),  # Friday -> Monday
        (date(2026, 1, 10), date(2026, 1, 12), date(2026, 2, 24)),  # Saturday -> Monday
    ],
)
def test_loss_notice_is_due_the_next_business_day_and_form_106_within_45_days(
    discovered, notice, form_106
):
    deadlines = loss_report_deadlines(discovered)
    assert (deadlines.written_notice_by, deadlines.form_106_by) == (notice, form_106)
    assert all("1301.76" in s for s in deadlines.sources)


def test_holidays_are_skipped_for_the_written_notice():
    assert loss_report_deadlines(date(2025, 12, 24), holidays=[date(2025, 12, 25)]
                                 ).written_notice_by == date(2025, 12, 26)
    assert add_business_days(date(2026, 1, 9), 0) == date(2026, 1, 9)


def count(entry_id, mg, method="exact", at=T0 + timedelta(hours=5), kind="initial"):
    return InventoryCount(entry_id=entry_id, at=at, actor_id="u1", lot="L1", kind=kind,
                          counted_mg=D(mg), method=method)


def test_discrepancy_report_compares_counts_with_the_books():
    log = append_event(LOG, admin("a1", "100"))
    assert discrepancy_report(log, {"L1": D("900")})[0].finding.level is Level.OK
    row = discrepancy_report(log, {"L1": D("880")})[0]
    assert row.difference_mg == D("-20") and row.finding.rule == "ledger.discrepancy"


def test_discrepancy_report_uses_the_balance_at_each_count_and_lists_uncounted_lots():
    log = append_event(LOG, receipt(entry_id="r2", lot="L2"))
    log = append_event(log, count("k1", "995", method="estimated"))
    log = append_event(log, admin("a1", "100", at=T0 + timedelta(hours=6)))
    rows = discrepancy_report(log, [e for e in log if isinstance(e, InventoryCount)],
                              estimated_tolerance_mg=D("10"))
    assert [(r.lot, r.finding.rule) for r in rows] == [("L1", "ledger.count_matches"),
                                                        ("L2", "ledger.not_counted")]


def test_initial_inventory_is_due_on_the_first_receipt_then_biennially():
    federal = INVENTORY_POLICIES["US-federal"]
    first = inventory_due(LOG, T0.date() + timedelta(days=1), federal)
    assert (first.kind, first.due_on, first.overdue) == ("initial", T0.date(), True)
    log = append_event(LOG, count("k1", "1000"))
    nxt = inventory_due(log, date(2027, 6, 1), federal)
    assert (nxt.kind, nxt.due_on, nxt.overdue) == ("biennial", date(2028, 1, 5), False)
    iowa = inventory_due(log, date(2027, 6, 1), INVENTORY_POLICIES["US-IA"])
    assert (iowa.kind, iowa.due_on, iowa.overdue) == ("annual", date(2027, 1, 5), True)


def test_iowa_requires_exact_counts():
    assert check_count_method(count("k1", "1", method="estimated"), INVENTORY_POLICIES["US-IA"])
    assert not check_count_method(count("k1", "1", method="estimated"),
                                  INVENTORY_POLICIES["US-federal"])


def _count_lot(entry_id, lot, mg, day_offset=0, kind="biennial"):
    return InventoryCount(entry_id=entry_id, at=T0 + timedelta(days=day_offset, hours=5),
                          actor_id="u1", lot=lot, kind=kind, counted_mg=D(mg), method="exact")


def test_a_biennial_inventory_is_complete_only_when_every_lot_with_stock_is_counted():
    # issue 13: counting one lot of two used to mark the whole inventory as done
    federal = INVENTORY_POLICIES["US-federal"]
    log = append_event(LOG, receipt("r2", lot="L2"))
    log = append_event(log, _count_lot("k1", "L1", "1000", day_offset=1, kind="initial"))
    partial = inventory_due(log, T0.date() + timedelta(days=2), federal)
    assert (partial.kind, partial.last_on, partial.overdue) == ("initial", None, True)
    assert partial.partial_on == T0.date() + timedelta(days=1) and partial.missing_lots == ("L2",)
    log = append_event(log, _count_lot("k2", "L2", "1000", day_offset=1, kind="initial"))
    done = inventory_due(log, T0.date() + timedelta(days=2), federal)
    assert done.kind == "biennial" and done.last_on == T0.date() + timedelta(days=1)
    assert done.missing_lots == () and done.partial_on is None
    # two years on, a biennial count of L1 only does not reset the clock
    log = append_event(log, _count_lot("k3", "L1", "1000", day_offset=730))
    later = inventory_due(log, T0.date() + timedelta(days=740), federal)
    assert later.last_on == T0.date() + timedelta(days=1) and later.overdue
    assert later.missing_lots == ("L2",)


def test_spot_counts_and_empty_lots_do_not_decide_an_inventory():
    federal = INVENTORY_POLICIES["US-federal"]
    log = append_event(LOG, receipt("r2", lot="L2"))
    log = append_event(log, _count_lot("s1", "L1", "1000", kind="other"))
    log = append_event(log, _count_lot("s2", "L2", "1000", kind="other"))
    assert inventory_due(log, T0.date(), federal).kind == "initial"  # spot checks only
    log = append_event(log, TransferOut(entry_id="t1", at=T0 + timedelta(hours=1),
                                        actor_id="u1", lot="L2", transfer_mg=D("1000"),
                                        recipient_name="Other clinic"))
    log = append_event(log, _count_lot("k1", "L1", "1000", day_offset=1, kind="initial"))
    done = inventory_due(log, T0.date() + timedelta(days=2), federal)
    assert done.last_on == T0.date() + timedelta(days=1)  # L2 holds nothing: not required
