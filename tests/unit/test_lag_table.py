from __future__ import annotations

from rich.console import Console

from bloghub.ops.lag import GroupLag, PartitionLag
from bloghub.ops.lag_table import render_lag


def rendered(groups: list[GroupLag]) -> str:
    console = Console(record=True, width=120)
    console.print(render_lag(groups))
    return console.export_text()


def test_every_figure_of_every_partition_appears() -> None:
    groups = [
        GroupLag.of(
            "bloghub.users.g1",
            [
                PartitionLag("bloghub.users", 0, 1234, 0, 1230, 4, 61.25),
                PartitionLag("bloghub.users", 1, 777, 0, 777, 0, 0.0),
            ],
        ),
        GroupLag.of(
            "bloghub.search.g2", [PartitionLag("bloghub.articles", 2, 9, 3, None, 6, None)]
        ),
    ]
    text = rendered(groups)
    lines = text.splitlines()
    behind = next(line for line in lines if "1234" in line)
    assert "bloghub.users.g1" in behind
    for figure in ("1230", " 4 ", "61.2"):
        assert figure in behind
    caught_up = next(line for line in lines if "777" in line)
    assert caught_up.count("777") == 2
    assert "0.0" in caught_up
    never = next(line for line in lines if "bloghub.search.g2" in line)
    assert "bloghub.articles" in never
    assert " - " in never, "a group that never committed shows no committed offset"
    assert "?" in never, "an unknown age is shown as unknown, not as a number"


def test_lagging_rows_are_highlighted_and_figures_right_aligned() -> None:
    table = render_lag(
        [
            GroupLag.of(
                "g", [PartitionLag("t", 0, 5, 0, 2, 3, 1.0), PartitionLag("t", 1, 5, 0, 5, 0, 0.0)]
            )
        ]
    )
    assert [row.style for row in table.rows] == ["bold yellow", None]
    numeric = [
        c for c in table.columns if c.header in ("partition", "end", "committed", "lag", "lag s")
    ]
    assert len(numeric) == 5
    assert all(c.justify == "right" for c in numeric)


def test_a_generation_built_to_be_switched_in_later_is_marked_so() -> None:
    """Its lag grows by design (no one writes it until activated): unmarked, it read as a
    projector falling behind."""
    behind = [PartitionLag("bloghub.articles", 0, 9, 0, 3, 6, 12.0)]
    groups = [GroupLag.of("bloghub.articles.g2", behind), GroupLag.of("bloghub.users.g1", [])]
    console = Console(record=True, width=120)
    states = {"bloghub.articles.g2": "built", "bloghub.users.g1": "active"}
    console.print(render_lag(groups, states))
    text = console.export_text()
    assert "(BUILT, not serving)" in text
    assert text.count("BUILT") == 1
