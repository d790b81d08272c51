"""Ledger reports: count discrepancies, inventory due dates, theft/loss reporting deadlines."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from ketaclinic.clinical.ledger import (
    CFR_INVENTORY,
    CFR_LOSS,
    FORM_106_DAYS,
    NOTICE_BUSINESS_DAYS,
    InventoryCount,
    LedgerEvent,
    Receipt,
    balance_by_lot,
    effective_amounts,
)
from ketaclinic.clinical.rules import Cited, ClinicalInputError, Finding, Grade, Level


@dataclass(frozen=True)
class Discrepancy:
    lot: str
    expected_mg: Decimal
    counted_mg: Decimal | None
    difference_mg: Decimal | None  # counted - expected
    method: str
    finding: Finding


def _finding(lot: str, expected: Decimal, counted: Decimal | None, method: str,
             tolerance: Decimal) -> Finding:
    values = {"lot": lot, "expected_mg": str(expected), "counted_mg": str(counted)}
    if counted is None:
        return Finding("ledger.not_counted", Level.SOFT,
                       f"lot {lot}: {expected} mg on the books but not counted", CFR_INVENTORY,
                       values)
    diff = counted - expected
    allowed = tolerance if method == "estimated" else Decimal(0)
    if abs(diff) <= allowed:
        return Finding("ledger.count_matches", Level.OK, f"lot {lot}: count matches", CFR_INVENTORY,
                       values)
    return Finding("ledger.discrepancy", Level.SOFT,
                   f"lot {lot}: counted {counted} mg, expected {expected} mg ({diff:+} mg); "
                   "investigate; a theft or significant loss must be reported",
                   f"{CFR_INVENTORY}; {CFR_LOSS}", {**values, "difference_mg": str(diff)})


def discrepancy_report(
    events: Sequence[LedgerEvent],
    counts: Mapping[str, Decimal] | Iterable[InventoryCount],
    estimated_tolerance_mg: Decimal = Decimal(0),
) -> list[Discrepancy]:
    """Compare counts with the books.

    ``counts`` is either lot -> counted mg (compared with the current balance, method exact)
    or count events (each compared with the balance of the entries logged before it, with
    corrections of the count applied). Lots on the books with stock but no count are listed.
    """
    if isinstance(counts, Mapping):
        rows = [(lot, mg, "exact", balance_by_lot(events)) for lot, mg in counts.items()]
    else:
        effective = effective_amounts(events)
        rows = []
        for count in counts:
            idx = next((i for i, e in enumerate(events) if e.entry_id == count.entry_id), None)
            prior = events[:idx] if idx is not None else events
            mg = effective.get(count.entry_id, count.counted_mg)
            rows.append((count.lot, mg, count.method, balance_by_lot(prior)))
    report, counted_lots = [], set()
    for lot, mg, method, books in rows:
        counted_lots.add(lot)
        expected = books.get(lot, Decimal(0))
        finding = _finding(lot, expected, mg, method, estimated_tolerance_mg)
        report.append(Discrepancy(lot, expected, mg, mg - expected, method, finding))
    for lot, on_hand in sorted(balance_by_lot(events).items()):
        if lot not in counted_lots and on_hand > 0:
            report.append(Discrepancy(lot, on_hand, None, None, "none",
                                      _finding(lot, on_hand, None, "none", Decimal(0))))
    return report


@dataclass(frozen=True)
class InventoryPolicy:
    """How often a full inventory is due and whether opened containers may be estimated."""

    name: str
    interval_years: int
    estimates_allowed: bool
    source: Cited


INVENTORY_POLICIES = {
    "US-federal": InventoryPolicy("US-federal", 2, True, Cited(
        2, "years", CFR_INVENTORY + " (biennial)", Grade.CONFIRMED)),
    "US-IA": InventoryPolicy("US-IA", 1, False, Cited(
        1, "years", "Iowa: annual exact-count inventory (protocols.md section 9)",
        Grade.CONFIRMED)),
}


@dataclass(frozen=True)
class InventoryDue:
    kind: str  # "initial" or the policy's periodic kind
    due_on: date | None
    overdue: bool
    last_on: date | None  # the last COMPLETE inventory (every lot with stock counted)
    source: str
    # the latest inventory that left lots with stock uncounted (it does not count as done)
    partial_on: date | None = None
    missing_lots: tuple[str, ...] = ()


#: count kinds that make up a full inventory (an "other" count is a spot check)
FULL_INVENTORY_KINDS = ("initial", "biennial", "annual")


def inventory_days(events: Sequence[LedgerEvent]) -> list[tuple[date, tuple[str, ...]]]:
    """Each day with full-inventory counts and the lots with stock it left uncounted.

    An inventory is complete only when every lot with stock on the books when it was taken
    (the entries logged up to its last count that day) has a count of an inventory kind
    that day (21 CFR 1304.11(a): the inventory includes all stocks of controlled substances).
    """
    by_day: dict[date, list[int]] = {}
    for i, e in enumerate(events):
        if isinstance(e, InventoryCount) and e.kind in FULL_INVENTORY_KINDS:
            by_day.setdefault(e.at.date(), []).append(i)
    out = []
    for day, idxs in sorted(by_day.items()):
        counted = {events[i].lot for i in idxs}
        books = balance_by_lot(events[: max(idxs) + 1])
        missing = tuple(sorted(lot for lot, mg in books.items() if mg > 0 and lot not in counted))
        out.append((day, missing))
    return out


def _add_years(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


def inventory_due(
    events: Sequence[LedgerEvent], today: date, policy: InventoryPolicy
) -> InventoryDue:
    """When the next full inventory is due.

    No complete inventory yet: the initial inventory is due on the day of the first receipt
    (21 CFR 1304.11(b)). Afterwards every ``policy.interval_years`` from the last complete
    inventory. An inventory counts only when every lot with stock was counted (see
    :func:`inventory_days`); a partial one is reported in ``partial_on`` / ``missing_lots``
    and does not move the due date. Spot counts (kind "other") are not inventories.
    """
    days = inventory_days(events)
    counts = [day for day, missing in days if not missing]
    partial = [(day, missing) for day, missing in days if missing and (
        not counts or day > counts[-1])]
    partial_on, missing_lots = partial[-1] if partial else (None, ())
    receipts = sorted(e.at.date() for e in events if isinstance(e, Receipt))
    kind = "biennial" if policy.interval_years == 2 else "annual"
    if not counts:
        due = receipts[0] if receipts else None
        return InventoryDue("initial", due, due is not None and today > due, None,
                            "21 CFR 1304.11(b): initial inventory when activity begins",
                            partial_on, missing_lots)
    due = _add_years(counts[-1], policy.interval_years)
    return InventoryDue(kind, due, today > due, counts[-1], policy.source.source,
                        partial_on, missing_lots)


def check_count_method(count: InventoryCount, policy: InventoryPolicy) -> list[Finding]:
    """A HARD finding when the policy requires exact counts and the count was estimated."""
    if count.method == "estimated" and not policy.estimates_allowed:
        return [Finding("ledger.exact_count_required", Level.HARD,
                        f"{policy.name} requires exact counts", policy.source.source)]
    return []


@dataclass(frozen=True)
class LossDeadlines:
    discovered_on: date
    written_notice_by: date
    form_106_by: date
    sources: tuple[str, ...]


def add_business_days(day: date, n: int, holidays: Iterable[date] = ()) -> date:
    """``day`` plus ``n`` business days, skipping Saturdays, Sundays and ``holidays``."""
    if n < 0:
        raise ClinicalInputError("business days must not be negative")
    closed = set(holidays)
    while n > 0:
        day += timedelta(days=1)
        if day.weekday() < 5 and day not in closed:
            n -= 1
    return day


def loss_report_deadlines(discovered_on: date, holidays: Iterable[date] = ()) -> LossDeadlines:
    """Deadlines after discovering a theft or significant loss (21 CFR 1301.76(b)).

    >>> loss_report_deadlines(date(2026, 1, 2)).written_notice_by  # a Friday
    datetime.date(2026, 1, 5)
    """
    return LossDeadlines(
        discovered_on,
        add_business_days(discovered_on, int(NOTICE_BUSINESS_DAYS.value), holidays),
        discovered_on + timedelta(days=int(FORM_106_DAYS.value)),
        (NOTICE_BUSINESS_DAYS.source, FORM_106_DAYS.source),
    )
