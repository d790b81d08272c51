"""The tamper-evident audit trail: one hash-chained row per access to patient data.

Each row's hash is HMAC-SHA256 (keyed by the instance secret) over the previous row's hash and
the row's own fields. ``audit_head`` holds the tip and the row count, updated in the same
transaction, so an edited, deleted (anywhere, the last row included), inserted or reordered row
is detected by :func:`verify_chain`, which names the first bad row.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from ketaclinic.store.tables import AuditEvent, AuditHead

if TYPE_CHECKING:
    from ketaclinic.services.context import Context

GENESIS = "0" * 64
_TS_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


@dataclass(frozen=True)
class Actor:
    """Who is acting: a logged-in user, a patient via a link, or the system."""

    user_id: int | None
    username: str
    role: str


SYSTEM = Actor(user_id=None, username="system", role="system")


def row_digest(key: bytes, prev_hash: str, fields: dict[str, object]) -> str:
    """HMAC-SHA256 over the previous hash and the canonical JSON of the row's fields."""
    payload = prev_hash + "|" + json.dumps(fields, sort_keys=True, separators=(",", ":"))
    return hmac.new(key, payload.encode("utf-8"), hashlib.sha256).hexdigest()


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


class AuditTrail:
    """Appends rows to the chain inside the caller's transaction."""

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
        head = self._locked_head(session)
        event = AuditEvent(
            id=head.last_event_id + 1,
            occurred_at=at.replace(tzinfo=None),
            user_id=actor.user_id,
            username=actor.username[:64],
            action=action[:64],
            patient_id=patient_id,
            outcome=outcome[:16],
            detail=detail[:500],
            prev_hash=head.last_hash,
            row_hash="",
        )
        event.row_hash = row_digest(self._key, head.last_hash, _fields(event))
        session.add(event)
        head.last_event_id = event.id
        head.last_hash = event.row_hash
        head.count += 1
        session.flush()
        return event

    def _locked_head(self, session: Session) -> AuditHead:
        # FOR UPDATE serialises appenders on PostgreSQL; SQLite already holds the write lock.
        head = session.execute(
            select(AuditHead).where(AuditHead.id == 1).with_for_update()
        ).scalar_one_or_none()
        if head is None:
            head = AuditHead(id=1, last_event_id=0, last_hash=GENESIS, count=0)
            session.add(head)
            session.flush()
        return head

    def verify(self, session: Session) -> VerifyResult:
        events = session.execute(select(AuditEvent).order_by(AuditEvent.id)).scalars()
        head = session.get(AuditHead, 1)
        return verify_chain(self._key, events, head)


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    checked: int
    first_bad_id: int | None = None
    reason: str = ""

    def describe(self) -> str:
        if self.ok:
            return f"audit trail intact: {self.checked} rows verified"
        where = f"row {self.first_bad_id}" if self.first_bad_id is not None else "the chain tip"
        return f"audit trail BROKEN at {where}: {self.reason} ({self.checked} rows checked)"


def verify_chain(
    key: bytes, events: Iterable[AuditEvent], head: AuditHead | None
) -> VerifyResult:
    """Walk the chain in id order; the first row that does not link or hash is named."""
    prev_hash, expected_id, checked = GENESIS, 1, 0
    for event in events:
        if event.id != expected_id:
            reason = "a row is missing before this one" if event.id > expected_id else "row order"
            return VerifyResult(False, checked, event.id, reason)
        if event.prev_hash != prev_hash:
            return VerifyResult(False, checked, event.id, "does not link to the previous row")
        if not hmac.compare_digest(event.row_hash, row_digest(key, prev_hash, _fields(event))):
            return VerifyResult(False, checked, event.id, "contents do not match its hash")
        prev_hash, expected_id, checked = event.row_hash, expected_id + 1, checked + 1
    if head is None:
        if checked:
            return VerifyResult(False, checked, None, "the chain tip record is missing")
        return VerifyResult(True, 0)
    if head.count != checked or head.last_hash != prev_hash:
        return VerifyResult(
            False, checked, head.last_event_id, "rows after the last intact row were removed"
        )
    return VerifyResult(True, checked)


class AuditLog:
    """Reading and verifying the trail (admins only); reading it is itself audited."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def page(self, actor: Actor, *, limit: int = 100, offset: int = 0,
             patient_id: int | None = None, action: str = "") -> tuple[list[AuditEvent], int]:
        from sqlalchemy import func

        from ketaclinic.services.permissions import Perm

        self.ctx.require(actor, Perm.AUDIT_READ, "audit.view")
        limit, offset = max(1, min(limit, 500)), max(0, offset)
        stmt = select(AuditEvent)
        if patient_id is not None:
            stmt = stmt.where(AuditEvent.patient_id == patient_id)
        if action:
            stmt = stmt.where(AuditEvent.action == action[:64])
        with self.ctx.db.transaction() as s:
            total = s.execute(select(func.count()).select_from(stmt.subquery())).scalar_one()
            rows = s.execute(stmt.order_by(AuditEvent.id.desc()).limit(limit).offset(offset)
                             ).scalars().all()
            self.ctx.audit.record(s, actor, "audit.view", at=self.ctx.clock())
            return list(rows), int(total)

    def verify(self, actor: Actor | None = None) -> VerifyResult:
        """Verify the whole chain (``actor`` None means the operator, from the CLI)."""
        from ketaclinic.services.permissions import Perm

        if actor is not None:
            self.ctx.require(actor, Perm.AUDIT_READ, "audit.verify")
        with self.ctx.db.transaction() as s:
            return self.ctx.audit.verify(s)
