"""A highlight fragment's edges on whole characters as a reader sees them. OpenSearch ends
a fragment where its size runs out when no word break comes (a run of emoji, say), and may
start the next one there: within a family joined by zero-width joiners, between an emoji
and its skin tone, between a flag's two letters. A fragment is found in the text it came
from and each edge that falls within a grapheme cluster is moved to one (``graphemes``):
inwards, dropping the part, unless that part is marked, then outwards, completing it.

Nor does OpenSearch bound a fragment when no word break comes at all (a hash, a run of
Chinese without punctuation): the fragment is then the whole run, tens of kilobytes. A
fragment is ``clipped`` to a passage around its first mark before anything else."""

from __future__ import annotations

import re

from bloghub.api.graphemes import around, clusters

MARK, UNMARK = "<mark>", "</mark>"
# What OpenSearch's HTML encoder (Lucene's ``SimpleHTMLEncoder``) writes for each
# character it escapes; every other character stands as itself.
ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#x27;", "/": "&#x2F;"}
_UNESCAPED = {entity: char for char, entity in ESCAPES.items()}
# A fragment read piece by piece: a mark's tag, an entity, or a character.
_PIECE = re.compile(
    "|".join([re.escape(MARK), re.escape(UNMARK), *map(re.escape, _UNESCAPED), "."]), re.DOTALL
)
_TAGS = (MARK, UNMARK)


def escaped(text: str) -> str:
    return "".join(ESCAPES.get(c, c) for c in text)


def plain_text(fragment: str) -> str:
    """The text of ``fragment`` (escaped text with marks) as written: no marks, no entities."""
    return "".join(_UNESCAPED.get(p, p) for p in _PIECE.findall(fragment) if p not in _TAGS)


def clipped(fragment: str, most: int, before: int) -> str:
    """``fragment`` (escaped text with marks) cut to at most ``most`` characters of text,
    starting ``before`` characters ahead of its first mark (or at its start), a mark cut
    at the end closed there. One within ``most`` is kept as it is."""
    pieces: list[str] = _PIECE.findall(fragment)
    chars = [i for i, piece in enumerate(pieces) if piece not in _TAGS]
    if len(chars) <= most:
        return fragment
    mark_at = pieces.index(MARK) if MARK in pieces else None
    ahead = 0 if mark_at is None else sum(1 for i in chars if i < mark_at)
    start = max(0, min(ahead - before, len(chars) - most))  # never past the first mark
    cut_from = mark_at if mark_at is not None and start == ahead else chars[start]
    kept = pieces[cut_from : chars[start + most - 1] + 1]
    opened = False
    for piece in kept:
        opened = piece == MARK or (opened and piece != UNMARK)
    return "".join(kept) + (UNMARK if opened else "")


def on_whole_clusters(fragment: str, source: str) -> str:
    """``fragment`` (escaped text with marks) starting and ending where a cluster of
    ``source`` (the field's text it was cut from) does. One not found in it is kept as
    it is."""
    pieces: list[str] = _PIECE.findall(fragment)
    chars = [i for i, piece in enumerate(pieces) if piece not in _TAGS]
    plain = plain_text(fragment)
    start = source.find(plain) if plain else -1
    if start < 0:
        return fragment
    end = start + len(plain)
    first, after_first = around(source, start)
    before_last, last = around(source, end)
    head = after_first - start  # characters of a cluster begun before the fragment
    tail = end - before_last  # characters of one that goes on past it
    # Inwards, what is dropped must hold no mark, nor be all of the fragment.
    inwards = head + tail < len(plain)
    drop_head = pieces[: chars[head - 1] + 1] if inwards and head else []
    drop_tail = pieces[chars[-tail] :] if inwards and tail else []
    trim_head = inwards and not any(p in _TAGS for p in drop_head)
    trim_tail = inwards and not any(p in _TAGS for p in drop_tail)
    kept = pieces[len(drop_head) if trim_head else 0 :]
    if trim_tail and drop_tail:
        kept = kept[: -len(drop_tail)]
    return _marks_on_whole_clusters(
        [
            *([] if trim_head else _PIECE.findall(escaped(source[first:start]))),
            *kept,
            *([] if trim_tail else _PIECE.findall(escaped(source[end:last]))),
        ]
    )


def _marks_on_whole_clusters(pieces: list[str]) -> str:
    """The pieces of a fragment that starts and ends on whole clusters, with each mark
    widened to whole clusters too: OpenSearch marks the tokens its analyzer made, and one
    may end within a cluster (the first person of a family joined by zero-width joiners),
    which a reader would see cut in two, marked and not."""
    chars: list[str] = []
    runs: list[int] = []  # per character, the mark it is in (its number), or -1
    run, count = -1, 0
    for piece in pieces:
        if piece == MARK:
            run, count = count, count + 1
        elif piece == UNMARK:
            run = -1
        else:
            chars.append(piece)
            runs.append(run)
    plain = "".join(_UNESCAPED.get(c, c) for c in chars)
    at = 0
    for cluster in clusters(plain):
        span = range(at, at + len(cluster))
        first = next((runs[i] for i in span if runs[i] >= 0), -1)
        if first >= 0:
            for i in span:
                runs[i] = first
        at += len(cluster)
    out: list[str] = []
    was = -1
    for char, now in zip(chars, runs, strict=True):
        if now != was:
            out.extend(([UNMARK] if was >= 0 else []) + ([MARK] if now >= 0 else []))
            was = now
        out.append(char)
    if was >= 0:
        out.append(UNMARK)
    return "".join(out)
