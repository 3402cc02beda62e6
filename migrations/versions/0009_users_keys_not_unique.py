"""The users read model no longer enforces unique emails, phones or WeChat ids.

Which account holds a key is decided by the write-side index (``reservations``) alone.
Accounts' events are applied in any order across partitions: when A moves off phone P and
B then binds P, B's event may be applied before A's, and a unique index in the read model
refused it, so B's event was dead-lettered and B's phone never showed. Plain partial
indexes keep the lookups; login by email asks the index which account holds the address.

Every users generation gets the change. The lookup indexes are built before the unique
ones go, so a lookup never loses its index.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import text

from bloghub.adapters.postgres.generations import schema_name

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

KEYS = ("email", "phone", "wechat_openid")


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
                f'CREATE INDEX IF NOT EXISTS users_by_{column} ON "{schema}".users '
                f"({column}) WHERE {column} IS NOT NULL"
            )
        op.execute(f'ALTER TABLE "{schema}".users DROP CONSTRAINT IF EXISTS users_email_key')
        op.execute(
            f'DROP INDEX IF EXISTS "{schema}".users_phone_uniq, "{schema}".users_wechat_openid_uniq'
        )


def downgrade() -> None:
    # Fails if a key is on two accounts by then: the read model cannot be made unique
    # again without choosing between them, and that choice is the write-side index's.
    for schema in _users_schemas():
        op.execute(f'ALTER TABLE "{schema}".users ADD CONSTRAINT users_email_key UNIQUE (email)')
        for column in ("phone", "wechat_openid"):
            op.execute(
                f'CREATE UNIQUE INDEX users_{column}_uniq ON "{schema}".users '
                f"({column}) WHERE {column} IS NOT NULL"
            )
        for column in KEYS:
            op.execute(f'DROP INDEX IF EXISTS "{schema}".users_by_{column}')
