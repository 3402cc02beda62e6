"""Accounts: phone, WeChat and profile columns on users, and the sessions table, in every
users generation that exists.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import text

from bloghub.adapters.postgres.generations import read_model_in
from bloghub.adapters.postgres.tables import sessions

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_COLUMNS = """
    ALTER TABLE "{s}".users ALTER COLUMN email DROP NOT NULL;
    ALTER TABLE "{s}".users ALTER COLUMN password_hash DROP NOT NULL;
    ALTER TABLE "{s}".users ADD COLUMN IF NOT EXISTS phone text UNIQUE;
    ALTER TABLE "{s}".users ADD COLUMN IF NOT EXISTS wechat_openid text UNIQUE;
    ALTER TABLE "{s}".users ADD COLUMN IF NOT EXISTS wechat_unionid text;
    ALTER TABLE "{s}".users ADD COLUMN IF NOT EXISTS nickname text;
    ALTER TABLE "{s}".users ADD COLUMN IF NOT EXISTS birthday date;
    ALTER TABLE "{s}".users ADD COLUMN IF NOT EXISTS about_me text;
"""


def _generations() -> list[str]:
    rows = op.get_bind().execute(
        text("SELECT generation FROM projector_generations WHERE projector = 'users'")
    )
    return [f"users_g{g}" for (g,) in rows]


def upgrade() -> None:
    # Nothing is deployed yet, so existing generations are altered in place rather than
    # rebuilt; later read-model changes go through a new generation and a replay.
    for schema in _generations():
        for statement in _COLUMNS.format(s=schema).split(";"):
            if statement.strip():
                op.execute(statement)
        model = read_model_in("users", schema)
        model.tables[f"{schema}.{sessions.name}"].create(op.get_bind(), checkfirst=True)


def downgrade() -> None:
    for schema in _generations():
        op.execute(f'DROP TABLE IF EXISTS "{schema}".sessions')
        for column in (
            "phone",
            "wechat_openid",
            "wechat_unionid",
            "nickname",
            "birthday",
            "about_me",
        ):
            op.execute(f'ALTER TABLE "{schema}".users DROP COLUMN IF EXISTS {column}')
