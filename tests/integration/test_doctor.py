"""`ketaclinic doctor` names what is wrong with an instance and exits 1 on a failed check."""

from __future__ import annotations

import json
import os

import pytest
from kctest import TEST_SECRET
from sqlalchemy import text

from ketaclinic.cli import main
from ketaclinic.config import PLACEHOLDER_SECRET
from ketaclinic.services.audit.trail import SYSTEM, initial_heads
from ketaclinic.store import migrate


@pytest.fixture
def env(services, users, tmp_path):  # type: ignore[no-untyped-def]
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    return {"KETACLINIC_ENV": "production", "KETACLINIC_DATABASE_URL": str(
        services.db.engine.url.render_as_string(hide_password=False)),
        "KETACLINIC_SECRET_KEY": TEST_SECRET, "KETACLINIC_DATA_DIR": str(data),
        "KETACLINIC_SECURE_COOKIES": "true"}


def doctor(env, capsys) -> tuple[int, dict[str, dict[str, str]]]:  # type: ignore[no-untyped-def]
    code = main(["doctor", "--json"], environ=env)
    out = json.loads(capsys.readouterr().out)
    return code, {c["name"]: c for c in out["checks"]}


def _checkpoint(env, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["audit", "checkpoint"], environ=env) == 0
    capsys.readouterr()


def test_a_healthy_instance_passes_every_check_and_exits_0(env, capsys):
    _checkpoint(env, capsys)
    code, checks = doctor(env, capsys)
    assert code == 0
    assert {name: c["status"] for name, c in checks.items()} == {
        "settings": "ok", "secret key": "ok", "data dir": "ok", "database": "ok",
        "schema": "ok", "durability": "ok", "disk and writes": "ok", "audit chain": "ok"}
    assert "rows verify" in checks["audit chain"]["detail"]


def test_the_table_names_every_check_without_json(env, capsys):
    _checkpoint(env, capsys)
    assert main(["doctor"], environ=env) == 0
    out = capsys.readouterr().out
    for name in ("secret key", "schema", "durability", "audit chain", "data dir"):
        assert name in out


def test_a_placeholder_secret_fails_the_secret_check_and_exits_1(env, capsys):
    code, checks = doctor(env | {"KETACLINIC_SECRET_KEY": PLACEHOLDER_SECRET}, capsys)
    assert code == 1
    assert checks["secret key"]["status"] == "fail"
    assert PLACEHOLDER_SECRET not in checks["secret key"]["detail"]


def test_an_edited_audit_row_fails_the_audit_check(services, env, capsys):
    with services.db.transaction() as s:
        services.ctx.audit.record(s, SYSTEM, "doctor.test", at=services.ctx.clock())
    with services.db.engine.begin() as conn:
        conn.execute(text("UPDATE audit_events SET username = 'mallory' WHERE id = "
                          "(SELECT MIN(id) FROM audit_events)"))
    code, checks = doctor(env, capsys)
    assert code == 1
    assert checks["audit chain"]["status"] == "fail"
    assert "BROKEN" in checks["audit chain"]["detail"]


def test_a_chain_shorter_than_the_latest_checkpoint_fails(services, env, capsys):
    with services.db.transaction() as s:
        services.ctx.audit.record(s, SYSTEM, "doctor.test", at=services.ctx.clock())
    _checkpoint(env, capsys)
    with services.db.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_events"))
        conn.execute(text("DELETE FROM audit_head"))
        conn.execute(text("INSERT INTO audit_head (id, last_event_id, last_hash, count) "
                          "VALUES (:id, :last_event_id, :last_hash, :count)"), initial_heads())
    code, checks = doctor(env, capsys)
    assert code == 1 and checks["audit chain"]["status"] == "fail"


def test_no_checkpoint_yet_is_a_warning_not_a_failure(env, capsys):
    code, checks = doctor(env, capsys)
    assert code == 0
    assert checks["audit chain"]["status"] == "warn"
    assert "audit checkpoint" in checks["audit chain"]["detail"]


