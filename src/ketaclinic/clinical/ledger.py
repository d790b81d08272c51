"""Controlled-substance ledger (Schedule III ketamine and esketamine): an append-only event log.

Events are never edited or deleted: a :class:`Correction` is a new entry that refers to an
earlier one and states its corrected amount. Balances are derived from the log. Amounts are
:class:`~decimal.Decimal` milligrams. Sources: 21 CFR 1304.04 (retention), 1304.11 (inventory),
1304.21/1304.22(c) (receipt, administration and disposal records), 1301.76(b) (theft and
significant loss: written notice within one business day, DEA Form 106 within 45 days).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from ketaclinic.clinical.rules import Cited, ClinicalInputError, Finding, Grade, Level

CFR_RECORDS = "21 CFR 1304.21 and 1304.22(c): receipt, administration and disposal records"
CFR_INVENTORY = ("21 CFR 1304.11: initial and biennial inventory; opened CIII-V containers "
                 "may be estimated")
CFR_LOSS = "21 CFR 1301.76(b): theft or significant loss"
WITNESS_SOURCE = ("two-person witnessed waste: state/institutional rule (S); federal: record "
                  "wastage in the administration record (U)")
NOTICE_BUSINESS_DAYS = Cited(1, "business day", CFR_LOSS + ": written notice to the DEA Field "
                             "Division within one business day of discovery", Grade.CONFIRMED)
FORM_106_DAYS = Cited(45, "d", CFR_LOSS + ": DEA Form 106 (electronic) within 45 days of "
                      "discovery (since 24 Jul 2023)", Grade.CONFIRMED)


@dataclass(frozen=True, kw_only=True)
class LedgerEvent:
    """Common fields of every ledger entry."""

    entry_id: str
    at: datetime
    actor_id: str
    lot: str


@dataclass(frozen=True, kw_only=True)
class Receipt(LedgerEvent):
    drug: str
    supplier_name: str
    supplier_address: str
    supplier_dea_number: str
    expiry: date
    containers: int
    volume_ml_per_container: Decimal
    concentration_mg_per_ml: Decimal
    dosage_form: str = "injection solution"

    @property
    def received_mg(self) -> Decimal:
        return self.containers * self.volume_ml_per_container * self.concentration_mg_per_ml


@dataclass(frozen=True, kw_only=True)
class Administration(LedgerEvent):
    dose_mg: Decimal
    session_ref: str
    patient_ref: str = ""


@dataclass(frozen=True, kw_only=True)
class Waste(LedgerEvent):
    waste_mg: Decimal
    witness_id: str | None
    witness_reauthenticated: bool
    manner: str = "wasted per clinic procedure"
    session_ref: str = ""


@dataclass(frozen=True, kw_only=True)
class TransferOut(LedgerEvent):
    transfer_mg: Decimal
    recipient_name: str
    recipient_address: str = ""
    recipient_dea_number: str = ""


@dataclass(frozen=True, kw_only=True)
class LossReport(LedgerEvent):
    lost_mg: Decimal
    kind: str  # "theft" | "significant_loss"
    discovered_on: date


@dataclass(frozen=True, kw_only=True)
class InventoryCount(LedgerEvent):
    kind: str  # "initial" | "biennial" | "annual" | "other"
    counted_mg: Decimal
    method: str = "exact"  # "exact" | "estimated"


@dataclass(frozen=True, kw_only=True)
class Correction(LedgerEvent):
    refers_to: str
    corrected_mg: Decimal
    reason: str


#: event type -> (name of its amount field, sign of its effect on the balance)
_AMOUNT = {
    Administration: ("dose_mg", -1),
    Waste: ("waste_mg", -1),
    TransferOut: ("transfer_mg", -1),
    LossReport: ("lost_mg", -1),
    InventoryCount: ("counted_mg", 0),
}
_CATEGORY = {Receipt: "received", Administration: "administered", Waste: "wasted",
             TransferOut: "transferred", LossReport: "lost"}


def amount_mg(event: LedgerEvent) -> Decimal:
    """The original amount an event states (received mg for a receipt)."""
    if isinstance(event, Receipt):
        return event.received_mg
    if isinstance(event, Correction):
        return event.corrected_mg
    return getattr(event, _AMOUNT[type(event)][0])


def _sign(event: LedgerEvent) -> int:
    return 1 if isinstance(event, Receipt) else _AMOUNT[type(event)][1]


def effective_amounts(events: Iterable[LedgerEvent]) -> dict[str, Decimal]:
    """entry_id -> amount after corrections (the last correction of an entry wins)."""
    out: dict[str, Decimal] = {}
    for ev in events:
        if isinstance(ev, Correction):
            if ev.refers_to in out:
                out[ev.refers_to] = ev.corrected_mg
        else:
            out[ev.entry_id] = amount_mg(ev)
    return out


@dataclass(frozen=True)
class LotTotals:
    received: Decimal = Decimal(0)
    administered: Decimal = Decimal(0)
    wasted: Decimal = Decimal(0)
    transferred: Decimal = Decimal(0)
    lost: Decimal = Decimal(0)

    @property
    def on_hand(self) -> Decimal:
        return self.received - self.administered - self.wasted - self.transferred - self.lost


def totals_by_lot(events: Sequence[LedgerEvent]) -> dict[str, LotTotals]:
    """Per-lot totals by category, after corrections."""
    effective = effective_amounts(events)
    sums: dict[str, dict[str, Decimal]] = {}
    for ev in events:
        category = _CATEGORY.get(type(ev))
        lot = sums.setdefault(ev.lot, {})
        if category is not None:
            lot[category] = lot.get(category, Decimal(0)) + effective[ev.entry_id]
    received_lots = {e.lot for e in events if isinstance(e, Receipt)}
    return {lot: LotTotals(**parts) for lot, parts in sums.items() if lot in received_lots}


def balance_by_lot(events: Sequence[LedgerEvent]) -> dict[str, Decimal]:
    """On-hand mg per lot: received - administered - wasted - transferred - lost."""
    return {lot: t.on_hand for lot, t in totals_by_lot(events).items()}


def running_balance(events: Sequence[LedgerEvent], lot: str) -> list[tuple[str, Decimal, Decimal]]:
    """(entry_id, change mg, balance mg) for each entry of a lot, in log order."""
    current: dict[str, Decimal] = {}
    signs: dict[str, int] = {}
    balance, rows = Decimal(0), []
    for ev in events:
        if ev.lot != lot:
            continue
        if isinstance(ev, Correction):
            if ev.refers_to not in current:
                continue
            delta = signs[ev.refers_to] * (ev.corrected_mg - current[ev.refers_to])
            current[ev.refers_to] = ev.corrected_mg
        else:
            signs[ev.entry_id], current[ev.entry_id] = _sign(ev), amount_mg(ev)
            delta = signs[ev.entry_id] * current[ev.entry_id]
        balance += delta
        rows.append((ev.entry_id, delta, balance))
    return rows


def dea_number_checksum_ok(dea_number: str) -> bool:
    """DEA registration number check digit: (d1+d3+d5) + 2*(d2+d4+d6), last digit = d7."""
    text = dea_number.strip().upper()
    if (len(text) != 9 or not text.isascii() or not text[:2].isalpha()
            or not text[2:].isdigit()):  # ASCII: "١".isdigit() and int("١") is 1
        return False
    d = [int(c) for c in text[2:]]
    return (d[0] + d[2] + d[4] + 2 * (d[1] + d[3] + d[5])) % 10 == d[6]


def _hard(rule: str, message: str, source: str = CFR_RECORDS, **values) -> Finding:
    return Finding(f"ledger.{rule}", Level.HARD, message, source, values)


def _check_amounts(ev: LedgerEvent) -> list[Finding]:
    values: list[tuple[str, object]] = []
    if isinstance(ev, Receipt):
        values = [("containers", ev.containers),
                  ("volume_ml_per_container", ev.volume_ml_per_container),
                  ("concentration_mg_per_ml", ev.concentration_mg_per_ml)]
    elif isinstance(ev, Correction):
        values = [("corrected_mg", ev.corrected_mg)]
    else:
        values = [(_AMOUNT[type(ev)][0], amount_mg(ev))]
    out = []
    zero_ok = isinstance(ev, InventoryCount | Correction)
    for name, value in values:
        if isinstance(value, float) or not isinstance(value, int | Decimal):
            kind = type(value).__name__
            out.append(_hard("amount_type", f"{name} must be a Decimal, not {kind}"))
        elif value < 0 or (value == 0 and not zero_ok):
            out.append(_hard("amount_negative", f"{name} must be positive, got {value}",
                             **{name: str(value)}))
    return out


def _check_receipt(ev: Receipt) -> list[Finding]:
    out = []
    for name in ("drug", "supplier_name", "supplier_address", "supplier_dea_number"):
        if not getattr(ev, name).strip():
            out.append(_hard("receipt_field", f"receipt needs {name.replace('_', ' ')}"))
    if ev.supplier_dea_number.strip() and not dea_number_checksum_ok(ev.supplier_dea_number):
        out.append(Finding("ledger.dea_number", Level.SOFT,
                           f"supplier DEA number {ev.supplier_dea_number!r} fails the check digit",
                           CFR_RECORDS))
    return out


def _check_specific(ev: LedgerEvent, receipts: dict[str, Receipt]) -> list[Finding]:
    out = []
    if isinstance(ev, Administration):
        expiry = receipts[ev.lot].expiry
        if ev.at.date() > expiry:
            out.append(_hard("expired_lot", f"lot {ev.lot} expired on {expiry}", lot=ev.lot))
        if not ev.session_ref.strip():
            out.append(_hard("session_ref", "administration needs a session reference"))
        if not ev.patient_ref.strip():
            out.append(_hard("patient_ref", "administration needs the patient it was given to"))
    if isinstance(ev, Waste):
        if not ev.witness_id:
            out.append(_hard("witness_missing", "waste needs a witness", WITNESS_SOURCE))
        elif ev.witness_id == ev.actor_id:
            out.append(_hard("self_witness", "the witness must be another user", WITNESS_SOURCE))
        elif not ev.witness_reauthenticated:
            out.append(_hard("witness_not_reauthenticated",
                             "the witness must re-authenticate before the waste is recorded",
                             WITNESS_SOURCE))
    if isinstance(ev, LossReport) and ev.kind not in ("theft", "significant_loss"):
        out.append(_hard("loss_kind", "loss kind must be theft or significant_loss", CFR_LOSS))
    if isinstance(ev, InventoryCount) and ev.method not in ("exact", "estimated"):
        out.append(_hard("count_method", "count method must be exact or estimated", CFR_INVENTORY))
    return out


def _check_correction(events: Sequence[LedgerEvent], ev: Correction) -> list[Finding]:
    target = next((e for e in events if e.entry_id == ev.refers_to), None)
    if target is None:
        return [_hard("correction_target", f"no entry {ev.refers_to!r} to correct")]
    out = []
    if isinstance(target, Correction):
        out.append(_hard("correction_of_correction",
                         "correct the original entry, not a correction"))
    if target.lot != ev.lot:
        out.append(_hard("correction_lot", "a correction must name the lot of the entry"))
    if isinstance(target, Receipt):
        out.append(_hard("correction_of_receipt", "correct a receipt by a new receipt or a "
                         "transfer; received containers are a signed record"))
    if not ev.reason.strip():
        out.append(_hard("correction_reason", "a correction needs a reason"))
    return out


def validate_event(events: Sequence[LedgerEvent], new_event: LedgerEvent) -> list[Finding]:
    """Findings for appending ``new_event`` to the log; any HARD finding refuses it.

    Refused: duplicate entry id, non-positive or non-Decimal amounts, unknown lot, expired lot
    (administration), more than on hand, waste without a witness, self-witnessed or without the
    witness re-authenticating, corrections of unknown entries, corrections without a reason.
    """
    if any(e.entry_id == new_event.entry_id for e in events):
        return [_hard("duplicate_entry", f"entry {new_event.entry_id!r} already exists")]
    if not new_event.actor_id.strip():
        return [_hard("actor", "every entry needs the acting user")]
    out = _check_amounts(new_event)
    receipts = {e.lot: e for e in events if isinstance(e, Receipt)}
    if isinstance(new_event, Receipt):
        return out + _check_receipt(new_event)
    if new_event.lot not in receipts:
        return out + [_hard("unknown_lot", f"no receipt for lot {new_event.lot!r}")]
    if isinstance(new_event, Correction):
        out += _check_correction(events, new_event)
    if isinstance(new_event, Administration) and any(
            isinstance(e, Administration) and e.session_ref == new_event.session_ref
            for e in events):
        out.append(_hard("duplicate_administration", f"session {new_event.session_ref} already "
                         "has its administration: correct it with a correction entry"))
    out += _check_specific(new_event, receipts)
    if out:
        return out
    return _check_balance(events, new_event)


def _signed_delta(events: Sequence[LedgerEvent], new_event: LedgerEvent) -> Decimal:
    """Change of the lot balance that appending ``new_event`` would cause."""
    if not isinstance(new_event, Correction):
        return _sign(new_event) * amount_mg(new_event)
    target = next(e for e in events if e.entry_id == new_event.refers_to)
    current = effective_amounts(e for e in events if e.lot == target.lot)[target.entry_id]
    return _sign(target) * (new_event.corrected_mg - current)


def _check_balance(events: Sequence[LedgerEvent], new_event: LedgerEvent) -> list[Finding]:
    before = balance_by_lot(events).get(new_event.lot, Decimal(0))
    after = before + _signed_delta(events, new_event)
    if after < 0:
        return [_hard("exceeds_on_hand",
                      f"lot {new_event.lot} has {before} mg on hand; this entry would leave "
                      f"{after} mg", lot=new_event.lot, on_hand_mg=str(before))]
    if events and new_event.at < events[-1].at:
        return [Finding("ledger.late_entry", Level.INFO,
                        "entry dated before the previous entry (late entry)", CFR_RECORDS)]
    return []


class LedgerRefused(ClinicalInputError):
    """An entry the ledger refuses; ``findings`` say why."""

    def __init__(self, findings: list[Finding]):
        super().__init__("; ".join(f.message for f in findings))
        self.findings = findings


def append_event(events: Sequence[LedgerEvent], new_event: LedgerEvent) -> tuple[LedgerEvent, ...]:
    """The log with ``new_event`` appended, or :class:`LedgerRefused` on any HARD finding."""
    hard = [f for f in validate_event(events, new_event) if f.level is Level.HARD]
    if hard:
        raise LedgerRefused(hard)
    return (*events, new_event)
