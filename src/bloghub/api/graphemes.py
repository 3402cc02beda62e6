"""Where text may be cut: between two characters as a reader sees them, the extended
grapheme clusters of Unicode's text segmentation (UAX #29; ``regex``'s ``\\X``): a letter
with its marks, a Thai or Lao consonant with its vowel sign, a Devanagari conjunct, an
emoji with its modifier, joined parts and variation selector, a flag, a keycap, a Hangul
syllable's jamo. Cutting anywhere else leaves half a character on either side."""

from __future__ import annotations

import regex

_CLUSTER = regex.compile(r"\X")
# Whether a cluster ends after one of these can hang on what stands before it (an emoji
# joined by a zero-width joiner, a flag's pair of regional indicators, a conjunct's
# virama with the marks around it); after any other character it is decided by that
# character and the next alone.
_LOOKS_BACK = regex.compile(
    r"[\p{Grapheme_Cluster_Break=Extend}\p{Grapheme_Cluster_Break=ZWJ}"
    r"\p{Grapheme_Cluster_Break=Regional_Indicator}]"
)


def _settled(text: str, at: int) -> bool:
    """Whether a cluster starts at ``at`` whatever stands before ``at - 1``: a place the
    segmentation can be started from and agree with one started at the beginning."""
    if at <= 0 or at >= len(text):
        return True
    before = text[at - 1]
    if _LOOKS_BACK.match(before):
        return False
    pair = _CLUSTER.match(before + text[at])
    return pair is not None and pair.end() == 1


def around(text: str, at: int) -> tuple[int, int]:
    """``(at, at)`` when a cluster of ``text`` starts at ``at``; else the start and the end
    of the cluster ``at`` falls within. Segmented from the nearest settled place before
    ``at``, not from the beginning: a long text costs no more than a short one."""
    start = at
    while not _settled(text, start):
        start -= 1
    for cluster in _CLUSTER.finditer(text, start):
        if cluster.end() > at:
            return (at, at) if cluster.start() >= at else (cluster.start(), cluster.end())
    return at, at


def cut_before(text: str, at: int) -> int:
    """``at``, or the nearest place before it where a cluster starts."""
    return around(text, at)[0]


def clusters(text: str) -> list[str]:
    """``text`` cut into its clusters (from its start: a place where one starts)."""
    return [cluster.group() for cluster in _CLUSTER.finditer(text)]
