"""Join the load helper's audit chains (0005_load) with the accounts revision (0005_accounts).

Revision ID: 0006_merge_load
Revises: 0005_accounts, 0005_load
"""

from __future__ import annotations

revision = "0006_merge_load"
down_revision = ("0005_accounts", "0005_load")
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
