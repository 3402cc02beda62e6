"""Create any read-model table missing from a generation that exists.

A database migrated while 0003 was still taking shape reached head without
``users_g<N>.sessions``; sessions could then not be projected. Creating the tables a
generation lacks is harmless where they exist (checkfirst), so this runs for every
generation of every projector.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import text

from bloghub.adapters.postgres.generations import read_model_in, schema_name
from bloghub.adapters.postgres.tables import READ_MODELS

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    rows = list(bind.execute(text("SELECT projector, generation FROM projector_generations")))
    for projector, generation in rows:
        if projector in READ_MODELS:
            schema = schema_name(projector, generation)
            read_model_in(projector, schema).create_all(bind, checkfirst=True)


def downgrade() -> None:
    # Nothing to undo: the tables belong to their generations.
    pass
