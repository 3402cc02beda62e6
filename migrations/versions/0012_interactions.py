"""Interactions: generation 1 of the interactions read model (counts per article, likes,
collections and their articles, read de-duplication).

A generation that exists already (a database where ``article_stats`` was made by 0007's
pass over every generation) gets the tables it lacks; the projector fills them from the log.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import text

from bloghub.adapters.postgres.generations import read_model_in, schema_name

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def _generations() -> list[int]:
    rows = op.get_bind().execute(
        text("SELECT generation FROM projector_generations WHERE projector = 'interactions'")
    )
    return [generation for (generation,) in rows] or [1]


def upgrade() -> None:
    bind = op.get_bind()
    for generation in _generations():
        schema = schema_name("interactions", generation)
        op.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        read_model_in("interactions", schema).create_all(bind, checkfirst=True)
    op.execute(
        text(
            "INSERT INTO projector_generations (projector, generation, state, activated_at) "
            "VALUES ('interactions', 1, 'active', now()) ON CONFLICT DO NOTHING"
        )
    )


def downgrade() -> None:
    for generation in _generations():
        op.execute(f'DROP SCHEMA IF EXISTS "{schema_name("interactions", generation)}" CASCADE')
    op.execute("DELETE FROM projector_generations WHERE projector = 'interactions'")
