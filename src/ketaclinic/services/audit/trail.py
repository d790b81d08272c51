"""The tamper-evident audit trail: one hash-chained row per access to patient data.

Each row's hash is HMAC-SHA256 (keyed by the instance secret) over the previous row's hash in
its chain and the row's own fields. The trail is a fixed set of :data:`CHAINS` interleaved
chains (stripes); ``audit_head`` holds one tip per chain (last hash, last row id, row count),
updated in the same transaction as the append. An edited, deleted (anywhere, the last row of a
chain included), inserted or reordered row, a row moved between chains and a removed tip are
detected by :func:`verify_chain`, which names the first bad row.

Why several chains: an append locks its chain's tip until the transaction commits. With one
chain every request that reads patient data queued behind that one row lock on PostgreSQL
(200 users: p95 seconds). An appender takes the first tip nobody holds (``FOR UPDATE SKIP
LOCKED``), so appends only serialise when every chain is busy at once; on SQLite, which holds
one write lock anyway, everything lands in chain 1. Rows get their id from the table's
sequence when inserted, i.e. while the chain's tip is locked, so within a chain ids increase
with chain order; ids are not dense (a rolled-back append leaves a gap) and are not evidence —
the links and the tips are. See SECURITY.md ("Audit trail").
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

from sqlalchemy import Table, bindparam, func, insert, select, text, update
from sqlalchemy.orm import Session

from ketaclinic.services.accounts.permissions import Perm
from ketaclinic.services.actor import SYSTEM as SYSTEM  # re-exported: callers import it here
from ketaclinic.services.actor import Actor as Actor
from ketaclinic.store.tables import AuditEvent, AuditHead

if TYPE_CHECKING:
    from ketaclinic.config import Settings
    from ketaclinic.services.audit.checkpoint import Checkpoint
    from ketaclinic.services.context import Context

GENESIS = "0" * 64
CHAINS = 64  # tips seeded by migration 0001_baseline; more chains need a migration adding tips
_TS_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def row_digest(key: bytes, prev_hash: str, fields: dict[str, object]) -> str:
    """HMAC-SHA256 over the previous hash and the canonical JSON of the row's fields."""
    payload = prev_hash + "|" + json.dumps(fields, sort_keys=True, separators=(",", ":"))
    return hmac.new(key, payload.encode("utf-8"), hashlib.sha256).hexdigest()


_HELD = "ketaclinic.audit.held_tip"
# A declarative class maps a Table; SQLAlchemy types ``__table__`` as any FromClause.
_EVENTS = cast(Table, AuditEvent.__table__)
_HEADS = cast(Table, AuditHead.__table__)
_EVENT_COLUMNS = ("id", "chain", "occurred_at", "user_id", "username", "action", "patient_id",
                  "outcome", "detail", "prev_hash", "row_hash")
_NEXTVAL = "nextval(pg_get_serial_sequence('audit_events', 'id'))"
_PG_TAKE_FREE = text(f"SELECT t.id, t.last_hash, {_NEXTVAL} FROM (SELECT id, last_hash FROM "
                     "audit_head ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED) AS t")
_PG_WAIT = text(f"SELECT t.id, t.last_hash, {_NEXTVAL} FROM (SELECT id, last_hash FROM "
                "audit_head WHERE id = 1 FOR UPDATE) AS t")
# Built once (a statement built per call cost more than its round trip).
_INSERT_EVENT = insert(_EVENTS)
_ADVANCE_TIP = update(_HEADS).where(_HEADS.c.id == bindparam("tip")).values(
    last_event_id=bindparam("event_id"), last_hash=bindparam("hash"), count=_HEADS.c.count + 1)
_SQLITE_TAKE = text("SELECT id, last_hash, (SELECT coalesce(max(id), 0) + 1 FROM audit_events) "
                    "FROM audit_head ORDER BY id LIMIT 1")


@dataclass
class _Tip:
    """The chain a transaction appends to, and the hash of its last row so far."""

    chain: int
    last_hash: str


def _next_id(session: Session) -> int:
    """A new row id, taken while the chain's tip is locked (so ids rise along each chain)."""
    if session.get_bind().dialect.name == "postgresql":
        return int(session.execute(text(f"SELECT {_NEXTVAL}")).scalar_one())
    # SQLite: this transaction holds the database write lock (BEGIN IMMEDIATE).
    return int(session.execute(select(func.coalesce(func.max(AuditEvent.id), 0))
                               ).scalar_one()) + 1


