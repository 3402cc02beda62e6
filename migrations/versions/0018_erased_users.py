"""``erased_users`` in every social generation: the social projector now reads the users
family too, and an erased account follows no one and is followed by no one from its
erasure on (a follow applied after the erasure is dropped).

Nothing is backfilled here: a social generation has no checkpoint for the users topic, so
its projector reads that topic from its first record and applies every earlier erasure,
removing the follows by and of accounts erased before this revision.

Revision ID: 0018
Revises: 0017
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import text

from bloghub.adapters.postgres.generations import schema_name
from bloghub.adapters.postgres.read_model_upgrades import upgrade_main

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def _schemas() -> list[str]:
    rows = op.get_bind().execute(
        text("SELECT generation FROM projector_generations WHERE projector = 'social'")
    )
    return [schema_name("social", generation) for (generation,) in rows]


def upgrade() -> None:
    # The step itself is shared with the databases `bloghub migrate` moved a generation to.
    upgrade_main(op.get_bind(), revision)


def downgrade() -> None:
    for schema in _schemas():
        op.execute(f'DROP TABLE IF EXISTS "{schema}".erased_users')
