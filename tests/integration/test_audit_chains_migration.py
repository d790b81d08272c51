"""Migration 0005_load turns the single audit chain into striped chains without breaking it."""

from __future__ import annotations

import datetime as dt

import pytest
from alembic import command
from sqlalchemy import select, text, update

from ketaclinic.services.audit.trail import CHAINS, GENESIS, SYSTEM, AuditTrail, row_digest
from ketaclinic.store import migrate
from ketaclinic.store.db import Database
from ketaclinic.store.tables import AuditHead

KEY = b"k" * 32
AT = dt.datetime(2026, 11, 2, 9, 0)
OLD_FIELDS = ("id", "occurred_at", "user_id", "username", "action", "patient_id", "outcome",
              "detail")


@pytest.fixture
def engine(scratch_engine):  # type: ignore[no-untyped-def]
    return scratch_engine


def _old_single_chain(engine, n: int) -> None:
    """What the single-chain code wrote before 0005_load: ids 1..n, one tip."""
    prev = GENESIS
    with engine.begin() as conn:
        for i in range(1, n + 1):
            fields = {"id": i, "occurred_at": AT.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                      "user_id": None, "username": "system", "action": f"old.{i}",
                      "patient_id": None, "outcome": "ok", "detail": ""}
            row_hash = row_digest(KEY, prev, fields)
            conn.execute(text(
                f"INSERT INTO audit_events ({', '.join(OLD_FIELDS)}, prev_hash, row_hash) "
                "VALUES (:id, :at, NULL, 'system', :action, NULL, 'ok', '', :prev, :h)"),
                {"id": i, "at": AT, "action": f"old.{i}", "prev": prev, "h": row_hash})
            prev = row_hash
        conn.execute(update(AuditHead).where(AuditHead.id == 1).values(
            last_event_id=n, last_hash=prev, count=n))


def _verify(engine):
    with Database(engine).transaction() as s:
        return AuditTrail(KEY).verify(s)


def test_an_old_single_chain_still_verifies_and_grows_after_the_upgrade(engine):
    migrate.upgrade(engine, "0004_merge")
    _old_single_chain(engine, 3)
    migrate.upgrade(engine)
    with engine.connect() as conn:
        assert conn.execute(select(AuditHead.id)).scalars().all() == list(range(1, CHAINS + 1))
    assert _verify(engine).ok
    with Database(engine).transaction() as s:
        event = AuditTrail(KEY).record(s, SYSTEM, "new.append", at=AT)
    assert (event.id, event.chain) == (4, 1)  # the PostgreSQL sequence moved past the old ids
    result = _verify(engine)
    assert result.ok and result.checked == 4


def test_the_downgrade_keeps_a_single_chain_and_refuses_striped_rows(engine):
    migrate.upgrade(engine)
    with Database(engine).transaction() as s:
        AuditTrail(KEY).record(s, SYSTEM, "one", at=AT)
    command.downgrade(migrate.alembic_config(engine), "0004_merge")
    with engine.connect() as conn:
        assert conn.execute(select(AuditHead.id)).scalars().all() == [1]
    migrate.upgrade(engine)
    assert _verify(engine).ok
    with engine.begin() as conn:
        conn.execute(text("UPDATE audit_events SET chain = 2"))
    with pytest.raises(RuntimeError, match="chains other than chain 1"):
        command.downgrade(migrate.alembic_config(engine), "0004_merge")
