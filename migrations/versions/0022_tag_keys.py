"""Tags are one tag whatever their case, in every articles generation.

``article_tags`` and ``tag_counts`` keep each tag in its lower-case form
(``readmodels.tag_key``), which listings by tag and ``/v1/tags`` go by, so "Python" and
"python" on two articles are one tag: listed, counted and found as one. Rows written
before this revision hold tags as their authors wrote them: they are folded here (in
Python, as the projector folds them: PostgreSQL's ``lower`` depends on the database's
locale),
and the counts rebuilt from them. The tag rows are locked against writes meanwhile, so a
projector batch either committed before (and is folded) or waits and writes folded tags.

Downgrading leaves the folded tags as they are: each is a tag the code before could show.

Revision ID: 0022
Revises: 0021
"""

from __future__ import annotations

from alembic import op

from bloghub.adapters.postgres.read_model_upgrades import upgrade_main

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The step itself (``_tag_keys``) is shared with the databases `bloghub migrate` moved a
    # generation to.
    upgrade_main(op.get_bind(), revision)


def downgrade() -> None:
    """Folded tags stay as they are: each is a tag the code before could show."""
