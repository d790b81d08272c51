"""The controlled-substance ledger on the database: append-only entries checked by the core.

There is deliberately no method that updates or deletes a ``LedgerEntry``: a mistake is fixed
by a correction entry that refers to the original. Every append is audited. Appends are
serialised (the audit head row is locked first) so two concurrent entries cannot both spend
the same stock.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import TypedDict

from sqlalchemy import select
from sqlalchemy.orm import Session

from ketaclinic.clinical import ledger as core
from ketaclinic.clinical.ledger_reports import (
    INVENTORY_POLICIES,
    discrepancy_report,
    inventory_due,
    loss_report_deadlines,
)
from ketaclinic.schemas_chair import (
    CorrectionCreate,
    CountCreate,
    LossCreate,
    ReceiptCreate,
    TransferCreate,
    WasteCreate,
)
from ketaclinic.services.accounts.auth import AuthService
from ketaclinic.services.accounts.permissions import Perm, allowed
from ketaclinic.services.audit.trail import Actor
from ketaclinic.services.context import Context
from ketaclinic.services.dosing.treatment_chain import order_states
from ketaclinic.services.errors import InvalidInput, NotAuthenticated, NotFound
from ketaclinic.services.paging import Paged, page_list, page_rows
from ketaclinic.services.unit_of_work import UnitOfWork
from ketaclinic.store.tables import AuditHead, User
from ketaclinic.store.tables_chair import LedgerEntry

KINDS = ("receipt", "administration", "waste", "transfer", "loss", "count", "correction")
POLICY = INVENTORY_POLICIES["US-federal"]


@dataclass(frozen=True)
class LotRow:
    lot: str
    drug: str
    expiry: dt.date | None
    received: Decimal
    administered: Decimal
    wasted: Decimal
    transferred: Decimal
    lost: Decimal
    on_hand: Decimal


def _who(user_id: int | None) -> str:
    return str(user_id) if user_id is not None else "system"


class _EventBase(TypedDict):
    """The fields every core ledger event shares."""

    entry_id: str
    at: dt.datetime
    actor_id: str
    lot: str


def to_event(r: LedgerEntry) -> core.LedgerEvent:
    """The core's view of a stored entry (entry_id is the row id as text)."""
    base: _EventBase = {"entry_id": str(r.id), "at": r.at, "actor_id": _who(r.actor_id),
                        "lot": r.lot}
    amount = Decimal(r.amount_mg)
    if r.kind == "receipt":
        return core.Receipt(**base, drug=r.drug, supplier_name=r.supplier_name,
                            supplier_address=r.supplier_address,
                            supplier_dea_number=r.supplier_dea_number,
                            expiry=r.expiry or dt.date.max, containers=int(r.containers or 0),
                            volume_ml_per_container=Decimal(r.volume_ml_per_container or 0),
                            concentration_mg_per_ml=Decimal(r.concentration_mg_per_ml or 0))
    if r.kind == "administration":
        return core.Administration(**base, dose_mg=amount, session_ref=str(r.session_id or ""),
                                   patient_ref=str(r.patient_id or ""))
    if r.kind == "waste":
        return core.Waste(**base, waste_mg=amount, witness_id=_who(r.witness_id)
                          if r.witness_id else None, witness_reauthenticated=True,
                          session_ref=str(r.session_id or ""))
    if r.kind == "transfer":
        return core.TransferOut(**base, transfer_mg=amount, recipient_name=r.counterparty)
    if r.kind == "loss":
        return core.LossReport(**base, lost_mg=amount, kind=r.subkind,
                               discovered_on=r.discovered_on or r.at.date())
    if r.kind == "count":
        return core.InventoryCount(**base, kind=r.subkind, counted_mg=amount, method=r.method)
    return core.Correction(**base, refers_to=str(r.refers_to_id), corrected_mg=amount,
                           reason=r.note)


def lock_ledger(s: Session) -> None:
    """Serialise ledger appends (PostgreSQL row lock; SQLite already holds the write lock)."""
    s.execute(select(AuditHead.id).where(AuditHead.id == 1).with_for_update())


