"""harden: two-factor login (pending TOTP secret, last accepted time step)

Revision ID: 0003_harden
Revises: 0002
Create Date: 2026-11-30 01:34:34.127425
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_harden"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("totp_pending_secret", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("totp_last_step", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("totp_last_step")
        batch_op.drop_column("totp_pending_secret")
