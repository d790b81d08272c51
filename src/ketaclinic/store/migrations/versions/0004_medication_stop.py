"""stopped medications record the day they were stopped, why, and a note

A clinic stops a medicine on a day and for a reason (completed, adverse effect, ineffective,
patient choice, entered in error, other with a note); the patient's medication list, the
amendment history and the FHIR MedicationStatement (effectivePeriod.end, statusReason) show
them. No data step: a medication stopped before this revision keeps NULL in all three, which
reads "not recorded" (nobody knows when or why; unknown is not negative).

Revision ID: 0004_medication_stop
Revises: 0003_list_row_inactive_reason
Create Date: 2026-12-07 05:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_medication_stop"
down_revision = "0003_list_row_inactive_reason"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("patient_medications", schema=None) as batch_op:
        batch_op.add_column(sa.Column("stopped_on", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("stop_reason", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("stop_note", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("patient_medications", schema=None) as batch_op:
        batch_op.drop_column("stop_note")
        batch_op.drop_column("stop_reason")
        batch_op.drop_column("stopped_on")