def _fields(event: AuditEvent) -> dict[str, object]:
    return {
        "id": event.id,
        "occurred_at": event.occurred_at.strftime(_TS_FORMAT),
        "user_id": event.user_id,
        "username": event.username,
        "action": event.action,
        "patient_id": event.patient_id,
        "outcome": event.outcome,
        "detail": event.detail,
    }


def initial_heads() -> list[dict[str, object]]:
    """The empty tips of every chain (what a fresh or wiped database holds)."""
    return [{"id": chain, "last_event_id": 0, "last_hash": GENESIS, "count": 0}
            for chain in range(1, CHAINS + 1)]


def audit_key(settings: Settings) -> bytes:
    """The trail's HMAC key, derived from the instance secret (``KETACLINIC_SECRET_KEY``)."""
    return hashlib.sha256(b"ketaclinic-audit|" + settings.secret_key.get_secret_value().encode()
                          ).digest()


class AuditTrail:
    """Appends rows to a chain inside the caller's transaction."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def record(
        self,
        session: Session,
        actor: Actor,
        action: str,
        *,
        at: dt.datetime,
        outcome: str = "ok",
        patient_id: int | None = None,
        detail: str = "",
    ) -> AuditEvent:
        """Append one row to a chain in the caller's transaction (Core statements: this runs
        for every read of patient data, so it stays at three small statements)."""
        if actor.token:
            detail = f"token {actor.token}" + (f"; {detail}" if detail else "")
        tip, event_id = self._take_tip(session)
        event = AuditEvent(
            id=event_id,
            chain=tip.chain,
            occurred_at=at.replace(tzinfo=None),
            user_id=actor.user_id,
            username=actor.username[:64],
            action=action[:64],
            patient_id=patient_id,
            outcome=outcome[:16],
            detail=detail[:500],
            prev_hash=tip.last_hash,
            row_hash="",
        )
        event.row_hash = row_digest(self._key, tip.last_hash, _fields(event))
        session.execute(_INSERT_EVENT, {c: getattr(event, c) for c in _EVENT_COLUMNS})
        session.execute(_ADVANCE_TIP, {"tip": tip.chain, "event_id": event.id,
                                       "hash": event.row_hash})
        tip.last_hash = event.row_hash
        return event

    def record_list(
        self,
        session: Session,
        actor: Actor,
        action: str,
        patient_ids: Iterable[int | None],
        *,
        at: dt.datetime,
        detail: str = "",
    ) -> int:
        """Audit a list read: one row per distinct patient the list shows (``patient_id`` set,
        so "who saw this patient" finds search results, worklists and day views too), or one
        row without a patient when it shows none. Rows are appended to one chain in a single
        multi-row insert and one tip update. Returns the number of rows written."""
        ids = list(dict.fromkeys(p for p in patient_ids if p is not None))
        if not ids:
            self.record(session, actor, action, at=at, detail=detail)
            return 1
        tip, first_id = self._take_tip(session)
        event_ids = [first_id, *self._more_ids(session, first_id, len(ids) - 1)]
        rows, prev = [], tip.last_hash
        for event_id, patient_id in zip(event_ids, ids, strict=True):
            event = AuditEvent(id=event_id, chain=tip.chain, occurred_at=at.replace(tzinfo=None),
                               user_id=actor.user_id, username=actor.username[:64],
                               action=action[:64], patient_id=patient_id, outcome="ok",
                               detail=detail[:500], prev_hash=prev, row_hash="")
            event.row_hash = prev = row_digest(self._key, prev, _fields(event))
            rows.append({c: getattr(event, c) for c in _EVENT_COLUMNS})
        session.execute(_INSERT_EVENT, rows)
        session.execute(update(_HEADS).where(_HEADS.c.id == tip.chain).values(
            last_event_id=event_ids[-1], last_hash=prev, count=_HEADS.c.count + len(rows)))
        tip.last_hash = prev
        return len(rows)

    @staticmethod
    def _more_ids(session: Session, first_id: int, n: int) -> list[int]:
        """``n`` more row ids after ``first_id``, drawn while the tip is locked."""
        if n <= 0:
            return []
        if session.get_bind().dialect.name == "postgresql":
            return sorted(int(i) for i in session.execute(text(
                f"SELECT {_NEXTVAL} FROM generate_series(1, :n)"), {"n": n}).scalars())
        return list(range(first_id + 1, first_id + 1 + n))  # SQLite: the write lock is held

    def _take_tip(self, session: Session) -> tuple[_Tip, int]:
        """The tip this transaction appends to (the one it holds, else a free one) and a new
        row id, taken while the tip is locked.

        ``SKIP LOCKED`` passes over tips other transactions hold (PostgreSQL); only when all
        are held does it wait, for chain 1. SQLite renders no row locks: it holds the database
        write lock, and the first tip (chain 1) is always taken.
        """
        held = session.info.get(_HELD)
        if held is not None and held[0] is session.get_transaction():
            return held[1], _next_id(session)
        if session.get_bind().dialect.name == "postgresql":
            # The id is drawn in the outer query, i.e. after the inner one locked the tip.
            row = session.execute(_PG_TAKE_FREE).first() or session.execute(_PG_WAIT).first()
        else:
            row = session.execute(_SQLITE_TAKE).first()
        if row is None:
            raise RuntimeError("the audit trail has no chain tips; run `ketaclinic migrate`")
        tip = _Tip(chain=int(row[0]), last_hash=str(row[1]))
        session.info[_HELD] = (session.get_transaction(), tip)
        return tip, int(row[2])

    def verify(self, session: Session, checkpoints: Sequence[Checkpoint] = ()) -> VerifyResult:
        heads = session.execute(select(AuditHead)).scalars().all()
        events = session.execute(select(AuditEvent).order_by(AuditEvent.id)).scalars()
        return verify_chain(self._key, events, heads, checkpoints)

    @property
    def key(self) -> bytes:
        """The chain's HMAC key (signs the checkpoints too, see services.audit_checkpoint)."""
        return self._key


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    checked: int
    first_bad_id: int | None = None
    reason: str = ""
    compared: tuple[str, ...] = ()  # the checkpoints the chains were compared with

    def describe(self) -> str:
        if self.ok:
            against = ("; matches " + ", ".join(self.compared) if self.compared else
                       "; no checkpoint to compare with (run `ketaclinic audit checkpoint`)")
            return f"audit trail intact: {self.checked} rows verified{against}"
        where = f"row {self.first_bad_id}" if self.first_bad_id is not None else "a chain tip"
        return f"audit trail BROKEN at {where}: {self.reason} ({self.checked} rows checked)"


