"""``deleted_articles``, ``removed_notifications`` and ``notifications_by_article`` in
every notifications generation: deleting an article removes the notifications about it
(comments on it, replies under it, its like milestones), and a comment or like on it
applied after the delete (another topic, in no fixed order with it) notifies no one. A
removed notification (its article's or its comment's) is kept as where it sat, so
marking read "up to" it still marks the older ones.

Nothing is backfilled here, nor needs to be: the projector reads the articles topic from
this release on, and a topic it has no checkpoint for is read from its first record, so
the deletes from before this revision are applied then too.

Revision ID: 0028
Revises: 0027
"""

from __future__ import annotations

from alembic import op

from bloghub.adapters.postgres.read_model_upgrades import generation_schemas, upgrade_main

revision = "0028"
down_revision = "0027"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The step itself is shared with the databases `bloghub migrate` moved a generation to.
    upgrade_main(op.get_bind(), revision)


def downgrade() -> None:
    for schema in generation_schemas(op.get_bind(), "notifications"):
        op.execute(f'DROP INDEX IF EXISTS "{schema}".notifications_by_article')
        op.execute(f'DROP TABLE IF EXISTS "{schema}".deleted_articles')
        op.execute(f'DROP TABLE IF EXISTS "{schema}".removed_notifications')
