"""Per-user keys for the personal fields of events (crypto-shredding), and erased users.

``user_keys`` sits beside ``reservations`` on the write side: a replay needs it to read the
log and never rebuilds it. ``users.erased_at`` marks the tombstone an erasure leaves. It is
added in place to every users generation rather than through a rebuild: before this
revision nobody could be erased, so NULL is what a replay would give every existing row.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import text

from bloghub.adapters.postgres.generations import schema_name
from bloghub.adapters.postgres.tables import user_keys

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def _users_schemas() -> list[str]:
    rows = op.get_bind().execute(
        text("SELECT generation FROM projector_generations WHERE projector = 'users'")
    )
    return [schema_name("users", generation) for (generation,) in rows]


def upgrade() -> None:
    user_keys.create(op.get_bind(), checkfirst=True)
    for schema in _users_schemas():
        op.execute(f'ALTER TABLE "{schema}".users ADD COLUMN IF NOT EXISTS erased_at timestamptz')


def downgrade() -> None:
    for schema in _users_schemas():
        op.execute(f'ALTER TABLE "{schema}".users DROP COLUMN IF EXISTS erased_at')
    user_keys.drop(op.get_bind(), checkfirst=True)
