"""Readable (console) log lines carry no control characters a client sent: a request path
with an escape sequence must not clear or recolour the terminal of whoever reads the log."""

from __future__ import annotations

import structlog

from bloghub.logs import escape_controls


def rendered(**event: object) -> str:
    renderer = structlog.dev.ConsoleRenderer(colors=False)
    line = renderer(None, "info", escape_controls(None, "info", dict(event)))
    assert isinstance(line, str)
    return line


def test_a_paths_control_characters_are_escaped() -> None:
    line = rendered(event="http.request", path="/v1/comments/x\x1b[2J\x1b[31mRED\x00\x08\x9b/r")
    assert not [ch for ch in line if ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0]
    assert "\\x1b[2J\\x1b[31mRED\\x00\\x08\\x9b" in line


def test_text_without_controls_is_written_as_it_is() -> None:
    line = rendered(event="comment.posted", title="数据库迁移—“quoted”-café")
    assert "title=数据库迁移—“quoted”-café" in line
