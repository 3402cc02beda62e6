"""Published articles per tag, kept as counts in every articles generation.

``/v1/tags`` counted every tag row of every published article on each request; the
articles projector now keeps the counts as it applies events. A generation that exists
already gets the table filled from its tag rows here. The tag rows are locked against
writes first, so a projector batch either committed before the counts are taken (and is
in them) or waits and then adds its own change to them. (0007 may have created the
table empty already, so the counts are replaced, not added to.)

Run it with the articles projectors stopped or already on the code that keeps the counts
(until it has run, that code waits, saying the schema is behind): a projector of the code
before it would move tag rows without moving their counts.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import text

from bloghub.adapters.postgres.generations import read_model_in, schema_name

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def _articles_schemas() -> list[str]:
    bind = op.get_bind()
    rows = bind.execute(
        text("SELECT generation FROM projector_generations WHERE projector = 'articles'")
    )
    return [schema_name("articles", generation) for (generation,) in rows]


def upgrade() -> None:
    bind = op.get_bind()
    for schema in _articles_schemas():
        read_model_in("articles", schema).create_all(bind, checkfirst=True)
        op.execute(f'LOCK TABLE "{schema}".article_tags IN SHARE MODE')
        op.execute(f'DELETE FROM "{schema}".tag_counts')
        op.execute(
            f'INSERT INTO "{schema}".tag_counts (tag, articles) '
            f'SELECT tag, count(*) FROM "{schema}".article_tags GROUP BY tag'
        )


def downgrade() -> None:
    for schema in _articles_schemas():
        op.execute(f'DROP TABLE IF EXISTS "{schema}".tag_counts')
