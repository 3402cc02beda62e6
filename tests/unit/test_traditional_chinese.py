"""The traditional-to-simplified table the search indexes map text through."""

from __future__ import annotations

from bloghub.adapters.traditional_chinese import PAIRS, mappings


def test_each_traditional_character_has_one_simplified_one() -> None:
    assert len(PAIRS) % 2 == 0
    table = dict(m.split(" => ") for m in mappings())
    assert len(table) == len(PAIRS) // 2, "no character is mapped twice"
    assert all(len(t) == 1 and len(s) == 1 and t != s for t, s in table.items())
    assert not set(table) & set(table.values()), "a simplified character is left as it is"
    for traditional, simplified in {
        "臺": "台",
        "灣": "湾",
        "資": "资",
        "庫": "库",
        "數": "数",
    }.items():
        assert table[traditional] == simplified
