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
