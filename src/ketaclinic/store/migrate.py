"""Run the Alembic migrations programmatically (used by the CLI, the app and the tests)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def alembic_config(engine: Engine, secret_key: str | None = None) -> Config:
    """``secret_key`` lets data migrations encrypt secrets at rest (0005_accounts)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["engine"] = engine
    cfg.attributes["secret_key"] = secret_key
    return cfg


def upgrade(engine: Engine, revision: str = "head", *, secret_key: str | None = None) -> None:
    """Bring the schema up to ``revision`` (idempotent)."""
    command.upgrade(alembic_config(engine, secret_key), revision)


def downgrade(engine: Engine, revision: str, *, secret_key: str | None = None) -> None:
    """Take the schema back to ``revision`` (for operators undoing an upgrade, and tests)."""
    command.downgrade(alembic_config(engine, secret_key), revision)


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision(engine: Engine) -> str | None:
    return _head_of(MIGRATIONS_DIR)


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
