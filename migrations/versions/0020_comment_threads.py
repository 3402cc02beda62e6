"""``comment_threads`` and ``notifications_by_comment`` in every notifications generation:
the notifications projector keeps its own comment trees, so deleting a comment removes
the notifications about it and about every reply under it (at any depth), and a reply to
a comment already deleted notifies no one.

Nothing is backfilled here (the comments read model may be at another point of the log,
or in another store): a comment from before this revision has no row, so deleting it
removes its own notifications and those of replies posted since, and a replay
(``bloghub replay notifications``) rebuilds the generation with every comment and
deletion.

Revision ID: 0020
Revises: 0019
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import text

from bloghub.adapters.postgres.generations import schema_name
from bloghub.adapters.postgres.read_model_upgrades import upgrade_main

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def _schemas() -> list[str]:
    rows = op.get_bind().execute(
        text("SELECT generation FROM projector_generations WHERE projector = 'notifications'")
    )
    return [schema_name("notifications", generation) for (generation,) in rows]


def upgrade() -> None:
    # The step itself is shared with the databases `bloghub migrate` moved a generation to.
    upgrade_main(op.get_bind(), revision)


def downgrade() -> None:
    for schema in _schemas():
        op.execute(f'DROP INDEX IF EXISTS "{schema}".notifications_by_comment')
        op.execute(f'DROP TABLE IF EXISTS "{schema}".comment_threads')
