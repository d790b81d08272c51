"""Production defaults on disk and in health checks: private files and folders, a readiness
check that really writes, on both backends."""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from kctest import BACKENDS, make_settings
from sqlalchemy import text
from sqlalchemy.engine import make_url

from ketaclinic.bootstrap import build_services
from ketaclinic.services.audit.trail import SYSTEM
from ketaclinic.store.backup import backup


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The usual umask (022): privacy must not depend on the operator's."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


@pytest.mark.skipif("sqlite" not in BACKENDS, reason="SQLite is not among the test backends")
def test_the_sqlite_database_its_wal_and_the_data_folder_are_created_private(tmp_path,
                                                                               open_umask):
    data = tmp_path / "clinic" / "data"
    url = f"sqlite:///{(data / 'ketaclinic.sqlite3').as_posix()}"
    svc = build_services(make_settings(url), upgrade=True)
    try:
        svc.auth.create_user(SYSTEM, "nurse", "Nina Nurse", "nurse", "nurse-password-1")
        files = [data / "ketaclinic.sqlite3", data / "ketaclinic.sqlite3-wal",
                 data / "ketaclinic.sqlite3-shm"]
        assert all(f.exists() for f in files)
        assert {f.name: oct(mode(f)) for f in files} == {f.name: "0o600" for f in files}
        assert oct(mode(data)) == "0o700" and oct(mode(data.parent)) == "0o700"
    finally:
        svc.close()


def test_a_backup_and_its_new_folder_are_created_private(services, tmp_path, open_umask):
    out = tmp_path / "backups" / "nightly" / "kc.backup"
    backup(services.db.engine, out, "jsonl")
    assert oct(mode(out)) == "0o600"
    assert oct(mode(out.parent)) == "0o700" and oct(mode(out.parent.parent)) == "0o700"
    if services.db.dialect == "sqlite":
        native = tmp_path / "backups" / "kc.sqlite3"
        backup(services.db.engine, native, "sqlite")
        assert oct(mode(native)) == "0o600"


@pytest.fixture
def web(app):  # type: ignore[no-untyped-def]
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def test_readyz_answers_ready_when_the_database_takes_a_write(web):
    r = web.get("/readyz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}


@contextmanager
def database_refusing_writes(services, database_url) -> Iterator[None]:  # type: ignore[no-untyped-def]
    """A real fault: SQLite's write lock held by another connection; PostgreSQL's database
    switched to read-only transactions."""
    if services.db.dialect == "sqlite":
        holder = sqlite3.connect(make_url(database_url).database, timeout=1)
        holder.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            holder.rollback()
            holder.close()
        return
    name = make_url(database_url).database
    with services.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.execute(text(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on'))
    services.db.engine.dispose()  # new connections pick the setting up
    try:
        yield
    finally:
        with services.db.engine.connect().execution_options(
                isolation_level="AUTOCOMMIT") as c:
            c.execute(text("SET default_transaction_read_only = off"))
            c.execute(text(f'ALTER DATABASE "{name}" SET default_transaction_read_only = off'))
        services.db.engine.dispose()


def test_readyz_answers_503_when_the_database_refuses_writes_and_healthz_stays_cheap(
        database_url, clock, users, services, app_for):
    # A short lock wait, so the probe gives up quickly on SQLite.
    svc = build_services(make_settings(database_url, sqlite_busy_timeout_ms=200), clock=clock)
    try:
        with TestClient(app_for(svc), raise_server_exceptions=False) as c:
            with database_refusing_writes(svc, database_url):
                ready = c.get("/readyz")
                alive = c.get("/healthz")
            after = c.get("/readyz")
        assert ready.status_code == 503 and ready.headers["retry-after"]
        assert "database does not accept writes" in ready.json()["problems"][0]
        assert alive.status_code == 200 and after.status_code == 200
    finally:
        svc.close()
