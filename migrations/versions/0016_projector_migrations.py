"""The registry of projector read models moved to another database (``bloghub migrate``).

Revision ID: 0016
Revises: 0014
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "projector_migrations",
        sa.Column("projector", sa.Text, primary_key=True),
        sa.Column("generation", sa.Integer, nullable=False),
        sa.Column("target_url", sa.Text, nullable=False),
        sa.Column("phase", sa.Integer, nullable=False),
        sa.Column(
            "changed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.CheckConstraint("phase BETWEEN 1 AND 4", name="projector_migrations_phase"),
    )


def downgrade() -> None:
    op.drop_table("projector_migrations")
