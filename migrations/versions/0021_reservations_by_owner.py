"""``reservations_personal_by_owner``: the write-side index's personal keys (emails,
phones, WeChat ids, usernames) by their owner, so a command changing an account's
username or phone reads what the account holds from the index itself, not from a read
model that may lag, and frees every other one.

Built ``CONCURRENTLY``: the table takes every signup's and draft's claims, and a plain
build would hold them off for as long as it runs. A build that failed leaves an invalid
index, dropped here before the next try.

Revision ID: 0021
Revises: 0020
"""

from __future__ import annotations

from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

INDEX = "reservations_personal_by_owner"


def upgrade() -> None:
    with op.get_context().autocommit_block():
        op.execute(
            "DO $$ BEGIN IF EXISTS (SELECT 1 FROM pg_index i JOIN pg_class c "
            "ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
            f"WHERE n.nspname = 'public' AND c.relname = '{INDEX}' "
            "AND NOT i.indisvalid) THEN "
            f"DROP INDEX public.{INDEX}; END IF; END $$"
        )
        op.execute(
            f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {INDEX} ON public.reservations "
            "(owner_id, kind) WHERE kind IN ('email', 'phone', 'wechat', 'username')"
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS public.{INDEX}")
