"""outcomes: indexes for the dashboard queries (see store/tables_outcomes.py)

Revision ID: 0003_outcomes
Revises: 0002
Create Date: 2026-11-30 01:23:01.385388
"""

from __future__ import annotations

from alembic import op

revision = "0003_outcomes"
down_revision = "0002"
branch_labels = None
depends_on = None

INDEXES = (
    (
        "ix_clinical_events_patient_kind_on",
        "clinical_events",
        ["patient_id", "kind", "occurred_on"],
    ),
    ("ix_courses_created_by", "courses", ["created_by"]),
    ("ix_courses_patient_start", "courses", ["patient_id", "start_date", "id"]),
    ("ix_patient_diagnoses_patient_code", "patient_diagnoses", ["patient_id", "code"]),
    (
        "ix_treatment_sessions_course_dose",
        "treatment_sessions",
        ["course_id", "dose_started_at", "phase", "status"],
    ),
)


def upgrade() -> None:
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns, unique=False)


def downgrade() -> None:
    for name, table, _columns in reversed(INDEXES):
        op.drop_index(name, table_name=table)
