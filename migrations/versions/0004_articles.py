"""Articles: generation 1 of the articles read model (drafts, published versions, tags).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import text

from bloghub.adapters.postgres.generations import read_model_in, schema_name

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    schema = schema_name("articles", 1)
    op.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    read_model_in("articles", schema).create_all(op.get_bind(), checkfirst=True)
    op.execute(
        text(
            "INSERT INTO projector_generations (projector, generation, state, activated_at) "
            "VALUES ('articles', 1, 'active', now()) ON CONFLICT DO NOTHING"
        )
    )


def downgrade() -> None:
    op.execute('DROP SCHEMA IF EXISTS "articles_g1" CASCADE')
    op.execute("DELETE FROM projector_generations WHERE projector = 'articles'")
