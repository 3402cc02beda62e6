"""Slugs, descriptions and avatars for the RealWorld (Conduit) API: ``articles.slug`` (with
its lookup index), ``articles.description`` and ``articles.published_description`` in every
articles generation, ``users.image`` in every users generation, ``comments.number`` (with
its lookup index) in every comments generation.

Every column is nullable and filled by the projectors from events that carry them, so
the change is additive: code before it ignores the columns, code after it finds them.

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import text

from bloghub.adapters.postgres.generations import schema_name

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def _schemas(projector: str) -> list[str]:
    rows = op.get_bind().execute(
        text("SELECT generation FROM projector_generations WHERE projector = :p").bindparams(
            p=projector
        )
    )
    return [schema_name(projector, generation) for (generation,) in rows]


def upgrade() -> None:
    for schema in _schemas("articles"):
        for column in ("slug", "description", "published_description"):
            op.execute(f'ALTER TABLE "{schema}".articles ADD COLUMN IF NOT EXISTS {column} text')
        op.execute(
            f'CREATE INDEX IF NOT EXISTS articles_by_slug ON "{schema}".articles (slug) '
            "WHERE slug IS NOT NULL"
        )
    for schema in _schemas("users"):
        op.execute(f'ALTER TABLE "{schema}".users ADD COLUMN IF NOT EXISTS image text')
    for schema in _schemas("comments"):
        op.execute(f'ALTER TABLE "{schema}".comments ADD COLUMN IF NOT EXISTS number bigint')
        op.execute(
            f'CREATE INDEX IF NOT EXISTS comments_by_number ON "{schema}".comments (number) '
            "WHERE number IS NOT NULL"
        )


def downgrade() -> None:
    for schema in _schemas("articles"):
        op.execute(f'DROP INDEX IF EXISTS "{schema}".articles_by_slug')
        for column in ("slug", "description", "published_description"):
            op.execute(f'ALTER TABLE "{schema}".articles DROP COLUMN IF EXISTS {column}')
    for schema in _schemas("users"):
        op.execute(f'ALTER TABLE "{schema}".users DROP COLUMN IF EXISTS image')
    for schema in _schemas("comments"):
        op.execute(f'DROP INDEX IF EXISTS "{schema}".comments_by_number')
        op.execute(f'ALTER TABLE "{schema}".comments DROP COLUMN IF EXISTS number')
