"""``collect_cnt`` counts readers, not collection entries: an article is counted once per
user however many of their collections hold it (the interactions projector moves it by
collectors from now on). Every interactions generation's counts are recounted so from its
entries; articles whose count already agrees are left alone.

A projector of the code before this that commits after the recount moves a count by
entries again; `bloghub replay interactions` rebuilds a generation exactly.

Revision ID: 0017
Revises: 0016
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import text

from bloghub.adapters.postgres.generations import schema_name
from bloghub.adapters.postgres.read_model_upgrades import upgrade_main

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def _recount(distinct: bool) -> None:
    rows = op.get_bind().execute(
        text("SELECT generation FROM projector_generations WHERE projector = 'interactions'")
    )
    counted = "count(DISTINCT user_id)" if distinct else "count(*)"
    for (generation,) in rows.all():
        schema = schema_name("interactions", generation)
        op.execute(
            f'UPDATE "{schema}".article_stats s SET collect_cnt = coalesce(c.n, 0) '
            f'FROM "{schema}".article_stats t LEFT JOIN (SELECT article_id, {counted} AS n '
            f'FROM "{schema}".collection_items GROUP BY article_id) c '
            "ON c.article_id = t.article_id "
            "WHERE s.article_id = t.article_id AND s.collect_cnt <> coalesce(c.n, 0)"
        )


def upgrade() -> None:
    # The step itself is shared with the databases `bloghub migrate` moved a generation to.
    upgrade_main(op.get_bind(), revision)


def downgrade() -> None:
    _recount(distinct=False)
