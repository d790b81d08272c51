"""webhooks: signed event notifications delivered through the outbox

Adds ``webhook_endpoints`` (URL, subscribed events, the signing secret encrypted at rest) and,
on ``outbox_messages``, the endpoint and the fixed JSON body of a webhook delivery;
``outbox_messages.patient_id`` becomes optional (a test ping names no patient). No other table
references ``outbox_messages``, so its rebuild on SQLite touches nothing else.

Revision ID: 0014_webhooks
Revises: 0013_api_tokens
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014_webhooks"
down_revision = "0013_api_tokens"
branch_labels = None
depends_on = None

ENDPOINT_FK = "fk_outbox_messages_endpoint_id_webhook_endpoints"


def upgrade() -> None:
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("url", sa.String(500), nullable=False),
        sa.Column("events", sa.String(200), nullable=False),
        sa.Column("description", sa.String(200), nullable=False),
        sa.Column("secret", sa.String(300), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("removed_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"],
                                name=op.f("fk_webhook_endpoints_created_by_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_endpoints")),
    )
    with op.batch_alter_table("outbox_messages", schema=None) as batch_op:
        batch_op.alter_column("patient_id", existing_type=sa.Integer(), nullable=True)
        batch_op.add_column(sa.Column("endpoint_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("payload", sa.Text(), nullable=False,
                                      server_default=""))
        batch_op.create_foreign_key(op.f(ENDPOINT_FK), "webhook_endpoints", ["endpoint_id"],
                                    ["id"])


def downgrade() -> None:
    op.execute("DELETE FROM outbox_messages WHERE patient_id IS NULL")
    with op.batch_alter_table("outbox_messages", schema=None) as batch_op:
        batch_op.drop_constraint(op.f(ENDPOINT_FK), type_="foreignkey")
        batch_op.drop_column("payload")
        batch_op.drop_column("endpoint_id")
        batch_op.alter_column("patient_id", existing_type=sa.Integer(), nullable=False)
    op.drop_table("webhook_endpoints")
