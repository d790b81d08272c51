"""Backup and restore on both backends: identical rows and digests, audit chain intact."""

from __future__ import annotations

import secrets
import shutil

import pytest
from kctest import TEST_SECRET, drop_pg_database, fresh_database_url, make_settings

from ketaclinic.bootstrap import build_services
from ketaclinic.cli import main
from ketaclinic.schemas import PatientCreate, WeightCreate
from ketaclinic.services.audit.trail import SYSTEM
from ketaclinic.store import migrate
from ketaclinic.store.backup import BackupError, backup, restore, table_digests
from ketaclinic.store.db import make_engine


def _populate(services, users) -> None:
    nurse = users["nurse"].actor
    for i in range(12):
        p, _ = services.patients.create(nurse, PatientCreate(
            mrn=f"BK-{i}", family_name=f"Family{i}", given_name="Given", birth_date="1980-01-02",
            sex="female", notes="line one\nline two ünïcode", weight=f"{60 + i}.5 kg"))
        services.patients.add_weight(nurse, p.id, WeightCreate(weight="70.25 kg"))
        services.patients.get(nurse, p.id)


@pytest.fixture
def target_url(backend, sqlite_folder):
    url, handle = fresh_database_url(backend, sqlite_folder)
    yield url
    if handle is not None:
        drop_pg_database(handle)


def _env(url: str) -> dict[str, str]:
    return {"KETACLINIC_ENV": "test", "KETACLINIC_DATABASE_URL": url,
            "KETACLINIC_SECRET_KEY": TEST_SECRET}


@pytest.mark.parametrize("fmt", ["auto", "jsonl"])
def test_a_restored_backup_has_the_same_rows_digests_and_a_verifying_audit_chain(
        services, users, database_url, target_url, tmp_path, fmt, capsys):
    if fmt == "auto" and services.db.dialect == "postgresql" and not shutil.which("pg_dump"):
        pytest.skip("pg_dump is not installed")
    _populate(services, users)
    source = make_engine(database_url)
    before = table_digests(source)
    out = tmp_path / "clinic.backup"
    assert main(["backup", "--out", str(out), "--format", fmt], environ=_env(database_url)) == 0
    source.dispose()

    assert main(["restore", str(out)], environ=_env(target_url)) == 0
    assert "audit trail intact" in capsys.readouterr().out
    target = make_engine(target_url)
    after = table_digests(target)
    target.dispose()
    assert after == before
    assert before["patients"][0] == 12 and before["audit_events"][0] > 24

    restored = build_services(make_settings(target_url))
    try:
        assert restored.audit_log.verify().ok
        # The restored instance keeps working: new rows get fresh ids (sequences were reset).
        p, _ = restored.patients.create(SYSTEM, PatientCreate(
            mrn="BK-NEW", family_name="New", given_name="One", birth_date="1990-05-05",
            sex="male"))
        assert p.id == 13
        assert restored.audit_log.verify().ok
    finally:
        restored.close()


def test_restore_refuses_a_non_empty_target_unless_forced(services, users, database_url,
                                                           tmp_path, capsys):
    _populate(services, users)
    out = tmp_path / "clinic.jsonl"
    assert main(["backup", "--out", str(out), "--format", "jsonl"],
                environ=_env(database_url)) == 0
    assert main(["restore", str(out)], environ=_env(database_url)) == 1
    assert "not empty" in capsys.readouterr().err
    engine = make_engine(database_url)
    before = table_digests(engine)
    assert main(["restore", str(out), "--force"], environ=_env(database_url)) == 0
    assert table_digests(engine) == before
    engine.dispose()


def test_restore_refuses_a_file_that_is_not_a_backup(services, tmp_path):
    bogus = tmp_path / "notes.txt"
    bogus.write_text("hello")
    with pytest.raises(BackupError, match="not a ketaclinic backup"):
        restore(services.db.engine, bogus)


def test_a_restore_with_a_different_secret_reports_a_broken_chain(
        services, users, database_url, target_url, tmp_path, capsys):
    _populate(services, users)
    out = tmp_path / "clinic.jsonl"
    backup(make_engine(database_url), out, "jsonl")
    env = {**_env(target_url), "KETACLINIC_SECRET_KEY": secrets.token_urlsafe(48)}
    assert main(["restore", str(out)], environ=env) == 1
    assert "KETACLINIC_SECRET_KEY" in capsys.readouterr().err


def test_a_fresh_target_is_migrated_by_a_jsonl_restore(services, users, database_url,
                                                       target_url, tmp_path):
    _populate(services, users)
    out = tmp_path / "clinic.jsonl"
    backup(make_engine(database_url), out, "jsonl")
    target = make_engine(target_url)
    assert migrate.current_revision(target) is None
    restore(target, out)
    assert migrate.is_up_to_date(target)
    target.dispose()
