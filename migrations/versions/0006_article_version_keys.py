"""Article version keys: zero-padded steps, and only the newest kept per article.

Keys were ``<article>:<version>`` with the version as written (``:2``, ``:10``), one per
change, kept forever. The command now reserves ``<article>:<version:010d>``, refuses a
change when a newer version of the article is held, and drops the older keys; this brings
existing rows to that shape.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        UPDATE reservations
           SET value = split_part(value, ':', 1) || ':' || lpad(split_part(value, ':', 2), 10, '0')
         WHERE kind = 'article_version' AND length(split_part(value, ':', 2)) < 10
        """
    )
    op.execute(
        """
        DELETE FROM reservations AS old
         WHERE old.kind = 'article_version' AND old.status = 'confirmed'
           AND EXISTS (
               SELECT 1 FROM reservations AS newer
                WHERE newer.kind = 'article_version' AND newer.status = 'confirmed'
                  AND split_part(newer.value, ':', 1) = split_part(old.value, ':', 1)
                  AND newer.value > old.value)
        """
    )


def downgrade() -> None:
    # The padded keys still name each version; the old shape is not needed to go back.
    pass
