"""Ids taken from a /v1 path: every hex spelling of a UUID names the one canonical id (so
every cache key made from it is the one the projectors clear); wrappers name nothing."""

from __future__ import annotations

from uuid import UUID

from hypothesis import given
from hypothesis import strategies as st

from bloghub.api.v1.path_ids import canonical_id


@given(st.uuids(), st.booleans(), st.booleans())
def test_every_hex_spelling_names_the_canonical_id(value: UUID, upper: bool, hyphens: bool) -> None:
    spelt = str(value) if hyphens else value.hex
    assert canonical_id(spelt.upper() if upper else spelt) == str(value)


@given(st.uuids())
def test_wrapped_or_oddly_hyphenated_ids_name_nothing(value: UUID) -> None:
    for spelt in (
        f"{{{value}}}",
        f"urn:uuid:{value}",
        f"{value}\n",
        f" {value}",
        f"{value.hex[:8]}-{value.hex[8:]}",
        value.hex[:31],
        value.hex + "0",
    ):
        assert canonical_id(spelt) is None, spelt


def test_text_that_is_no_id_names_nothing() -> None:
    for text in ("", "me", "not-a-uuid", "g" * 32, "0" * 8 + "-" * 4 + "0" * 24):
        assert canonical_id(text) is None, text
