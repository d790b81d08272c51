"""diagnoses and allergies record why they were deactivated

A diagnosis resolves or was recorded in error; an allergy was entered in error or refuted.
Which one decides what still counts in screening (a resolved psychotic episode is still a
history of psychosis; an allergy entered in error is no allergy) and how FHIR exports the row
(Condition clinicalStatus resolved or verificationStatus entered-in-error; AllergyIntolerance
verificationStatus entered-in-error or refuted). ``inactive_reason`` is NULL on an active row.
No data step: before this revision nothing deactivated a diagnosis or an allergy.

Revision ID: 0003_list_row_inactive_reason
Revises: 0002_list_row_updated_at
Create Date: 2026-12-07 02:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_list_row_inactive_reason"
down_revision = "0002_list_row_updated_at"
branch_labels = None
depends_on = None

TABLES = ("patient_allergies", "patient_diagnoses")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("inactive_reason", sa.String(length=20),
                                          nullable=True))


def downgrade() -> None:
    for table in reversed(TABLES):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("inactive_reason")
