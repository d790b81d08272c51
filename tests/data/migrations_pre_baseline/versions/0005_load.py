"""load: the audit trail as interleaved chains (one tip per chain, appends skip busy tips)

Adds ``audit_events.chain`` (existing rows are chain 1, unchanged, still verifying) and the
tips of chains 2..CHAINS. Row ids now come from the table's sequence, so on PostgreSQL the
sequence is moved past the ids the single chain assigned itself.

Downgrade keeps a verifiable single chain only when every row is in chain 1 and the ids are
1..n; otherwise it refuses (hashes cannot be rewritten without the instance key).

Revision ID: 0005_load
Revises: 0004_merge
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_load"
down_revision = "0004_merge"
branch_labels = None
depends_on = None

CHAINS = 64  # ketaclinic.services.audit.CHAINS at this revision
GENESIS = "0" * 64


def upgrade() -> None:
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("chain", sa.Integer(), nullable=False,
                                      server_default="1"))
    heads = sa.table("audit_head", sa.column("id", sa.Integer),
                     sa.column("last_event_id", sa.Integer),
                     sa.column("last_hash", sa.String), sa.column("count", sa.Integer))
    bind = op.get_bind()
    present = {row[0] for row in bind.execute(sa.select(heads.c.id))}
    op.bulk_insert(heads, [{"id": chain, "last_event_id": 0, "last_hash": GENESIS, "count": 0}
                           for chain in range(1, CHAINS + 1) if chain not in present])
    if bind.dialect.name == "postgresql":
        op.execute("SELECT setval(pg_get_serial_sequence('audit_events', 'id'), "
                   "COALESCE((SELECT max(id) FROM audit_events), 0) + 1, false)")


def downgrade() -> None:
    bind = op.get_bind()
    striped = bind.execute(sa.text("SELECT count(*) FROM audit_events WHERE chain <> 1")
                           ).scalar_one()
    if striped:
        raise RuntimeError(
            f"{striped} audit rows are in chains other than chain 1; the single-chain schema "
            "cannot hold them verifiably. Restore a backup taken before 0005_load instead.")
    count, top = bind.execute(sa.text("SELECT count(*), COALESCE(max(id), 0) FROM audit_events")
                              ).one()
    if count != top:
        raise RuntimeError(
            "audit row ids have gaps (appends that rolled back after taking an id); the "
            "single-chain schema expects ids 1..n. Restore a backup taken before 0005_load.")
    op.execute("DELETE FROM audit_head WHERE id <> 1")
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_column("chain")