def lot_events(s: Session, lot: str) -> list[core.LedgerEvent]:
    rows = s.execute(select(LedgerEntry).where(LedgerEntry.lot == lot).order_by(
        LedgerEntry.id)).scalars()
    return [to_event(r) for r in rows]


def drug_matches(drug: str, treatment: str) -> bool:
    text = drug.lower()
    if treatment == "esketamine":
        return "esketamine" in text
    return "ketamine" in text and "esketamine" not in text


class LedgerService:
    def __init__(self, ctx: Context, auth: AuthService) -> None:
        self.ctx = ctx
        self.auth = auth

    # --- appending ----------------------------------------------------------------------
    @staticmethod
    def append(uow: UnitOfWork, row: LedgerEntry) -> LedgerEntry:
        """Validate ``row`` with the core against its lot's log and insert it (in the caller's
        open unit, audited as ``ledger.<kind>``). Refusals raise InvalidInput with the core's
        explanation."""
        s = uow.session
        lock_ledger(s)
        events = lot_events(s, row.lot)
        if row.kind != "receipt" and not events:
            raise InvalidInput(f"no receipt for lot {row.lot!r}")
        if row.kind == "receipt":
            row.amount_mg = Decimal(row.containers or 0) * Decimal(
                row.volume_ml_per_container or 0) * Decimal(row.concentration_mg_per_ml or 0)
            row.amount_mg = row.amount_mg.quantize(Decimal("0.001"))
            if events:
                first = next(e for e in events if isinstance(e, core.Receipt))
                if first.drug != row.drug:
                    raise InvalidInput(f"lot {row.lot} is already on the books as {first.drug}")
        if row.kind != "receipt" and not row.drug:
            row.drug = next((e.drug for e in events if isinstance(e, core.Receipt)), "")
        row.actor_id = uow.actor.user_id
        row.created_at = uow.now
        probe = replace(to_event(row), entry_id="__new__")
        try:
            core.append_event(events, probe)  # the core decides; a refusal saves nothing
        except core.LedgerRefused as exc:
            raise InvalidInput(f"ledger refused the entry: {exc}") from exc
        s.add(row)
        s.flush()
        uow.audit(f"ledger.{row.kind}", patient_id=row.patient_id,
                  detail=f"entry {row.id} lot {row.lot} {row.amount_mg} mg")
        return row

    def _unit(self, actor: Actor, kind: str, patient_id: int | None = None) -> UnitOfWork:
        return self.ctx.unit_of_work(actor, f"ledger.{kind}", perm=Perm.LEDGER_WRITE,
                                     patient_id=patient_id)

    @classmethod
    def _write(cls, work: UnitOfWork, row: LedgerEntry) -> int:
        """Append ``row`` in ``work`` (its permission checked); a refusal is audited."""
        try:
            with work:
                return cls.append(work, row).id
        except InvalidInput as exc:
            work.record_failure("refused", patient_id=row.patient_id, detail=str(exc)[:200])
            raise

    def record_receipt(self, actor: Actor, data: ReceiptCreate) -> int:
        work = self._unit(actor, "receipt")
        return self._write(work, LedgerEntry(
            kind="receipt", lot=data.lot, drug=data.drug, at=work.now, amount_mg=0,
            supplier_name=data.supplier_name, supplier_address=data.supplier_address,
            supplier_dea_number=data.supplier_dea_number.strip().upper(), expiry=data.expiry,
            containers=data.containers, volume_ml_per_container=data.volume_ml_per_container,
            concentration_mg_per_ml=data.concentration_mg_per_ml, note=data.note))

    def witness(self, actor: Actor, username: str, password: str) -> int:
        """Re-authenticate the witness: another active user who may handle the ledger."""
        try:
            witness = self.auth.reauthenticate(username, password)
        except NotAuthenticated as exc:
            self.ctx.record_failure(actor, "ledger.witness", "denied",
                                    detail="witness credentials were not accepted")
            raise InvalidInput("witness: the username or password was not accepted") from exc
        if witness.id == actor.user_id:
            raise InvalidInput("witness: the witness must be another person than you")
        if not allowed(witness.actor, Perm.LEDGER_WRITE):
            raise InvalidInput("witness: this user's role may not witness ledger entries")
        return witness.id

    def record_waste(self, actor: Actor, data: WasteCreate,
                     patient_id: int | None = None) -> int:
        work = self._unit(actor, "waste", patient_id)
        witness_id = self.witness(actor, data.witness_username, data.witness_password)
        return self._write(work, LedgerEntry(
            kind="waste", lot=data.lot, at=work.now, amount_mg=data.waste_mg,
            witness_id=witness_id, session_id=data.session_id, patient_id=patient_id,
            note=data.note))

    def record_transfer(self, actor: Actor, data: TransferCreate) -> int:
        work = self._unit(actor, "transfer")
        return self._write(work, LedgerEntry(
            kind="transfer", lot=data.lot, at=work.now, amount_mg=data.transfer_mg,
            counterparty=data.recipient, note=data.note))

    def record_loss(self, actor: Actor, data: LossCreate) -> int:
        work = self.ctx.unit_of_work(actor, "ledger.loss")
        if data.discovered_on > work.today:  # a bad date is a 422 before the permission
            raise InvalidInput("discovered_on: is in the future")
        work.require(Perm.LEDGER_WRITE)
        return self._write(work, LedgerEntry(
            kind="loss", lot=data.lot, at=work.now, amount_mg=data.lost_mg,
            subkind=data.kind, discovered_on=data.discovered_on, note=data.note))

    def record_count(self, actor: Actor, data: CountCreate) -> int:
        work = self._unit(actor, "count")
        return self._write(work, LedgerEntry(
            kind="count", lot=data.lot, at=work.now, amount_mg=data.counted_mg,
            subkind=data.kind, method=data.method, note=data.note))

    def record_correction(self, actor: Actor, data: CorrectionCreate) -> int:
        work = self.ctx.unit_of_work(actor, "ledger.correction")
        with work:  # the entry corrected names its lot and the patient to check for
            target = work.session.get(LedgerEntry, data.refers_to_id)
            if target is None:
                raise NotFound("no such ledger entry")
            lot, patient_id = target.lot, target.patient_id
        work.require(Perm.LEDGER_WRITE, patient_id=patient_id)
        return self._write(work, LedgerEntry(
            kind="correction", lot=lot, at=work.now, amount_mg=data.corrected_mg,
            refers_to_id=data.refers_to_id, patient_id=patient_id, note=data.reason))

    # --- reading ------------------------------------------------------------------------
    def _all_events(self, s: Session) -> tuple[list[LedgerEntry], list[core.LedgerEvent]]:
        rows = list(s.execute(select(LedgerEntry).order_by(LedgerEntry.id)).scalars())
        return rows, [to_event(r) for r in rows]

    def lots(self, actor: Actor, treatment: str | None = None, limit: int | None = None,
             offset: int = 0) -> Paged[LotRow]:
        """Lots with their balances, by lot number. A balance folds every entry of its lot,
        so the window is taken after the fold (in Python), not in SQL."""
        with self.ctx.unit_of_work(actor, "ledger.view", perm=Perm.LEDGER_READ) as uow:
            rows, events = self._all_events(uow.session)
        return page_list(self._lot_rows(rows, events, treatment), limit, offset)

    def _lot_rows(self, rows: list[LedgerEntry], events: list[core.LedgerEvent],
                  treatment: str | None) -> list[LotRow]:
        receipts = {r.lot: r for r in rows if r.kind == "receipt"}
        out = []
        for lot, t in sorted(core.totals_by_lot(events).items()):
            first = receipts[lot]
            if treatment and not drug_matches(first.drug, treatment):
                continue
            out.append(LotRow(lot, first.drug, first.expiry, t.received, t.administered,
                              t.wasted, t.transferred, t.lost, t.on_hand))
        return out

    def overview(self, actor: Actor, limit: int = 100) -> dict:
        """Lots with balances, recent entries, discrepancies, inventory and loss deadlines."""
        with self.ctx.unit_of_work(actor, "ledger.view", perm=Perm.LEDGER_READ) as uow:
            s, today = uow.session, uow.today
            rows, events = self._all_events(s)
            names = dict(s.execute(select(User.id, User.username)).all())
            orders = order_states(s, {r.session_id for r in rows[-limit:] if r.session_id},
                                  uow.now)
            uow.audit(detail=f"{len(rows)} entries")
        counts = [e for e in events if isinstance(e, core.InventoryCount)]
        losses = [r for r in rows if r.kind == "loss"]
        return {
            "lots": self._lot_rows(rows, events, None),
            "entries": [self._entry_dict(r, names) | {
                "order": orders.get(r.session_id) if r.session_id is not None else None}
                        for r in reversed(rows[-limit:])],
            "total_entries": len(rows),
            "discrepancies": discrepancy_report(events, counts) if events else [],
            "inventory_due": inventory_due(events, today, POLICY),
            "losses": [(self._entry_dict(r, names), loss_report_deadlines(
                r.discovered_on or r.at.date())) for r in losses],
        }

    def lot_history(self, actor: Actor, lot: str) -> list[dict]:
        """Every entry of a lot with the running balance after it."""
        with self.ctx.unit_of_work(actor, "ledger.lot", perm=Perm.LEDGER_READ) as uow:
            s = uow.session
            rows = list(s.execute(select(LedgerEntry).where(LedgerEntry.lot == lot).order_by(
                LedgerEntry.id)).scalars())
            if not rows:
                raise NotFound("no such lot")
            names = dict(s.execute(select(User.id, User.username)).all())
            uow.audit(detail=lot[:60])
        balance = {eid: (delta, bal) for eid, delta, bal in core.running_balance(
            [to_event(r) for r in rows], lot)}
        out = []
        for r in rows:
            d = self._entry_dict(r, names)
            d["change_mg"], d["balance_mg"] = balance.get(str(r.id), (Decimal(0), None))
            out.append(d)
        return out

    def entry(self, actor: Actor, entry_id: int) -> dict:
        with self.ctx.unit_of_work(actor, "ledger.entry", perm=Perm.LEDGER_READ) as uow:
            s = uow.session
            row = s.get(LedgerEntry, entry_id)
            if row is None:
                raise NotFound("no such ledger entry")
            names = dict(s.execute(select(User.id, User.username)).all())
            uow.audit(patient_id=row.patient_id, detail=f"entry {entry_id}")
            return self._entry_dict(row, names)

    def entries(self, actor: Actor, limit: int = 100, offset: int = 0) -> Paged[dict]:
        with self.ctx.unit_of_work(actor, "ledger.entries", perm=Perm.LEDGER_READ) as uow:
            s = uow.session
            page = page_rows(s, select(LedgerEntry).order_by(LedgerEntry.id), limit, offset)
            names = dict(s.execute(select(User.id, User.username)).all())
            uow.audit(detail=f"{len(page)} entries")
            return page.map(lambda r: self._entry_dict(r, names))

    @staticmethod
    def _entry_dict(r: LedgerEntry, names: dict[int, str]) -> dict:
        return {"id": r.id, "kind": r.kind, "lot": r.lot, "drug": r.drug, "at": r.at,
                "amount_mg": Decimal(r.amount_mg),
                "actor": names.get(r.actor_id, "system") if r.actor_id is not None else "system",
                "witness": names.get(r.witness_id, "") if r.witness_id else "",
                "session_id": r.session_id, "refers_to_id": r.refers_to_id,
                "supplier_name": r.supplier_name, "expiry": r.expiry,
                "containers": r.containers, "counterparty": r.counterparty,
                "subkind": r.subkind, "method": r.method, "discovered_on": r.discovered_on,
                "note": r.note}
