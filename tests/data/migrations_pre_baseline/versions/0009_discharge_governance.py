"""closed loop: discharge outcome, rule-set approvals, medical director, lock screen

- chair_discharges.outcome (discharged | left-against-advice) and .statement (what the patient
  who left against advice was told and said);
- users.medical_director (a second person with it co-signs loosening a hard limit) and
  users.pin_hash (the lock-screen PIN, hashed);
- auth_sessions.locked_at / unlock_failures (an idle session is locked, not ended);
- ruleset_approvals (the medical director's co-signatures, shown on the rule-set history).

Revision ID: 0009_discharge_governance
Revises: 0008_idempotency_scope
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_discharge_governance"
down_revision = "0008_idempotency_scope"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("chair_discharges", schema=None) as batch_op:
        batch_op.add_column(sa.Column("outcome", sa.String(length=24), nullable=False,
                                      server_default="discharged"))
        batch_op.add_column(sa.Column("statement", sa.Text(), nullable=False,
                                      server_default=""))
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("medical_director", sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
        batch_op.add_column(sa.Column("pin_hash", sa.String(length=255), nullable=True))
    with op.batch_alter_table("auth_sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("locked_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("unlock_failures", sa.Integer(), nullable=False,
                                      server_default="0"))
    op.create_table(
        "ruleset_approvals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ruleset_id", sa.String(length=60), nullable=False),
        sa.Column("version", sa.String(length=40), nullable=False),
        sa.Column("action", sa.String(length=20), nullable=False),
        sa.Column("loosened_json", sa.Text(), nullable=False),
        sa.Column("requested_by", sa.Integer(), nullable=True),
        sa.Column("approved_by", sa.Integer(), nullable=True),
        sa.Column("approved_by_name", sa.String(length=200), nullable=False),
        sa.Column("approved_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["requested_by"], ["users.id"],
                                name=op.f("fk_ruleset_approvals_requested_by_users")),
        sa.ForeignKeyConstraint(["approved_by"], ["users.id"],
                                name=op.f("fk_ruleset_approvals_approved_by_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ruleset_approvals")),
    )
    with op.batch_alter_table("ruleset_approvals", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ruleset_approvals_ruleset_id"), ["ruleset_id"],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table("ruleset_approvals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ruleset_approvals_ruleset_id"))
    op.drop_table("ruleset_approvals")
    with op.batch_alter_table("auth_sessions", schema=None) as batch_op:
        batch_op.drop_column("unlock_failures")
        batch_op.drop_column("locked_at")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("pin_hash")
        batch_op.drop_column("medical_director")
    with op.batch_alter_table("chair_discharges", schema=None) as batch_op:
        batch_op.drop_column("statement")
        batch_op.drop_column("outcome")
