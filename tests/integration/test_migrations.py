"""The Alembic migrations create exactly the schema the models describe, on every backend."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from ketaclinic.store import migrate
from ketaclinic.store.db import make_engine
from ketaclinic.store.models import Base


def test_the_migrated_schema_matches_the_models(database_url):
    engine = make_engine(database_url)
    try:
        assert migrate.is_up_to_date(engine)
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn, opts={
                "compare_type": True}), Base.metadata)
        assert diff == [], diff
    finally:
        engine.dispose()


def test_the_outcome_summary_migration_downgrades_and_upgrades_with_data(backend,
                                                                          tmp_path):
    """0005 on a database that already holds courses: down to 0004_merge drops the summary,
    up again marks it stale, and the rebuild fills it from the existing rows."""
    from alembic import command
    from kcoutcomes import build_hand_cohort
    from kctest import drop_pg_database, fresh_database_url
    from sqlalchemy import inspect, text

    from ketaclinic.services.outcomes import summary as outcome_summary
    from ketaclinic.store.db import Database

    url, handle = fresh_database_url(backend, tmp_path)
    engine = make_engine(url)
    try:
        migrate.upgrade(engine, "0004_merge")
        with Database(engine).transaction() as s:  # no summary yet: rows written before 0005
            build_hand_cohort(s)
        migrate.upgrade(engine)
        db = Database(engine)
        with db.transaction() as s:
            assert outcome_summary.stored_fingerprint(s) == "pending"
            assert not outcome_summary.is_current(s)
        counts = outcome_summary.ensure_current(db)
        # 6 timepoint rows: PHQ-9 (2-week recall) never feeds the 24-hour timepoint (issue 13)
        assert counts == {"course_dose_summary": 4, "course_outcome_summary": 3,
                          "course_outcome_timepoints": 6}
        command.downgrade(migrate.alembic_config(engine), "0004_merge")
        assert migrate.current_revision(engine) == "0004_merge"
        tables = set(inspect(engine).get_table_names())
        assert "course_outcome_summary" not in tables and "outcome_summary_state" not in tables
        assert "ix_treatment_sessions_dose_order" not in {
            i["name"] for i in inspect(engine).get_indexes("treatment_sessions")}
        migrate.upgrade(engine)
        assert migrate.is_up_to_date(engine)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT COUNT(*) FROM courses")).scalar() == 4
    finally:
        engine.dispose()
        if handle is not None:
            drop_pg_database(handle)


def test_upgrading_a_populated_database_keeps_rows_that_reference_rebuilt_tables(backend,
                                                                                 tmp_path):
    """0005_accounts rebuilds ``users`` on SQLite (batch mode). With foreign keys on, dropping
    the old table failed on a database with sessions, or would cascade-delete them; the
    migration environment turns the check off around the rebuild and verifies it afterwards."""
    import datetime as dt

    from kctest import drop_pg_database, fresh_database_url
    from sqlalchemy import text

    url, handle = fresh_database_url(backend, tmp_path)
    engine = make_engine(url)
    now = dt.datetime(2026, 1, 5, 9, 0)
    try:
        migrate.upgrade(engine, "0004_merge")
        with engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO users (id, username, full_name, role, password_hash, active, "
                "created_at) VALUES (7, 'nina', 'Nina Nurse', 'nurse', 'x', :t, :now)"),
                {"t": True, "now": now})
            conn.execute(text(
                "INSERT INTO auth_sessions (id, user_id, csrf_token, created_at, last_seen_at) "
                "VALUES ('s1', 7, 'c', :now, :now)"), {"now": now})
        migrate.upgrade(engine)
        assert migrate.is_up_to_date(engine)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT user_id FROM auth_sessions")).scalars().all() == [7]
            row = conn.execute(text(
                "SELECT username, must_change_password FROM users WHERE id = 7")).one()
            assert row[0] == "nina" and not row[1]
            if backend == "sqlite":
                assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        engine.dispose()
        if handle is not None:
            drop_pg_database(handle)
