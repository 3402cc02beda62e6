"""SMS outbox: messages expire (a login code is worth nothing once it has expired).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable, no default: adding it rewrites nothing, and old rows never expire. A
    # database made from scratch has it already: 0002 creates the table from its current
    # definition.
    op.execute("ALTER TABLE sms_outbox ADD COLUMN IF NOT EXISTS expires_at timestamptz")
    # Codes already delivered or given up need not be kept in clear.
    op.execute("UPDATE sms_outbox SET text = '' WHERE status <> 'pending'")


def downgrade() -> None:
    op.drop_column("sms_outbox", "expires_at")
