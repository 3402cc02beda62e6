"""Social and comments: generation 1 of the social read model (follows, their counts, the
feed's article times) and of the comments read model (comment trees, counts per article).

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import text

from bloghub.adapters.postgres.generations import read_model_in, schema_name

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

PROJECTORS = ("social", "comments")


def upgrade() -> None:
    for projector in PROJECTORS:
        schema = schema_name(projector, 1)
        op.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        read_model_in(projector, schema).create_all(op.get_bind(), checkfirst=True)
        op.execute(
            text(
                "INSERT INTO projector_generations (projector, generation, state, activated_at) "
                "VALUES (:p, 1, 'active', now()) ON CONFLICT DO NOTHING"
            ).bindparams(p=projector)
        )


def downgrade() -> None:
    for projector in PROJECTORS:
        op.execute(f'DROP SCHEMA IF EXISTS "{schema_name(projector, 1)}" CASCADE')
        op.execute(
            text("DELETE FROM projector_generations WHERE projector = :p").bindparams(p=projector)
        )