def verify_chain(
    key: bytes, events: Iterable[AuditEvent], heads: Iterable[AuditHead],
    checkpoints: Sequence[Checkpoint] = (),
) -> VerifyResult:
    """Walk the rows in id order, each against the previous row of its own chain, then check
    every chain's tip; the first row that does not link or hash is named. Then every chain
    must still reach each checkpoint's mark (count and hash): truncation or a rewrite before
    the checkpoint is named with the chain and the checkpoint.

    Every chain 1..CHAINS must have its tip (a whole chain removed with its tip is found too).
    """
    tips = {h.id: h for h in heads}
    state: dict[int, tuple[str, int]] = {}  # chain -> (hash of its last row, rows so far)
    wanted = {(m.chain, m.count) for cp in checkpoints for m in cp.marks}
    seen: dict[tuple[int, int], str] = {}  # (chain, position) -> hash, for the marks only
    checked = 0
    for event in events:
        if event.chain not in tips:
            return VerifyResult(False, checked, event.id,
                                f"its chain ({event.chain}) has no tip record")
        prev_hash, count = state.get(event.chain, (GENESIS, 0))
        if event.prev_hash != prev_hash:
            return VerifyResult(False, checked, event.id,
                                "does not link to the previous row of its chain "
                                "(a row was removed, inserted or reordered)")
        if not hmac.compare_digest(event.row_hash, row_digest(key, prev_hash, _fields(event))):
            return VerifyResult(False, checked, event.id, "contents do not match its hash")
        state[event.chain] = (event.row_hash, count + 1)
        if (event.chain, count + 1) in wanted:
            seen[(event.chain, count + 1)] = event.row_hash
        checked += 1
    missing = sorted(set(range(1, CHAINS + 1)) - set(tips))
    if missing:
        return VerifyResult(False, checked, None,
                            f"the tip record of chain {missing[0]} is missing")
    for chain, head in sorted(tips.items()):
        last_hash, count = state.get(chain, (GENESIS, 0))
        if head.count != count or head.last_hash != last_hash:
            return VerifyResult(False, checked, head.last_event_id or None,
                                f"rows after the last intact row of chain {chain} were removed")
    broken = _against_checkpoints(checkpoints, state, seen, checked)
    return broken or VerifyResult(True, checked, compared=tuple(
        f"{cp.label()}: {cp.rows} rows" for cp in checkpoints))