def test_a_schema_behind_head_fails_and_says_to_migrate(services, env, capsys):
    engine = services.db.engine
    previous = migrate.current_revision(engine)
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(migrate.alembic_config(engine))
    down = script.get_revision(previous).down_revision
    down = down[0] if isinstance(down, tuple) else down
    down = down or migrate.PRE_BASELINE_HEAD  # behind the baseline: the pre-squash head
    with engine.begin() as conn:  # only the revision stamp: what an un-migrated host reports
        conn.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": down})
    try:
        code, checks = doctor(env, capsys)
    finally:
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": previous})
    assert code == 1
    assert checks["schema"]["status"] == "fail"
    assert "ketaclinic migrate" in checks["schema"]["detail"]
    assert checks["audit chain"]["status"] == "fail"  # not checked on an old schema


def test_a_data_dir_others_can_read_fails(env, capsys):
    os.chmod(env["KETACLINIC_DATA_DIR"], 0o755)
    code, checks = doctor(env, capsys)
    assert code == 1
    assert checks["data dir"]["status"] == "fail"
    assert "chmod 700" in checks["data dir"]["detail"]


def test_a_missing_data_dir_fails(env, capsys, tmp_path):
    code, checks = doctor(env | {"KETACLINIC_DATA_DIR": str(tmp_path / "nowhere")}, capsys)
    assert code == 1 and checks["data dir"]["status"] == "fail"


def test_weakened_durability_fails_even_when_startup_is_allowed(backend, env, capsys,
                                                                 monkeypatch):
    from sqlalchemy import event

    from ketaclinic.store import db

    original = db.make_engine

    def weakened(url, **kwargs):  # type: ignore[no-untyped-def]
        engine = original(url, **kwargs)

        @event.listens_for(engine, "connect")
        def _weaken(dbapi_connection, _record):  # type: ignore[no-untyped-def]
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA synchronous=OFF" if backend == "sqlite"
                           else "SET synchronous_commit TO off")
            cursor.close()
            if engine.dialect.name == "postgresql":
                dbapi_connection.commit()

        return engine

    monkeypatch.setattr(db, "make_engine", weakened)
    code, checks = doctor(env | {"KETACLINIC_ALLOW_WEAK_DURABILITY": "true"}, capsys)
    assert code == 1
    assert checks["durability"]["status"] == "fail"
    assert "ALLOW_WEAK_DURABILITY" in checks["durability"]["detail"]


def test_an_unreachable_database_fails_without_a_traceback(env, capsys):
    url = "postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2"
    code, checks = doctor(env | {"KETACLINIC_DATABASE_URL": url}, capsys)
    assert code == 1
    assert checks["database"]["status"] == "fail"
    assert "schema" not in checks


def test_an_invalid_setting_is_named_and_exits_1(env, capsys):
    code, checks = doctor(env | {"KETACLINIC_PORT": "0"}, capsys)
    assert code == 1
    assert "KETACLINIC_PORT" in checks["settings"]["detail"]


def test_doctor_on_a_host_never_initialised_reports_and_creates_nothing(capsys, tmp_path):
    data = tmp_path / "not-yet"
    env = {"KETACLINIC_ENV": "production", "KETACLINIC_SECRET_KEY": TEST_SECRET,
           "KETACLINIC_DATA_DIR": str(data)}
    code, checks = doctor(env, capsys)
    assert code == 1
    assert checks["database"]["status"] == "fail" and "ketaclinic init" in checks["database"][
        "detail"]
    assert not data.exists()


def test_a_configured_read_replica_is_read_and_one_that_cannot_be_read_fails(
        env, capsys, tmp_path):
    _checkpoint(env, capsys)
    code, checks = doctor(env | {"KETACLINIC_READ_DATABASE_URL":
                                 env["KETACLINIC_DATABASE_URL"]}, capsys)
    assert code == 0 and checks["read replica"]["status"] == "ok"
    assert "read-only" in checks["read replica"]["detail"]
    assert "read replica" not in doctor(env, capsys)[1]  # none configured: nothing to check
    missing = f"sqlite:///{tmp_path / 'no-replica.sqlite3'}"
    code, checks = doctor(env | {"KETACLINIC_READ_DATABASE_URL": missing}, capsys)
    assert code == 1 and checks["read replica"]["status"] == "fail"
    assert "no-replica" not in checks["read replica"]["detail"]
    assert not (tmp_path / "no-replica.sqlite3").exists()
