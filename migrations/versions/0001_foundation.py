"""Foundation: write-side index, projector checkpoints, generation registry, users g1.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import text

from bloghub.adapters.postgres.generations import read_model_in, schema_name
from bloghub.adapters.postgres.tables import checkpoints, generations, reservations

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    for table in (reservations, checkpoints, generations):
        table.create(bind, checkfirst=True)
    op.create_index(
        "reservations_pending_age",
        "reservations",
        ["reserved_at"],
        postgresql_where=text("status = 'pending'"),
    )
    _create_first_generation("users")


def _create_first_generation(projector: str) -> None:
    """Generation 1 of a projector's read model, created from the projector's tables."""
    schema = schema_name(projector, 1)
    op.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    read_model_in(projector, schema).create_all(op.get_bind(), checkfirst=True)
    op.execute(
        text(
            "INSERT INTO projector_generations (projector, generation, state, activated_at) "
            "VALUES (:p, 1, 'active', now()) ON CONFLICT DO NOTHING"
        ).bindparams(p=projector)
    )


def downgrade() -> None:
    op.execute('DROP SCHEMA IF EXISTS "users_g1" CASCADE')
    op.drop_index("reservations_pending_age", table_name="reservations")
    for table in (generations, checkpoints, reservations):
        table.drop(op.get_bind(), checkfirst=True)
