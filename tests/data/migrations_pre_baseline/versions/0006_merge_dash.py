"""Join the two revisions made on top of 0004_merge into one head.

0005_accounts and 0005_outcome_summary were written in parallel; this revision depends on both
so that a fresh database and an upgraded one end in the same schema. No schema change.

Revision ID: 0006_merge_dash
Revises: 0005_accounts, 0005_outcome_summary
"""

from __future__ import annotations

revision = "0006_merge_dash"
down_revision = ("0005_accounts", "0005_outcome_summary")
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
