"""Alembic environment: the engine is passed in by ketaclinic.store.migrate."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from ketaclinic.store.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    engine = config.attributes.get("engine")
    if engine is None:
        url = config.get_main_option("sqlalchemy.url")
        if url is None:
            raise RuntimeError("no engine given and no sqlalchemy.url configured")
        engine = create_engine(url)
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # A batch migration rebuilds a table (copy, drop, rename). With foreign keys on,
            # dropping a table that others reference fails on a populated database; SQLite's
            # documented procedure turns them off outside the transaction, then checks them.
            _sqlite_pragma(connection, "PRAGMA foreign_keys=OFF")
        try:
            context.configure(
                connection=connection,
                target_metadata=target_metadata,
                render_as_batch=sqlite,
                compare_type=True,
            )
            with context.begin_transaction():
                context.run_migrations()
            connection.commit()
            if sqlite:
                broken = _sqlite_pragma(connection, "PRAGMA foreign_key_check")
                if broken:
                    raise RuntimeError(f"migration left {len(broken)} broken foreign keys")
        finally:
            if sqlite:
                _sqlite_pragma(connection, "PRAGMA foreign_keys=ON")


def _sqlite_pragma(connection, sql: str) -> list:
    """Run a PRAGMA on the driver connection, outside any SQLAlchemy transaction."""
    cursor = connection.connection.driver_connection.cursor()
    try:
        return cursor.execute(sql).fetchall()
    finally:
        cursor.close()


run_migrations_online()
