"""clinical facts: legacy "no" answers that were never asked become "not asked"

Before this migration the screening form had a pregnancy and a breast-feeding checkbox (unticked was
stored as false) and a substance-use select whose first option was "none", so a stored false or
"none" cannot be told from a question nobody asked. Screening now treats an unanswered question
as unknown (review, never eligible); this data migration turns those legacy values into null so
the question is asked again. The row's version is bumped so a form opened before the upgrade
conflicts instead of silently writing the old value back. Patient-visible history is unchanged
(screening results keep the inputs they saw). Downgrade restores false / "none".

Revision ID: 0011_unasked_facts
Revises: 0010_outcome_relapse
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0011_unasked_facts"
down_revision = "0010_outcome_relapse"
branch_labels = None
depends_on = None

_LEGACY = {"pregnant": False, "breastfeeding": False, "substance_use_disorder": "none"}


def _rewrite(old_to_new: dict) -> None:
    conn = op.get_bind()
    rows = conn.execute(sa.text("SELECT id, facts_json, version FROM patient_clinical_facts"))
    for row_id, text, version in rows.fetchall():
        doc = json.loads(text)
        changed = False
        for key, (old, new) in old_to_new.items():
            if key in doc and doc[key] == old and type(doc[key]) is type(old):
                doc[key], changed = new, True
            elif key not in doc and old is None:
                doc[key], changed = new, True
        if changed:
            conn.execute(
                sa.text("UPDATE patient_clinical_facts SET facts_json = :f, version = :v "
                        "WHERE id = :i"),
                {"f": json.dumps(doc, sort_keys=True), "v": (version or 1) + 1, "i": row_id})


def upgrade() -> None:
    _rewrite({k: (v, None) for k, v in _LEGACY.items()})


def downgrade() -> None:
    _rewrite({k: (None, v) for k, v in _LEGACY.items()})
