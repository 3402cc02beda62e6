"""Unique phone and WeChat id of users as partial indexes (rows that have one).

A plain unique constraint indexes every row, NULL included, and most accounts have
neither: each registration wrote two index entries nobody could ever look up. The partial
indexes keep the same guarantee for the rows that have a value and serve the same lookups
(``phone = $1`` implies ``phone IS NOT NULL``). The new index is built before the old
constraint goes, so uniqueness holds throughout.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import text

from bloghub.adapters.postgres.generations import schema_name

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

KEYS = ("phone", "wechat_openid")


def _users_schemas() -> list[str]:
    bind = op.get_bind()
    rows = bind.execute(
        text("SELECT generation FROM projector_generations WHERE projector = 'users'")
    )
    return [schema_name("users", generation) for (generation,) in rows]


def upgrade() -> None:
    for schema in _users_schemas():
        for column in KEYS:
            op.execute(
                f'CREATE UNIQUE INDEX IF NOT EXISTS users_{column}_uniq ON "{schema}".users '
                f"({column}) WHERE {column} IS NOT NULL"
            )
            op.execute(f'ALTER TABLE "{schema}".users DROP CONSTRAINT IF EXISTS users_{column}_key')


def downgrade() -> None:
    for schema in _users_schemas():
        for column in KEYS:
            op.execute(
                f'ALTER TABLE "{schema}".users ADD CONSTRAINT users_{column}_key UNIQUE ({column})'
            )
            op.execute(f'DROP INDEX IF EXISTS "{schema}".users_{column}_uniq')
