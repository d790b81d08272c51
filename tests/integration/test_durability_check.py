"""Startup refuses a database whose durability is weakened, unless explicitly allowed."""

from __future__ import annotations

import pytest
from kctest import TEST_SECRET, make_settings
from sqlalchemy import create_engine, event

from ketaclinic import bootstrap
from ketaclinic.bootstrap import build_services
from ketaclinic.cli import main
from ketaclinic.store.db import DurabilityError, check_durability, make_engine


def _weakening(monkeypatch, statements: list[str]) -> None:
    """Make every new engine run ``statements`` on each connection, after the safe defaults."""
    original = bootstrap.make_engine

    def weakened(url, **kwargs):  # type: ignore[no-untyped-def]
        engine = original(url, **kwargs)

        @event.listens_for(engine, "connect")
        def _weaken(dbapi_connection, _record):  # type: ignore[no-untyped-def]
            cursor = dbapi_connection.cursor()
            for sql in statements:
                cursor.execute(sql)
            cursor.close()
            if engine.dialect.name == "postgresql":
                dbapi_connection.commit()

        return engine

    monkeypatch.setattr(bootstrap, "make_engine", weakened)


def _weak_statements(backend: str) -> list[str]:
    if backend == "sqlite":
        return ["PRAGMA synchronous=OFF"]
    return ["SET synchronous_commit TO off"]


def test_the_default_engine_passes_the_durability_check(database_url):
    engine = make_engine(database_url)
    assert check_durability(engine) == []
    engine.dispose()


def test_a_sqlite_connection_without_wal_is_reported(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'plain.sqlite3'}")

    @event.listens_for(engine, "connect")
    def _delete_journal(dbapi_connection, _record):  # type: ignore[no-untyped-def]
        dbapi_connection.execute("PRAGMA journal_mode=DELETE")
        dbapi_connection.execute("PRAGMA synchronous=NORMAL")

    problems = check_durability(engine)
    engine.dispose()
    assert any("journal_mode is delete" in p for p in problems)
    assert any("synchronous is 1" in p for p in problems)
    assert any("foreign_keys is off" in p for p in problems)


def test_startup_refuses_weakened_durability(backend, database_url, monkeypatch):
    _weakening(monkeypatch, _weak_statements(backend))
    with pytest.raises(DurabilityError, match="KETACLINIC_ALLOW_WEAK_DURABILITY"):
        build_services(make_settings(database_url))


def test_startup_with_weak_durability_explicitly_allowed_starts(backend, database_url,
                                                                 monkeypatch):
    _weakening(monkeypatch, _weak_statements(backend))
    svc = build_services(make_settings(database_url, allow_weak_durability=True))
    try:
        assert check_durability(svc.db.engine)  # still weak, but the operator said so
    finally:
        svc.close()


def test_the_cli_refuses_weak_durability_with_exit_code_1(backend, database_url, monkeypatch,
                                                          capsys):
    _weakening(monkeypatch, _weak_statements(backend))
    env = {"KETACLINIC_ENV": "test", "KETACLINIC_DATABASE_URL": database_url,
           "KETACLINIC_SECRET_KEY": TEST_SECRET}
    assert main(["audit", "verify"], environ=env) == 1
    assert "durab" in capsys.readouterr().err.lower()
