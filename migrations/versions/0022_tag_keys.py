"""Tags are one tag whatever their case, in every articles generation.

``article_tags`` and ``tag_counts`` keep each tag in its lower-case form
(``readmodels.tag_key``), which listings by tag and ``/v1/tags`` go by, so "Python" and
"python" on two articles are one tag: listed, counted and found as one. Rows written
before this revision hold tags as their authors wrote them: they are folded here (in
Python, as the projector folds them: PostgreSQL's ``lower`` depends on the database's
locale),
and the counts rebuilt from them. The tag rows are locked against writes meanwhile, so a
projector batch either committed before (and is folded) or waits and writes folded tags.

Downgrading leaves the folded tags as they are: each is a tag the code before could show.

Revision ID: 0022
Revises: 0021
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import text

from bloghub.adapters.postgres.generations import schema_name
from bloghub.readmodels import tag_key

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def _articles_schemas() -> list[str]:
    rows = op.get_bind().execute(
        text("SELECT generation FROM projector_generations WHERE projector = 'articles'")
    )
    return [schema_name("articles", generation) for (generation,) in rows]


def upgrade() -> None:
    bind = op.get_bind()
    for schema in _articles_schemas():
        tags_table = bind.execute(text("SELECT to_regclass(:t)"), {"t": f'"{schema}".article_tags'})
        if tags_table.scalar() is None:  # a generation not built yet: its tables come folded
            continue
        op.execute(f'LOCK TABLE "{schema}".article_tags IN EXCLUSIVE MODE')
        written = bind.execute(text(f'SELECT DISTINCT tag FROM "{schema}".article_tags'))
        moved = [(tag, tag_key(tag)) for (tag,) in written if tag_key(tag) != tag]
        if not moved:
            continue
        tags = [tag for tag, _ in moved]
        # An article keeps one tag per key already; ON CONFLICT covers one from before that.
        bind.execute(
            text(
                f'INSERT INTO "{schema}".article_tags (article_id, tag) '
                f'SELECT t.article_id, m.key FROM "{schema}".article_tags t '
                "JOIN unnest(CAST(:tags AS text[]), CAST(:keys AS text[])) AS m(tag, key) "
                "ON t.tag = m.tag ON CONFLICT DO NOTHING"
            ),
            {"tags": tags, "keys": [key for _, key in moved]},
        )
        bind.execute(
            text(f'DELETE FROM "{schema}".article_tags WHERE tag = ANY(CAST(:tags AS text[]))'),
            {"tags": tags},
        )
        op.execute(f'DELETE FROM "{schema}".tag_counts')
        op.execute(
            f'INSERT INTO "{schema}".tag_counts (tag, articles) '
            f'SELECT tag, count(*) FROM "{schema}".article_tags GROUP BY tag'
        )


def downgrade() -> None:
    """Folded tags stay as they are: each is a tag the code before could show."""
