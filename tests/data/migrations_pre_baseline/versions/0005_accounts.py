"""accounts: forced password change, recovery codes, two-factor keys encrypted at rest

- users.must_change_password / users.password_expires_at (an administrator's reset);
- recovery_codes (salted HMAC-SHA256 of one-time two-factor recovery codes);
- users.totp_secret / totp_pending_secret widened and encrypted with AES-256-GCM under a key
  derived from KETACLINIC_SECRET_KEY. The key reaches the migration when it runs through
  ketaclinic (`ketaclinic migrate`, `init`, or the app); without it the secrets stay as they
  are and `ketaclinic user encrypt-secrets` encrypts them later (until then the login of an
  affected user is refused with that instruction, never accepted on a plaintext key).

Revision ID: 0005_accounts
Revises: 0004_merge
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

revision = "0005_accounts"
down_revision = "0004_merge"
branch_labels = None
depends_on = None

_COLUMNS = ("totp_secret", "totp_pending_secret")


def _box():  # type: ignore[no-untyped-def]
    from ketaclinic.services.secretbox import SecretBox

    secret = context.config.attributes.get("secret_key")
    return SecretBox.for_secrets(secret) if secret else None


def _rewrite_secrets(transform) -> None:  # type: ignore[no-untyped-def]
    """Apply ``transform(value, context) -> value`` to every stored two-factor key."""
    from ketaclinic.services.secretbox import totp_context

    bind = op.get_bind()
    users = sa.table("users", sa.column("id", sa.Integer), *(
        sa.column(c, sa.String) for c in _COLUMNS))
    rows = bind.execute(sa.select(users).where(sa.or_(
        users.c.totp_secret.is_not(None), users.c.totp_pending_secret.is_not(None)))).all()
    for row in rows:
        values = {}
        for column in _COLUMNS:
            value = getattr(row, column)
            if value:
                values[column] = transform(value, totp_context(row.id, column))
        bind.execute(users.update().where(users.c.id == row.id).values(**values))


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        for column in _COLUMNS:
            batch_op.alter_column(column, existing_type=sa.String(length=64),
                                  type_=sa.String(length=255), existing_nullable=True)
        batch_op.add_column(sa.Column("must_change_password", sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
        batch_op.add_column(sa.Column("password_expires_at", sa.DateTime(), nullable=True))
    op.create_table(
        "recovery_codes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("salt", sa.String(length=32), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("used_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE",
                                name=op.f("fk_recovery_codes_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recovery_codes")),
    )
    with op.batch_alter_table("recovery_codes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_recovery_codes_user_id"), ["user_id"], unique=False)
    box = _box()
    if box is not None:
        from ketaclinic.services.secretbox import is_encrypted

        _rewrite_secrets(lambda value, ctx: value if is_encrypted(value)
                         else box.encrypt(value, ctx))


def downgrade() -> None:
    from ketaclinic.services.secretbox import is_encrypted

    box = _box()

    def decrypt(value: str, ctx: str) -> str:
        if not is_encrypted(value):
            return value
        if box is None:
            raise RuntimeError("downgrading 0005_accounts decrypts the two-factor keys: run it "
                               "through ketaclinic with KETACLINIC_SECRET_KEY set")
        return box.decrypt(value, ctx)

    _rewrite_secrets(decrypt)
    with op.batch_alter_table("recovery_codes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_recovery_codes_user_id"))
    op.drop_table("recovery_codes")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("password_expires_at")
        batch_op.drop_column("must_change_password")
        for column in _COLUMNS:
            batch_op.alter_column(column, existing_type=sa.String(length=255),
                                  type_=sa.String(length=64), existing_nullable=True)
