"""Username keys take the blank braille cell (U+2800) for the space it shows as, and a run
of spaces (or spaces at an end, which a character that shows nothing could leave) as one
space or none: "wangfang" followed by it, or "deleted" and "user" joined by it, were
names apart from the ones they look like. Keys already held are rewritten to the new
form; one whose new form another account holds already keeps its old key, so the name it
copied goes on naming the account that had it (as revision 0025 did).

Revision ID: 0027
Revises: 0026
"""

from __future__ import annotations

import re
import unicodedata

from alembic import op
from sqlalchemy import text

revision = "0027"
down_revision = "0026"
branch_labels = None
depends_on = None

# A copy of ``bloghub.commands.users.username_key``'s new steps as this revision applies
# them to a key (already NFKC, case-folded and without the characters that show nothing).
_SPACE_RUNS = re.compile(" {2,}")

_REWRITE = text(
    "UPDATE public.reservations SET value = :key "
    "WHERE kind = 'username' AND value = :old AND NOT EXISTS "
    "(SELECT 1 FROM public.reservations WHERE kind = 'username' AND value = :key)"
)


def upgrade() -> None:
    conn = op.get_bind()
    held = text("SELECT value FROM public.reservations WHERE kind = 'username'")
    for value in list(conn.execute(held).scalars()):
        spaced = unicodedata.normalize("NFKC", value.replace("\u2800", " "))
        key = _SPACE_RUNS.sub(" ", spaced).strip(" ")
        if key == value or not key:
            continue
        conn.execute(_REWRITE, {"key": key, "old": value})


def downgrade() -> None:
    """Rewritten keys stay as they are: the code before finds no account by a name whose
    key lost its blank braille cells, which the old key would not have found either once
    the name was typed without them."""
