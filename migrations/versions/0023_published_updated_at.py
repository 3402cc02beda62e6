"""``articles.published_updated_at`` in every articles generation: when the published
version last changed, which readers see as the article's update time (``/v1``'s
``updated_at``, RealWorld's ``updatedAt``), so an edit of the draft behind a published
article no longer moves it.

A published row whose last change was its publish gets that time here; one edited since
keeps showing its last change until a replay of the articles projector
(`bloghub replay articles`) fills it from the log. The databases `bloghub migrate` moved
an articles generation to get the same step from `bloghub db upgrade`
(``adapters/postgres/read_model_upgrades.py``).

Revision ID: 0023
Revises: 0022
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import text

from bloghub.adapters.postgres.generations import schema_name
from bloghub.adapters.postgres.read_model_upgrades import upgrade_main

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    upgrade_main(op.get_bind(), revision)


def downgrade() -> None:
    rows = op.get_bind().execute(
        text("SELECT generation FROM projector_generations WHERE projector = 'articles'")
    )
    for (generation,) in rows.all():
        schema = schema_name("articles", generation)
        op.execute(
            f'ALTER TABLE IF EXISTS "{schema}".articles DROP COLUMN IF EXISTS published_updated_at'
        )
