"""merge the outcome-summary and audit-chain branches into one head

Revision ID: 0007_merge
Revises: 0006_merge_dash, 0006_merge_load
"""

from __future__ import annotations

revision = "0007_merge"
down_revision = ("0006_merge_dash", "0006_merge_load")
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