def _against_checkpoints(checkpoints: Sequence[Checkpoint], state: dict[int, tuple[str, int]],
                         seen: dict[tuple[int, int], str], checked: int) -> VerifyResult | None:
    for cp in checkpoints:
        for m in cp.marks:
            count = state.get(m.chain, (GENESIS, 0))[1]
            if count < m.count:
                return VerifyResult(False, checked, m.last_event_id, (
                    f"chain {m.chain} holds {count} rows but {cp.label()} recorded {m.count} "
                    f"(up to row {m.last_event_id}): rows were removed (truncated)"))
            if seen.get((m.chain, m.count)) != m.last_hash:
                return VerifyResult(False, checked, m.last_event_id, (
                    f"chain {m.chain} differs from {cp.label()}: its row {m.count} no longer "
                    f"carries the recorded hash (row {m.last_event_id}); the chain was "
                    "rewritten"))
    return None


class AuditLog:
    """Reading and verifying the trail (admins only); reading it is itself audited."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def page(self, actor: Actor, *, limit: int = 100, offset: int = 0,
             patient_id: int | None = None, action: str = "") -> tuple[list[AuditEvent], int]:
        from ketaclinic.services.paging import page_rows

        work = self.ctx.unit_of_work(actor, "audit.view", perm=Perm.AUDIT_READ)
        stmt = select(AuditEvent)
        if patient_id is not None:
            stmt = stmt.where(AuditEvent.patient_id == patient_id)
        if action:
            stmt = stmt.where(AuditEvent.action == action[:64])
        with work as uow:
            page = page_rows(uow.session, stmt.order_by(AuditEvent.id.desc()), limit, offset)
            uow.audit()
            return page.items, page.total

    def patient_names(self, actor: Actor, patient_ids: Iterable[int | None]) -> dict[int, str]:
        """"Family, Given (MRN)" of the patients an audit page lists, in one query; the read
        is audited like the page."""
        from ketaclinic.store.tables import Patient

        work = self.ctx.unit_of_work(actor, "audit.view", perm=Perm.AUDIT_READ)
        ids = sorted(i for i in patient_ids if i is not None)[:500]
        if not ids:
            return {}
        with work as uow:
            rows = uow.session.execute(select(Patient.id, Patient.family_name,
                                              Patient.given_name, Patient.mrn).where(
                Patient.id.in_(ids))).all()
            uow.audit_list([r[0] for r in rows], "audit.patient_names",
                           detail=f"{len(rows)} patients")
            return {r[0]: f"{r[1]}, {r[2]} ({r[3]})" for r in rows}

    def verify(self, actor: Actor | None = None,
               checkpoint_files: Sequence[Path] = ()) -> VerifyResult:
        """Verify the whole chain (``actor`` None means the operator, from the CLI) against
        the latest checkpoint of the data dir and every checkpoint file given."""
        from ketaclinic.services.audit import checkpoint as acp

        if actor is not None:
            self.ctx.require(actor, Perm.AUDIT_READ, "audit.verify")
        key = self.ctx.audit.key
        try:
            found = [acp.read_latest(p, key) for p in (self.checkpoint_file(), *checkpoint_files)]
            missing = [str(p) for p in checkpoint_files if not p.is_file()]
            if missing:
                raise acp.CheckpointError(f"{missing[0]} does not exist")
        except acp.CheckpointError as exc:
            return VerifyResult(False, 0, None, str(exc))
        with self.ctx.db.transaction() as s:
            return self.ctx.audit.verify(s, [cp for cp in found if cp is not None])

    def checkpoint_file(self) -> Path:
        from ketaclinic.services.audit.checkpoint import FILE_NAME

        return self.ctx.settings.data_dir / FILE_NAME

    def checkpoint(self, out: Path | None = None) -> Checkpoint:
        """Take a signed checkpoint of the committed tips; append it to the data dir's file
        and, with ``out``, write one more copy there (for an off-site copy)."""
        from ketaclinic.services.audit import checkpoint as acp

        with self.ctx.db.transaction() as s:
            cp = acp.take(s, self.ctx.clock())
        acp.append(self.checkpoint_file(), self.ctx.audit.key, cp)
        if out is not None:
            acp.write(out, self.ctx.audit.key, cp)
        return cp
