"""``user_keys.credentials_changed``: the log position of the account's last password
change, reset or erasure, kept on the write side beside its key. Logins wait for the users
projector to pass it before checking a password against the read model; it was kept in
Redis only (``<prefix>:credpos:<user>``), so a Redis that lost its data while the
projector lagged let the old password in.

Revision ID: 0024
Revises: 0023
"""

from __future__ import annotations

from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE public.user_keys ADD COLUMN IF NOT EXISTS credentials_changed text")


def downgrade() -> None:
    op.execute("ALTER TABLE public.user_keys DROP COLUMN IF EXISTS credentials_changed")
