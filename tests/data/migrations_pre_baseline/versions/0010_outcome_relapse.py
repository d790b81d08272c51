"""outcome relapse origin: course_outcome_summary.relapse_origin_at

Relapse is now counted from the response assessment at the end of induction, so the summary
stores that time. The summary is derived data: the new column starts empty and the summary is
marked stale (fingerprint "pending"), so `ketaclinic migrate` / `init` rebuild it with the new
definitions (baseline window and minimum, relapse origin and syndromal threshold, remission per
treatment, 24-hour recall) and the dashboard refuses it until then.

Revision ID: 0010_outcome_relapse
Revises: 0009_discharge_governance
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_outcome_relapse"
down_revision = "0009_discharge_governance"
branch_labels = None
depends_on = None


def _mark_stale() -> None:
    op.execute("DELETE FROM outcome_summary_state")
    op.execute("INSERT INTO outcome_summary_state (id, fingerprint) VALUES (1, 'pending')")


def upgrade() -> None:
    op.add_column("course_outcome_summary",
                  sa.Column("relapse_origin_at", sa.DateTime(), nullable=True))
    _mark_stale()


def downgrade() -> None:
    with op.batch_alter_table("course_outcome_summary", schema=None) as batch_op:
        batch_op.drop_column("relapse_origin_at")
    _mark_stale()
