"""Run the Alembic migrations programmatically (used by the CLI, the app and the tests).

Before 1.0 the chain of 21 revisions ending at ``0014_webhooks`` was squashed into one
baseline, ``0001_baseline``. A database at that old head already has the baseline's schema:
:func:`upgrade` checks that it does and re-stamps it onto the baseline (no data changes), then
runs any later migrations. A database at an older revision of the squashed chain is refused:
the last pre-squash release must bring it to ``0014_webhooks`` first (docs/operations.md,
"Upgrade runbook").
"""

from __future__ import annotations

import tempfile
from functools import cache
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, inspect

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
BASELINE = "0001_baseline"
PRE_BASELINE_HEAD = "0014_webhooks"
#: The squashed chain's revisions before its head (tests/data/migrations_pre_baseline/).
PRE_BASELINE_OLDER = frozenset({
    "0001", "0002", "0003_chair", "0003_dosing", "0003_harden", "0003_mbc", "0003_outcomes",
    "0004_merge", "0005_accounts", "0005_load", "0005_outcome_summary", "0006_merge_dash",
    "0006_merge_load", "0007_merge", "0008_idempotency_scope", "0009_discharge_governance",
    "0010_outcome_relapse", "0011_unasked_facts", "0012_closed_loop", "0013_api_tokens",
})


class MigrationRefused(RuntimeError):
    """The database's revision cannot be migrated by this version; nothing was changed."""


def refusal(revision: str | None) -> str | None:
    """Why a database (or backup) at ``revision`` cannot be migrated here, or None."""
    if revision is None or revision == PRE_BASELINE_HEAD or revision in _revisions_of(
            MIGRATIONS_DIR):
        return None
    if revision in PRE_BASELINE_OLDER:
        return (f"the database is at revision {revision}, older than {PRE_BASELINE_HEAD}, the "
                "last revision before the migrations were squashed into one baseline; this "
                "version cannot upgrade it. Install the last pre-squash release, run "
                f"`ketaclinic migrate` with it (it brings the database to {PRE_BASELINE_HEAD}), "
                "then install this version and migrate again (docs/operations.md, "
                "\"Upgrade runbook\"). The database was not changed.")
    return (f"the database is at revision {revision}, which this version does not know (a "
            "newer ketaclinic wrote it?); install that version or restore a backup taken "
            "with this one. The database was not changed.")


def alembic_config(engine: Engine, secret_key: str | None = None) -> Config:
    """``secret_key`` reaches data migrations that encrypt secrets at rest."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["engine"] = engine
    cfg.attributes["secret_key"] = secret_key
    return cfg


def upgrade(engine: Engine, revision: str = "head", *, secret_key: str | None = None) -> None:
    """Bring the schema up to ``revision`` (idempotent).

    Raises :class:`MigrationRefused`, changing nothing, for a revision older than the
    pre-squash head, an unknown one, or an old-head database whose schema is not the
    baseline's.
    """
    current = current_revision(engine)
    problem = refusal(current)
    if problem:
        raise MigrationRefused(problem)
    if current == PRE_BASELINE_HEAD:
        adopt_pre_baseline_head(engine)
    command.upgrade(alembic_config(engine, secret_key), revision)


def adopt_pre_baseline_head(engine: Engine) -> None:
    """Re-stamp a database at ``0014_webhooks`` onto the baseline, after checking its schema.

    The squashed chain and the baseline create the same schema (tests/integration/
    test_migration_baseline.py compares them on both databases); the check here compares the
    database with a scratch SQLite database built by the baseline, by names, nullability and
    keys, so a hand-altered or half-migrated database is refused rather than adopted.
    """
    differences = schema_differences(engine)
    if differences:
        shown = "; ".join(differences[:5]) + (" …" if len(differences) > 5 else "")
        raise MigrationRefused(
            f"the database says revision {PRE_BASELINE_HEAD} but its schema differs from it "
            f"({shown}); restore a backup or repair it with the last pre-squash release. "
            "The database was not changed.")
    command.stamp(alembic_config(engine), BASELINE, purge=True)


def schema_differences(engine: Engine) -> list[str]:
    """How ``engine``'s schema differs from the baseline's (empty when it is the same)."""
    with tempfile.TemporaryDirectory() as folder:
        scratch = create_engine(f"sqlite:///{folder}/baseline.db")
        try:
            command.upgrade(alembic_config(scratch), BASELINE)
            expected = _shape(scratch)
        finally:
            scratch.dispose()
    found = _shape(engine)
    problems = [f"table {t} missing" for t in sorted(set(expected) - set(found))]
    problems += [f"unexpected table {t}" for t in sorted(set(found) - set(expected))]
    for table in sorted(set(expected) & set(found)):
        for part, want in expected[table].items():
            have = found[table][part]
            if have != want:
                problems.append(f"{table} {part}: {sorted(have ^ want)}")
    return problems


def _shape(engine: Engine) -> dict[str, dict[str, set[Any]]]:
    """Names, nullability and keys of every table (dialect-independent)."""
    insp = inspect(engine)
    shape: dict[str, dict[str, set[Any]]] = {}
    for name in insp.get_table_names():
        if name == "alembic_version":
            continue
        shape[name] = {
            "columns": {(c["name"], c["nullable"]) for c in insp.get_columns(name)},
            "primary key": set(insp.get_pk_constraint(name)["constrained_columns"]),
            "foreign keys": {(tuple(fk["constrained_columns"]), fk["referred_table"])
                             for fk in insp.get_foreign_keys(name)},
            "indexes": {(ix["name"], tuple(ix["column_names"]), bool(ix["unique"]))
                        for ix in insp.get_indexes(name)
                        if not ix.get("duplicates_constraint")},
            "unique constraints": {tuple(uq["column_names"])
                                   for uq in insp.get_unique_constraints(name)},
        }
    return shape


def downgrade(engine: Engine, revision: str, *, secret_key: str | None = None) -> None:
    """Take the schema back to ``revision`` (for operators undoing an upgrade, and tests)."""
    command.downgrade(alembic_config(engine, secret_key), revision)


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision(engine: Engine) -> str | None:
    return _head_of(MIGRATIONS_DIR)


@cache
def _revisions_of(script_location: Path) -> frozenset[str]:
    cfg = Config()
    cfg.set_main_option("script_location", str(script_location))
    return frozenset(s.revision for s in ScriptDirectory.from_config(cfg).walk_revisions())


@cache
def _head_of(script_location: Path) -> str | None:
    """The newest revision among the shipped migration files, read once per process.

    Reading it executes every migration module; the files do not change while the process
    runs, and every start of the services asks (each test too).
    """
    cfg = Config()
    cfg.set_main_option("script_location", str(script_location))
    return ScriptDirectory.from_config(cfg).get_current_head()


def is_up_to_date(engine: Engine) -> bool:
    return current_revision(engine) == head_revision(engine)
