"""diagnoses, medications and allergies record when they change after being recorded

A row of these lists changes after it was recorded when it is deactivated (a medication
stopped) or reactivated. FHIR Bulk Data ``$export?_since=`` selects resources by when their row
was written or changed; with only ``recorded_at`` such a change was never exported to a client
that had already fetched the row. ``updated_at`` (NULL: unchanged since recorded) is set by the
service on every change.

Data step: a medication stopped or restarted before this revision gets the time of its latest
such amendment (``patient_amendments``, field "medication", new value "<name> active=…"), so a
client whose last export predates the upgrade still receives the stop. Two medications of the
same name on one patient both get the later time: exporting a resource once more is harmless,
missing a stop is not.

Revision ID: 0002_list_row_updated_at
Revises: 0001_baseline
Create Date: 2026-12-07 01:12:58.640436
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_list_row_updated_at"
down_revision = "0001_baseline"
branch_labels = None
depends_on = None

TABLES = ("patient_allergies", "patient_diagnoses", "patient_medications")

# SQL shared by SQLite and PostgreSQL (|| concatenates on both).
BACKFILL_MEDICATIONS = """
UPDATE patient_medications SET updated_at = (
    SELECT MAX(a.changed_at) FROM patient_amendments a
    WHERE a.patient_id = patient_medications.patient_id AND a.field = 'medication'
      AND a.new_value IN (patient_medications.name || ' active=False',
                          patient_medications.name || ' active=True'))
"""


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("updated_at", sa.DateTime(), nullable=True))
    op.execute(sa.text(BACKFILL_MEDICATIONS))


def downgrade() -> None:
    for table in reversed(TABLES):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("updated_at")
