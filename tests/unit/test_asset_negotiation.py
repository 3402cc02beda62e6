"""How a static file's coding is chosen from Accept-Encoding, and when a cached copy is
still the one we would send."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bloghub.api.assets import coding, none_match, weights

MEMBERS = st.tuples(
    st.sampled_from(["gzip", "x-gzip", "GZip", "identity", "*", "br", "deflate"]),
    st.sampled_from(["", ";q=0", ";q=0.000", ";q=0.2", ";q=1", ";q=1.0", ";q=7"]),
)


def first_weight(members: list[tuple[str, str]], name: str) -> str | None:
    """The weight the first member naming ``name`` gives it (one with no valid weight
    says nothing)."""
    return next((q for c, q in members if c.lower() == name and q != ";q=7"), None)


@given(st.lists(MEMBERS, max_size=6))
def test_a_coding_the_client_weighs_zero_is_never_sent(members: list[tuple[str, str]]) -> None:
    header = ", ".join(c + q for c, q in members)
    refused = {";q=0", ";q=0.000"}
    gzips = [first_weight(members, c) for c in ("gzip", "x-gzip")]
    if any(q is not None for q in gzips) and all(q in refused for q in gzips if q is not None):
        assert coding(header) != "gzip", header
    named = first_weight(members, "identity")
    if named in refused or (named is None and first_weight(members, "*") in refused):
        assert coding(header) != "identity", header


def test_weights_are_read_as_rfc_9110_writes_them() -> None:
    header = "gzip;q=0.5, BR ;Q=1, deflate;q=2, zstd;q=0.1234, ;q=1, gzip;q=1, identity"
    assert weights(header) == {"gzip": 0.5, "br": 1.0, "identity": 1.0}
    assert coding(None) == "identity"
    assert coding("") == "identity"


def test_if_none_match_holds_lists_weak_tags_and_any() -> None:
    assert none_match('"a,b", W/"c"', '"c"')
    assert not none_match('"a,b", W/"c"', '"b"')
    assert none_match("*", '"c"')
    assert not none_match("", '"c"')
