"""idempotency keys per user and operation, with the hash of the request they answered

- idempotency_keys: unique on (scope, user_id, key) instead of (scope, key), so one user's key
  never answers another user's request; request_hash (SHA-256 of the canonical request; ""
  for keys recorded before this revision) lets a different request under the same key be
  refused (services.idempotency).
- the keys of chair vitals move from chair_vitals.idempotency_key (globally unique) into
  idempotency_keys (scope "session.vitals", the user who entered them).

Revision ID: 0008_idempotency_scope
Revises: 0007_merge
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_idempotency_scope"
down_revision = "0007_merge"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("request_hash", sa.String(length=64), nullable=False,
                                      server_default=""))
        batch_op.drop_constraint("uq_idempotency_keys_scope_key", type_="unique")
        batch_op.create_unique_constraint("uq_idempotency_keys_scope_user_key",
                                          ["scope", "user_id", "key"])
    op.execute(
        "INSERT INTO idempotency_keys (scope, key, user_id, resource_id, request_hash, "
        "created_at) SELECT 'session.vitals', idempotency_key, coalesce(entered_by, 0), id, "
        "'', created_at FROM chair_vitals WHERE idempotency_key IS NOT NULL")
    op.execute("UPDATE chair_vitals SET idempotency_key = NULL")


def downgrade() -> None:
    op.execute("UPDATE chair_vitals SET idempotency_key = (SELECT k.key FROM idempotency_keys k "
               "WHERE k.scope = 'session.vitals' AND k.resource_id = chair_vitals.id "
               "AND k.id = (SELECT min(k2.id) FROM idempotency_keys k2 WHERE k2.scope = "
               "'session.vitals' AND k2.key = k.key))")
    op.execute("DELETE FROM idempotency_keys WHERE scope = 'session.vitals'")
    # Keys of different users may now share (scope, key): keep the first of each.
    op.execute("DELETE FROM idempotency_keys WHERE id NOT IN (SELECT min(id) FROM "
               "idempotency_keys GROUP BY scope, key)")
    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.drop_constraint("uq_idempotency_keys_scope_user_key", type_="unique")
        batch_op.create_unique_constraint("uq_idempotency_keys_scope_key", ["scope", "key"])
        batch_op.drop_column("request_hash")
