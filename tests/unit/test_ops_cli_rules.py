"""Pure decisions behind the operators' commands: which generation a projector with no
registered one serves, what a stopped replay tells the operator, and a lag table that keeps
long group names readable however narrow the output."""

from __future__ import annotations

from rich.console import Console

from bloghub.ops.generations_admin import served_by_default
from bloghub.ops.lag import GroupLag, PartitionLag
from bloghub.ops.lag_table import render_lag
from bloghub.ops.replay_cli import stopped_message
from bloghub.ops.replay_progress import ReplayProgress

RESUME = "run the same command again to resume"


def progress(state: str, name: str = "interactions", generation: int = 2) -> ReplayProgress:
    return ReplayProgress(name, generation, state, 10, 10, None, 0.0)


def test_a_projector_with_no_rows_serves_generation_one() -> None:
    assert served_by_default({}) == {1: "active"}
    assert served_by_default({2: "building"}) == {1: "active", 2: "building"}


def test_generation_one_retires_once_another_is_active() -> None:
    assert served_by_default({2: "active"}) == {1: "retired", 2: "active"}


def test_registered_generations_are_left_as_they_are() -> None:
    known = {1: "retired", 2: "active", 3: "building"}
    assert served_by_default(known) == known


def test_a_replay_stopped_while_building_says_how_to_resume() -> None:
    assert RESUME in stopped_message([progress("building")])
    assert RESUME in stopped_message([progress("switched", "users"), progress("building")])
    assert RESUME in stopped_message([])


def test_a_replay_stopped_after_its_switch_does_not_offer_a_resume() -> None:
    said = stopped_message([progress("switched")])
    assert RESUME not in said
    assert "interactions g2 switched in" in said
    assert "Nothing to resume" in said


def test_a_built_generation_is_not_resumed_either() -> None:
    said = stopped_message([progress("built", "users", 3)])
    assert RESUME not in said
    assert "users g3 built" in said


def test_narrow_output_keeps_the_end_of_long_group_names() -> None:
    group = "t0123abcd-some-long-prefix.user_search.g12"
    topic = "t0123abcd-some-long-prefix.users"
    console = Console(record=True, width=60)
    console.print(render_lag([GroupLag.of(group, [PartitionLag(topic, 0, 5, 0, 5, 0, 0.0)])]))
    rows = [line.split("│") for line in console.export_text().splitlines() if "│" in line]
    # Folded onto the following lines of its column: every character is there, no ellipsis.
    assert "".join(row[1].strip() for row in rows) == group
    assert "".join(row[2].strip() for row in rows) == topic
