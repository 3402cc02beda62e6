"""Notifications: generation 1 of the notifications read model (notifications, read
marks, the projector's own like counts for milestones).

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import text

from bloghub.adapters.postgres.generations import read_model_in, schema_name

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    schema = schema_name("notifications", 1)
    op.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    read_model_in("notifications", schema).create_all(op.get_bind(), checkfirst=True)
    op.execute(
        text(
            "INSERT INTO projector_generations (projector, generation, state, activated_at) "
            "VALUES ('notifications', 1, 'active', now()) ON CONFLICT DO NOTHING"
        )
    )


def downgrade() -> None:
    op.execute('DROP SCHEMA IF EXISTS "notifications_g1" CASCADE')
    op.execute("DELETE FROM projector_generations WHERE projector = 'notifications'")
