"""``read_marks.part`` in every interactions generation: the log partition of the
article's events, by which the interactions projector drops marks too old to decide
anything (a day and an hour past, in the log's time), so the table holds about a day of
readers instead of every reader there ever was.

Rows from before this revision have no partition and stay until a replay rebuilds the
generation (`bloghub replay interactions`); they decide nothing once an hour old.

Revision ID: 0019
Revises: 0018
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import text

from bloghub.adapters.postgres.generations import schema_name
from bloghub.adapters.postgres.read_model_upgrades import upgrade_main

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def _schemas() -> list[str]:
    rows = op.get_bind().execute(
        text("SELECT generation FROM projector_generations WHERE projector = 'interactions'")
    )
    return [schema_name("interactions", generation) for (generation,) in rows]


def upgrade() -> None:
    # The step itself is shared with the databases `bloghub migrate` moved a generation to.
    upgrade_main(op.get_bind(), revision)


def downgrade() -> None:
    for schema in _schemas():
        op.execute(f'DROP INDEX IF EXISTS "{schema}".read_marks_by_part')
        op.execute(f'ALTER TABLE IF EXISTS "{schema}".read_marks DROP COLUMN IF EXISTS part')
