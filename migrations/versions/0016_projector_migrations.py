"""The registry of projector read models moved to another database (``bloghub migrate``).

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

from alembic import op

from bloghub.adapters.postgres.tables import migrations

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Idempotent, like every revision here: a database stamped back runs them again.
    migrations.create(op.get_bind(), checkfirst=True)


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS projector_migrations")
