"""Write ``src/bloghub/adapters/traditional_chinese.py``: each traditional Chinese character
that ICU's ``Traditional-Simplified`` transform changes, with what it becomes, asked of a
running OpenSearch with the analysis-icu plugin (``scripts/services`` installs one).

    python scripts/traditional_chinese.py [http://127.0.0.1:9200]
"""

from __future__ import annotations

import sys
from pathlib import Path

import httpx

# The CJK unified ideographs, extension A and extension B.
BLOCKS = [(0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0x20000, 0x2A6DF)]
PER_LINE = 40  # characters (20 pairs): 80 columns, as each is two wide
OUT = Path(__file__).resolve().parents[1] / "src/bloghub/adapters/traditional_chinese.py"


def pairs(url: str) -> dict[str, str]:
    chars = [chr(c) for first, last in BLOCKS for c in range(first, last + 1)]
    found: dict[str, str] = {}
    for i in range(0, len(chars), 3000):
        chunk = chars[i : i + 3000]
        ask = {
            "tokenizer": "whitespace",
            "filter": [{"type": "icu_transform", "id": "Traditional-Simplified"}],
            "text": " ".join(chunk),
        }
        answer = httpx.post(f"{url}/_analyze", json=ask, timeout=60)
        answer.raise_for_status()
        tokens = answer.json()["tokens"]
        if len(tokens) != len(chunk):
            raise SystemExit("the transform did not answer one token per character")
        for char, token in zip(chunk, tokens, strict=True):
            if token["token"] != char:
                if len(token["token"]) != 1:
                    raise SystemExit(f"{char} becomes {token['token']!r}, not one character")
                found[char] = token["token"]
    # A character filter maps once, so a character that becomes one that itself changes
    # would leave the two apart: ICU swaps one pair (苧 and 苎); of such a pair the one
    # with the lower code point keeps its mapping, so both end as one character.
    for char, becomes in list(found.items()):
        if found.get(becomes) == char and char > becomes:
            del found[char]
    if set(found) & set(found.values()):
        raise SystemExit("a character becomes one that changes again")
    return found


def module(found: dict[str, str]) -> str:
    text = "".join(t + s for t, s in sorted(found.items()))
    lines = [text[i : i + PER_LINE] for i in range(0, len(text), PER_LINE)]
    body = "\n".join(f'    "{line}"' for line in lines)
    return f'''"""Traditional Chinese characters and the simplified ones they become: ICU's
``Traditional-Simplified`` transform, character by character ({len(found):,} of them), as
``scripts/traditional_chinese.py`` read it from OpenSearch's analysis-icu plugin (of a pair
ICU swaps, one keeps its mapping, so both end as one character). Made by that script; not
edited by hand.

The search indexes map these before segmenting (``search_indexes.py``), so a word is cut
the same way whichever script it is written in; tag keys fold them too
(``readmodels.tag_key``)."""

from __future__ import annotations

# Pairs: a traditional character, then its simplified one.
PAIRS = (
{body}
)


def mappings() -> list[str]:
    """The pairs as a ``mapping`` character filter takes them."""
    return [f"{{PAIRS[i]}} => {{PAIRS[i + 1]}}" for i in range(0, len(PAIRS), 2)]


def simplified_table() -> dict[int, str]:
    """The pairs as ``str.translate`` takes them."""
    return {{ord(PAIRS[i]): PAIRS[i + 1] for i in range(0, len(PAIRS), 2)}}
'''


if __name__ == "__main__":
    OUT.write_text(module(pairs(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:9200")))
    print(f"wrote {OUT}")
