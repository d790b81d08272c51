"""The squashed baseline: a fresh database gets the old chain's schema and seed rows; a
database at the old head (0014_webhooks, built by the real old chain from
tests/data/migrations_pre_baseline/) moves onto the baseline with every row and the audit
chain intact; an older database is refused and left as it was."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path

import kcprebaseline
import pytest
from alembic import command
from kctest import drop_pg_database, fresh_database_url, make_settings
from sqlalchemy import Engine, inspect, text

from ketaclinic.bootstrap import NotMigrated, build_services
from ketaclinic.services.clock import SteppingClock
from ketaclinic.services.doctor import FAIL, OK, check_schema
from ketaclinic.store import migrate
from ketaclinic.store.backup import backup, restore
from ketaclinic.store.db import make_engine

START = dt.datetime(2026, 11, 2, 9, 0, 0)


@pytest.fixture
def new_url(backend: str, sqlite_folder: Path) -> Iterator[Callable[[], str]]:
    """A fresh, empty database of the backend; dropped afterwards."""
    urls: list[object] = []

    def make() -> str:
        folder = sqlite_folder / f"db{len(urls)}"
        folder.mkdir()
        url, handle = fresh_database_url(backend, folder)
        urls.append(handle)
        return url

    yield make
    for handle in urls:
        if handle is not None:
            drop_pg_database(handle)


def _rows(engine: Engine) -> dict[str, list[str]]:
    """Every row of every table (alembic_version aside), independent of row and column order
    (a column a later old revision added sits last in that table)."""
    out = {}
    with engine.connect() as conn:
        insp = inspect(conn)
        for name in insp.get_table_names():
            if name != "alembic_version":
                columns = ", ".join(sorted(f'"{c["name"]}"' for c in insp.get_columns(name)))
                out[name] = sorted(repr(tuple(r)) for r in conn.execute(
                    text(f'SELECT {columns} FROM "{name}"')))
    return out


def _old_head_with_a_clinic(url: str) -> None:
    """The old chain to its head, then a small clinic written by today's services, with an
    audit checkpoint. Today's services need today's schema: the database is brought to the
    head for them, then the revisions after the baseline are undone (the baseline's schema is
    the old head's) and it is stamped at the old head again, as an installation has it."""
    from ketaclinic.demo.clinic import seed_demo

    engine = make_engine(url)
    kcprebaseline.upgrade(engine)
    migrate.upgrade(engine)
    engine.dispose()
    svc = build_services(make_settings(url), clock=SteppingClock(START))
    try:
        seed_demo(svc, patients=3)
        svc.audit_log.checkpoint()
    finally:
        svc.close()
    engine = make_engine(url)
    try:
        command.downgrade(migrate.alembic_config(engine), migrate.BASELINE)
        command.stamp(kcprebaseline.old_config(engine), migrate.PRE_BASELINE_HEAD, purge=True)
    finally:
        engine.dispose()


def test_a_fresh_baseline_has_the_old_chains_schema_and_seed_rows(new_url):
    old, new = make_engine(new_url()), make_engine(new_url())
    try:
        kcprebaseline.upgrade(old)
        migrate.upgrade(new, migrate.BASELINE)
        assert migrate.current_revision(old) == migrate.PRE_BASELINE_HEAD
        assert migrate.current_revision(new) == migrate.BASELINE
        assert kcprebaseline.schema(new) == kcprebaseline.schema(old)
        assert _rows(new) == _rows(old)  # 64 empty audit chain tips, a pending summary
        assert len(_rows(new)["audit_head"]) == 64
        assert migrate.schema_differences(old) == []
    finally:
        old.dispose()
        new.dispose()


def test_migrate_moves_an_old_head_database_onto_the_baseline_without_changing_data(new_url):
    url, fresh = new_url(), new_url()
    _old_head_with_a_clinic(url)
    engine, reference = make_engine(url), make_engine(fresh)
    try:
        before = _rows(engine)
        assert len(before["patients"]) == 3 and before["audit_events"]
        assert check_schema(engine).status == FAIL  # doctor: run `ketaclinic migrate`
        migrate.upgrade(engine, migrate.BASELINE)  # the adoption alone; later revisions below
        assert migrate.current_revision(engine) == migrate.BASELINE
        assert _rows(engine) == before
        migrate.upgrade(reference, migrate.BASELINE)
        assert kcprebaseline.schema(engine) == kcprebaseline.schema(reference)
        migrate.upgrade(engine)  # then the revisions after the baseline
        assert migrate.is_up_to_date(engine) and check_schema(engine).status == OK
    finally:
        engine.dispose()
        reference.dispose()
    # As `ketaclinic migrate` then the app: the chain verifies against the old checkpoint.
    svc = build_services(make_settings(url), clock=SteppingClock(START), upgrade=True)
    try:
        result = svc.audit_log.verify()
        assert result.ok and result.compared, result.describe()
        assert svc.patients  # the services start on the adopted database
    finally:
        svc.close()


def test_an_older_database_is_refused_with_the_runbook_and_left_unchanged(new_url):
    url = new_url()
    engine = make_engine(url)
    try:
        kcprebaseline.upgrade(engine, "0013_api_tokens")
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO login_attempts (username, client, at, success) "
                              "VALUES ('nina', '127.0.0.1', :at, :ok)"), {"at": START, "ok": True})
        schema, rows = kcprebaseline.schema(engine), _rows(engine)
        with pytest.raises(migrate.MigrationRefused, match="last pre-squash release") as exc:
            migrate.upgrade(engine)
        assert "0014_webhooks" in str(exc.value) and "Upgrade runbook" in str(exc.value)
        with pytest.raises(NotMigrated, match="last pre-squash release"):  # `ketaclinic migrate`
            build_services(make_settings(url), upgrade=True)
        check = check_schema(engine)
        assert check.status == FAIL and "last pre-squash release" in check.detail
        assert migrate.current_revision(engine) == "0013_api_tokens"
        assert kcprebaseline.schema(engine) == schema and _rows(engine) == rows
    finally:
        engine.dispose()


def test_an_old_head_whose_schema_was_altered_is_refused_unchanged(new_url):
    engine = make_engine(new_url())
    try:
        kcprebaseline.upgrade(engine)
        with engine.begin() as conn:
            conn.execute(text("DROP INDEX ix_audit_events_action"))
        with pytest.raises(migrate.MigrationRefused, match="ix_audit_events_action"):
            migrate.upgrade(engine)
        assert migrate.current_revision(engine) == migrate.PRE_BASELINE_HEAD
    finally:
        engine.dispose()


def test_a_jsonl_backup_of_the_old_head_restores_onto_the_baseline(new_url, tmp_path):
    url, target_url = new_url(), new_url()
    _old_head_with_a_clinic(url)
    source, target = make_engine(url), make_engine(target_url)
    out = tmp_path / "old-head.jsonl"
    try:
        backup(source, out, "jsonl")
        restore(target, out)
        assert migrate.current_revision(target) == migrate.BASELINE
        assert _rows(target) == _rows(source)
    finally:
        source.dispose()
        target.dispose()
