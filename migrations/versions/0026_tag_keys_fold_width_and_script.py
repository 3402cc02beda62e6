"""Tags in full width (and other compatibility forms) or in traditional Chinese are one tag
with their plain, simplified form, in every articles generation.

``readmodels.tag_key`` now folds compatibility forms (NFKC) before lower-casing, and
traditional Chinese characters into simplified ones after (as search folds its words), so
"RUST" in full-width letters (U+FF32 on, as a Chinese input method in full-width mode
types them) and "rust", or 數據庫 and 数据库, on two articles are one tag: listed,
counted and found as one. Rows written before this revision keep the key the code before
gave them: they are folded here by the step of revision 0022 (in Python, as the projector
folds them; the tag rows locked meanwhile), and the counts rebuilt.

Search documents written before keep their ``tag_keys`` until ``bloghub replay search``
rebuilds them: until then the tag filter of search misses such a document under the
plain form.

Downgrading leaves the folded tags as they are: each is a tag the code before could show.

Revision ID: 0026
Revises: 0025
"""

from __future__ import annotations

from alembic import op

from bloghub.adapters.postgres.read_model_upgrades import upgrade_main

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The step (``_tag_keys``) is shared with 0022 and with the databases `bloghub migrate`
    # moved a generation to.
    upgrade_main(op.get_bind(), revision)


def downgrade() -> None:
    """Folded tags stay as they are: each is a tag the code before could show."""
