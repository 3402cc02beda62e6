"""A nickname that reads as an account id is refused: an account with no nickname goes by
its id, so such a name would pass for it. Dashes and minus signs read as its hyphens."""

from __future__ import annotations

import sys
import unicodedata
from uuid import UUID

from hypothesis import given
from hypothesis import strategies as st

from bloghub.api.v1.schemas import DASHES, is_account_id

MINUSES = ("\u2212", "\u207b", "\u208b", "\u2796", "\u02d7", "\u2043")


def test_every_dash_unicode_knows_is_read_as_a_hyphen() -> None:
    every = {cp for cp in range(sys.maxunicode + 1) if unicodedata.category(chr(cp)) == "Pd"}
    assert every <= set(DASHES)


@given(st.uuids(), st.sampled_from([chr(cp) for cp in DASHES] + list(MINUSES)), st.booleans())
def test_an_id_spelt_with_other_dashes_reads_as_the_id(
    value: UUID, dash: str, cyrillic: bool
) -> None:
    spelt = str(value).replace("-", dash)
    if cyrillic:
        spelt = spelt.translate(str.maketrans("acde", "\u0430\u0441\u0501\u0435"))
    assert is_account_id(spelt)


def test_names_with_dashes_are_names() -> None:
    for name in ("Mary\u2013Ann", "jean-luc", "01a24923\u20107c4d", "\u2212 1"):
        assert not is_account_id(name)
