"""SMS outbox: messages waiting for the outbox worker's retries.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import text

from bloghub.adapters.postgres.sms_tables import sms_outbox

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    sms_outbox.create(op.get_bind(), checkfirst=True)
    # The worker's claim reads only due pending rows; sent and failed ones stay out of it.
    op.create_index(
        "sms_outbox_due",
        "sms_outbox",
        ["next_attempt_at"],
        postgresql_where=text("status = 'pending'"),
    )


def downgrade() -> None:
    op.drop_index("sms_outbox_due", table_name="sms_outbox")
    sms_outbox.drop(op.get_bind(), checkfirst=True)
