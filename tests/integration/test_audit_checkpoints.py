"""Signed checkpoints outside the database catch what the chain alone cannot: a chain that was
truncated and whose tip was rewound (on SQLite: every row deleted and chain 1 reset), or a
chain rewritten by someone holding the secret. A restore whose chain fails leaves the target
as it was."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
from pathlib import Path

import pytest
from kctest import TEST_SECRET, drop_pg_database, fresh_database_url
from sqlalchemy import select, text

from ketaclinic.cli import main
from ketaclinic.schemas import PatientCreate
from ketaclinic.services.audit.checkpoint import FILE_NAME
from ketaclinic.services.audit.trail import SYSTEM, _fields, initial_heads, row_digest
from ketaclinic.store.backup import table_digests
from ketaclinic.store.db import make_engine
from ketaclinic.store.tables import AuditEvent, AuditHead


def _seed(services, n=5, prefix="C"):  # type: ignore[no-untyped-def]
    for i in range(n):
        services.patients.create(SYSTEM, PatientCreate(
            mrn=f"{prefix}-{i}", family_name="Check", given_name=f"P{i}",
            birth_date="1970-01-01", sex="male"))


def _sql(services, *statements: str) -> None:  # type: ignore[no-untyped-def]
    with services.db.engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement))


def _wipe_trail(services) -> None:  # type: ignore[no-untyped-def]
    """What an attacker with database access does: every row gone, every tip reset."""
    with services.db.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_events"))
        conn.execute(text("DELETE FROM audit_head"))
        conn.execute(AuditHead.__table__.insert(), initial_heads())


def _env(url: str) -> dict[str, str]:
    return {"KETACLINIC_ENV": "test", "KETACLINIC_DATABASE_URL": url,
            "KETACLINIC_SECRET_KEY": TEST_SECRET}


def test_deleting_every_row_and_resetting_the_tips_is_caught_by_the_latest_checkpoint(
        services):
    _seed(services)
    services.audit_log.checkpoint()
    _wipe_trail(services)
    result = services.audit_log.verify()
    assert not result.ok and result.checked == 0
    assert "holds 0 rows" in result.reason and "truncated" in result.reason
    assert "the checkpoint of" in result.reason


def test_removing_the_tail_and_rewinding_its_tip_is_caught(services):
    _seed(services)
    services.audit_log.checkpoint()
    with services.db.transaction() as s:
        last = s.execute(select(AuditEvent).order_by(AuditEvent.id.desc())).scalars().first()
        chain, keep = last.chain, s.execute(select(AuditEvent).where(
            AuditEvent.chain == last.chain, AuditEvent.id < last.id)
            .order_by(AuditEvent.id)).scalars().all()
    _sql(services, f"DELETE FROM audit_events WHERE id = {last.id}",
         f"UPDATE audit_head SET count = {len(keep)}, last_hash = '{keep[-1].row_hash}', "
         f"last_event_id = {keep[-1].id} WHERE id = {chain}")
    assert services.audit_log.verify(checkpoint_files=[]).ok is False
    result = services.audit_log.verify()
    assert f"chain {chain} holds {len(keep)} rows" in result.reason


def test_a_chain_rewritten_with_the_secret_is_caught_by_the_hash_at_the_mark(services):
    _seed(services)
    services.audit_log.checkpoint()
    key = services.ctx.audit.key
    with services.db.transaction() as s:  # re-sign every row after editing the first one
        rows = s.execute(select(AuditEvent).where(AuditEvent.chain == 1)
                         .order_by(AuditEvent.id)).scalars().all()
        rows[0].username = "mallory"
        prev = "0" * 64
        for r in rows:
            r.prev_hash, r.row_hash = prev, row_digest(key, prev, _fields(r))
            prev = r.row_hash
        s.get(AuditHead, 1).last_hash = prev
    result = services.audit_log.verify()
    assert not result.ok and "chain 1 differs from the checkpoint" in result.reason


def test_an_edited_checkpoint_fails_verification_and_is_never_skipped(services):
    _seed(services)
    services.audit_log.checkpoint()
    path = services.audit_log.checkpoint_file()
    line = json.loads(path.read_text())
    line["chains"][0][1] -= 1  # claim fewer rows
    path.write_text(json.dumps(line) + "\n")
    result = services.audit_log.verify()
    assert not result.ok and "does not verify" in result.reason


def test_the_checkpoint_command_writes_a_private_file_and_an_off_site_copy(
        services, database_url, tmp_path, capsys):
    _seed(services)
    off_site = tmp_path / "offsite" / "tips.json"
    assert main(["audit", "checkpoint", "--out", str(off_site)], environ=_env(database_url)) == 0
    assert "written to" in capsys.readouterr().out
    local = Path("data") / FILE_NAME
    for f in (local, off_site):
        assert stat.S_IMODE(os.stat(f).st_mode) == 0o600
    assert main(["audit", "verify"], environ=_env(database_url)) == 0
    assert "matches the checkpoint of" in capsys.readouterr().out
    # The attacker also deletes the local file: the off-site copy still catches it.
    _wipe_trail(services)
    local.unlink()
    assert main(["audit", "verify"], environ=_env(database_url)) == 0  # nothing to compare
    assert main(["audit", "verify", "--checkpoint", str(off_site)],
                environ=_env(database_url)) == 1
    err = capsys.readouterr().err
    assert "truncated" in err and "tips.json" in err


def test_the_running_app_writes_a_checkpoint_once_per_period(app, login, services, clock):
    path = services.audit_log.checkpoint_file()
    c, _ = login("nurse")
    c.get("/patients")
    assert len(path.read_text().splitlines()) == 1
    c.get("/patients")
    assert len(path.read_text().splitlines()) == 1
    clock.advance(minutes=services.settings.audit_checkpoint_minutes + 1)
    c.get("/patients")
    assert len(path.read_text().splitlines()) == 2
    assert services.audit_log.verify().ok


def _backup(database_url: str, out: Path, fmt: str) -> None:
    assert main(["backup", "--out", str(out), "--format", fmt], environ=_env(database_url)) == 0


@pytest.fixture
def target(services, backend, sqlite_folder):  # type: ignore[no-untyped-def]
    """A second, non-empty instance to restore into (its own data dir)."""
    url, handle = fresh_database_url(backend, sqlite_folder)
    from kctest import make_settings

    from ketaclinic.bootstrap import build_services

    other = build_services(make_settings(url), upgrade=True, require_current_schema=False)
    _seed(other, 3, prefix="T")
    other.close()
    yield url
    if handle is not None:
        drop_pg_database(handle)


def _formats(backend: str) -> list[str]:
    if backend == "sqlite":
        return ["sqlite", "jsonl"]
    return ["jsonl"] + (["pgdump"] if shutil.which("pg_dump") else [])


def _tamper(out: Path, fmt: str) -> None:
    if fmt == "jsonl":
        lines = out.read_text().splitlines()
        i = next(i for i, ln in enumerate(lines) if ln.startswith('{"t":"audit_events"'))
        lines[i] = lines[i].replace('"username":"system"', '"username":"mallory"')
        out.write_text("\n".join(lines) + "\n")
    elif fmt == "sqlite":
        conn = sqlite3.connect(out)
        conn.execute("UPDATE audit_events SET username = 'mallory' WHERE id = 2")
        conn.commit()
        conn.close()
    else:  # pgdump: truncate the file's tail, pg_restore must fail or the chain must
        data = out.read_bytes()
        out.write_bytes(data[: len(data) // 2])


def test_a_backup_whose_chain_fails_leaves_the_target_exactly_as_it_was(
        services, backend, database_url, target, tmp_path, capsys):
    _seed(services)
    for fmt in _formats(backend):
        out = tmp_path / f"clinic-{fmt}.backup"
        _backup(database_url, out, fmt)
        assert Path(str(out) + ".audit-checkpoint.json").is_file()
        _tamper(out, fmt)
        engine = make_engine(target)
        before = table_digests(engine)
        engine.dispose()
        assert main(["restore", str(out), "--force"], environ=_env(target)) == 1, fmt
        err = capsys.readouterr().err
        assert "target is unchanged" in err or "pg_restore failed" in err, (fmt, err)
        engine = make_engine(target)
        assert table_digests(engine) == before, fmt
        engine.dispose()


def test_a_backup_truncated_behind_its_checkpoint_is_refused(
        services, backend, database_url, target, tmp_path, capsys):
    _seed(services)
    out = tmp_path / "clinic.jsonl"
    _backup(database_url, out, "jsonl")
    # Drop the audit rows from the file and reset the tips in it: the chain alone verifies.
    lines = [ln for ln in out.read_text().splitlines()
             if not ln.startswith('{"t":"audit_events"')]
    heads = [json.dumps({"t": "audit_head", "r": h}, separators=(",", ":"))
             for h in initial_heads()]
    lines = [ln for ln in lines if not ln.startswith('{"t":"audit_head"')]
    out.write_text("\n".join(lines[:1] + heads + lines[1:]) + "\n")
    engine = make_engine(target)
    before = table_digests(engine)
    engine.dispose()
    assert main(["restore", str(out), "--force"], environ=_env(target)) == 1
    assert "truncated" in capsys.readouterr().err
    engine = make_engine(target)
    assert table_digests(engine) == before
    engine.dispose()
    # The same backup restores when it is intact, and the restored trail verifies.
    _backup(database_url, out, "jsonl")
    assert main(["restore", str(out), "--force"], environ=_env(target)) == 0
    assert main(["audit", "verify"], environ=_env(target)) == 0
