"""Join the areas' migrations into one head.

Each area adds its tables in its own revision on top of 0002; this revision depends on all of
them, so a fresh database and an upgraded one end in the same schema.

Revision ID: 0004_merge
Revises: 0003_chair, 0003_dosing, 0003_harden, 0003_mbc, 0003_outcomes
"""

from __future__ import annotations

revision = "0004_merge"
down_revision = ("0003_chair", "0003_dosing", "0003_harden", "0003_mbc", "0003_outcomes")
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
