"""The migration chain from before the 1.0 baseline, kept as test data.

``tests/data/migrations_pre_baseline/`` holds the 21 revisions (0001 … 0014_webhooks) that
shipped before they were squashed into ``0001_baseline``; :func:`upgrade` runs them with their
own Alembic configuration, so a test builds a database exactly as an installation at the old
head has it. :func:`schema` reflects a database into plain data to compare two of them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, inspect

from ketaclinic.store import migrate

OLD_CHAIN = Path(__file__).parents[1] / "data" / "migrations_pre_baseline"


def old_config(engine: Engine, secret_key: str | None = None) -> Config:
    """ketaclinic's Alembic configuration, pointed at the old chain."""
    cfg = migrate.alembic_config(engine, secret_key)
    cfg.set_main_option("script_location", str(OLD_CHAIN))
    return cfg


def upgrade(engine: Engine, revision: str = "head", *, secret_key: str | None = None) -> None:
    """Bring ``engine`` to ``revision`` of the old chain (its head is 0014_webhooks)."""
    command.upgrade(old_config(engine, secret_key), revision)


def downgrade(engine: Engine, revision: str, *, secret_key: str | None = None) -> None:
    command.downgrade(old_config(engine, secret_key), revision)


def _default(value: Any) -> Any:
    if value is None:
        return None
    text = str(value).strip()
    while text.startswith("(") and text.endswith(")"):
        text = text[1:-1].strip()
    return text.strip("'").lower()


def schema(engine: Engine) -> dict[str, Any]:
    """Tables, columns (type, nullability, server default), keys, indexes and constraints."""
    insp = inspect(engine)
    out: dict[str, Any] = {}
    for name in sorted(insp.get_table_names()):
        if name == "alembic_version":
            continue
        out[name] = {
            # by name: a column a later revision added sits last in the old tables
            "columns": sorted((c["name"], str(c["type"]), c["nullable"],
                               _default(c.get("default"))) for c in insp.get_columns(name)),
            "pk": (insp.get_pk_constraint(name).get("constrained_columns")),
            "fks": sorted((fk.get("name"), tuple(fk["constrained_columns"]), fk["referred_table"],
                           tuple(fk["referred_columns"]), (fk.get("options") or {}).get("ondelete"))
                          for fk in insp.get_foreign_keys(name)),
            "indexes": sorted((ix["name"], tuple(ix["column_names"]), bool(ix["unique"]))
                              for ix in insp.get_indexes(name)),
            "uniques": sorted((uq.get("name"), tuple(uq["column_names"]))
                              for uq in insp.get_unique_constraints(name)),
            "checks": sorted((ck.get("name"), " ".join(ck["sqltext"].split()))
                             for ck in insp.get_check_constraints(name)),
        }
    return out
