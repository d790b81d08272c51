"""closed loop: screening sign-offs, orders tied to a course and signed, the pump
values given

Adds ``screening_signoffs``; ``dose_orders.course_id``, ``status`` (existing orders were
saved by a prescriber: "signed"), the verbal-order columns; ``chair_doses`` concentration and
programmed rate. Only new columns and a new table: no rebuild of referenced rows.

Revision ID: 0012_closed_loop
Revises: 0011_unasked_facts
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012_closed_loop"
down_revision = "0011_unasked_facts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "screening_signoffs",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("screening_id", sa.Integer(), sa.ForeignKey("screenings.id"), nullable=False),
        sa.Column("patient_id", sa.Integer(), sa.ForeignKey("patients.id"), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("inputs_json", sa.Text(), nullable=False),
        sa.Column("signed_by", sa.Integer(), sa.ForeignKey("users.id"), nullable=True),
        sa.Column("signed_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_screening_signoffs_screening_id", "screening_signoffs",
                    ["screening_id"])
    with op.batch_alter_table("dose_orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("course_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("status", sa.String(20), nullable=False,
                                      server_default="signed"))
        batch_op.add_column(sa.Column("verbal_prescriber_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("read_back_confirmed", sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
        batch_op.add_column(sa.Column("countersigned_by", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("countersigned_at", sa.DateTime(), nullable=True))
    with op.batch_alter_table("chair_doses", schema=None) as batch_op:
        batch_op.add_column(sa.Column("concentration_mg_per_ml", sa.Numeric(8, 3),
                                      nullable=True))
        batch_op.add_column(sa.Column("rate_ml_per_h", sa.Numeric(10, 3), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("chair_doses", schema=None) as batch_op:
        batch_op.drop_column("rate_ml_per_h")
        batch_op.drop_column("concentration_mg_per_ml")
    with op.batch_alter_table("dose_orders", schema=None) as batch_op:
        for name in ("countersigned_at", "countersigned_by", "read_back_confirmed",
                     "verbal_prescriber_id", "status", "course_id"):
            batch_op.drop_column(name)
    op.drop_index("ix_screening_signoffs_screening_id", table_name="screening_signoffs")
    op.drop_table("screening_signoffs")
