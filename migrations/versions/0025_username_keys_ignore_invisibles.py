"""Username keys leave out the characters that show nothing: "carol" and "carol" with a
zero-width joiner, a non-joiner or a tag character in it were two usernames that look the
same. Keys already held are rewritten to the new form; one whose new form another account
holds already (a look-alike of that account's name) keeps its old key, so the name it
copied goes on naming the account that had it.

Revision ID: 0025
Revises: 0024
"""

from __future__ import annotations

import re
import unicodedata

from alembic import op
from sqlalchemy import text

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None

# A copy of ``bloghub.commands.users._IGNORABLE`` as this revision applies it.
_IGNORABLE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e"
    "\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufff8\U0001bca0-\U0001bca3"
    "\U0001d173-\U0001d17a\U000e0000-\U000e0fff]"
)


_REWRITE = text(
    "UPDATE public.reservations SET value = :key "
    "WHERE kind = 'username' AND value = :old AND NOT EXISTS "
    "(SELECT 1 FROM public.reservations WHERE kind = 'username' AND value = :key)"
)


def upgrade() -> None:
    conn = op.get_bind()
    held = text("SELECT value FROM public.reservations WHERE kind = 'username'")
    for value in list(conn.execute(held).scalars()):
        key = unicodedata.normalize("NFKC", _IGNORABLE.sub("", value))
        if key == value:
            continue
        conn.execute(_REWRITE, {"key": key, "old": value})


def downgrade() -> None:
    """Rewritten keys stay as they are: the code before finds no account by a name whose
    key lost its invisible characters, which the old key would not have found either
    once the name was typed without them."""
