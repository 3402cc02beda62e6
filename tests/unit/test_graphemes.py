"""Where text may be cut: the places ``graphemes.around`` finds, segmenting from a settled
place near the cut, are the cluster boundaries of the whole text segmented from its start."""

from __future__ import annotations

import regex
from hypothesis import given, settings
from hypothesis import strategies as st

from bloghub.api.graphemes import around, cut_before

# Characters whose clusters hang on what stands before them, and plain ones between.
PIECES = [
    "a",
    "字",
    " ",
    "\u0301",
    "\u200d",
    "\ufe0f",
    "\U0001f468",
    "\U0001f469",
    "\U0001f44d",
    "\U0001f3fd",
    "\U0001f1e8",
    "\U0001f1f3",
    "\u0e01",
    "\u0e33",
    "\u0915",
    "\u094d",
    "\u0937",
    "\u1112",
    "\u1161",
    "\u11ab",
    "\u0600",
    "\r",
    "\n",
    "\U000e0067",
    # Sequences whose parts join only in this order.
    "\U0001f468\u200d\U0001f469",
    "\u0915\u094d\u0937",
    "\U0001f1e8\U0001f1f3\U0001f1e8",
    "\u0e01\u0e33",
    "\U0001f44d\U0001f3fd",
]


def boundaries(text: str) -> set[int]:
    return {0, *(m.end() for m in regex.finditer(r"\X", text))}


@settings(max_examples=300)
@given(st.lists(st.sampled_from(PIECES), max_size=40))
def test_every_place_is_placed_as_the_whole_texts_segmentation_places_it(
    pieces: list[str],
) -> None:
    text = "".join(pieces)
    whole = boundaries(text)
    for at in range(len(text) + 1):
        lo, hi = around(text, at)
        if at in whole:
            assert (lo, hi) == (at, at), (text, at)
        else:
            assert lo == max(b for b in whole if b < at), (text, at)
            assert hi == min(b for b in whole if b > at), (text, at)
        assert cut_before(text, at) == lo


def test_a_run_of_flags_is_cut_between_flags() -> None:
    flags = "\U0001f1e8\U0001f1f3" * 50
    assert around(flags, 51) == (50, 52)
    assert cut_before(flags, 99) == 98
