"""``articles.published_updated_at`` in every articles generation: when the published
version last changed, which readers see as the article's update time (``/v1``'s
``updated_at``, RealWorld's ``updatedAt``), so an edit of the draft behind a published
article no longer moves it.

A published row whose last change was its publish gets that time here; one edited since
keeps showing its last change until a replay of the articles projector
(`bloghub replay articles`) fills it from the log.

Revision ID: 0023
Revises: 0022
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import text

from bloghub.adapters.postgres.generations import schema_name

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def _schemas() -> list[str]:
    rows = op.get_bind().execute(
        text("SELECT generation FROM projector_generations WHERE projector = 'articles'")
    )
    return [schema_name("articles", generation) for (generation,) in rows]


def upgrade() -> None:
    for schema in _schemas():
        op.execute(
            f'ALTER TABLE "{schema}".articles '
            "ADD COLUMN IF NOT EXISTS published_updated_at timestamptz"
        )
        op.execute(
            f'UPDATE "{schema}".articles SET published_updated_at = updated_at '
            "WHERE published_updated_at IS NULL AND published_version = version"
        )


def downgrade() -> None:
    for schema in _schemas():
        op.execute(f'ALTER TABLE "{schema}".articles DROP COLUMN IF EXISTS published_updated_at')
