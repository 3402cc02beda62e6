"""The lag of consumer groups as a terminal table, one row per partition."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rich.table import Table

from bloghub.ops.lag import GroupLag

BEHIND = "bold yellow"
UNKNOWN = "?"
NEVER_COMMITTED = "-"


# What a group's generation is, beside its name: one a replay ``--no-swap`` built is
# written by no one until switched in, so its lag grows by design.
MARKS = {"building": "building", "built": "BUILT, not serving"}


def render_lag(groups: Sequence[GroupLag], states: Mapping[str, str] | None = None) -> Table:
    """``states``: each group's generation state (``active``, ``building``, ``built``)."""
    states = states or {}
    table = Table(title="consumer lag", title_justify="left")
    # Ids fold onto a second line rather than lose their end (``.g2``) to an ellipsis on a
    # narrow or piped output.
    table.add_column("group", overflow="fold")
    table.add_column("topic", overflow="fold")
    for name in ("partition", "end", "committed", "lag", "lag s"):
        table.add_column(name, justify="right")
    for group in groups:
        if not group.partitions:
            table.add_row(group.group, "(no partitions)", end_section=True)
            continue
        last = len(group.partitions) - 1
        for i, p in enumerate(group.partitions):
            mark = MARKS.get(states.get(group.group, ""))
            named = f"{group.group}\n({mark})" if mark else group.group
            table.add_row(
                # The group name once per block keeps long ids from drowning the figures.
                named if i == 0 else "",
                p.topic,
                str(p.partition),
                str(p.end_offset),
                NEVER_COMMITTED if p.committed is None else str(p.committed),
                str(p.lag),
                UNKNOWN if p.lag_seconds is None else f"{p.lag_seconds:.1f}",
                style=BEHIND if p.lag > 0 else None,
                end_section=i == last,
            )
    return table
