"""Readable (console) log lines carry no control characters a client sent: a request path
with an escape sequence must not clear or recolour the terminal of whoever reads the log."""

from __future__ import annotations

import structlog

from bloghub.logs import brief_library_warnings, escape_controls


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


def test_a_librarys_warning_says_its_error_without_the_traceback() -> None:
    try:
        raise ConnectionRefusedError(111, "Connection refused")
    except ConnectionRefusedError as exc:
        info = (type(exc), exc, exc.__traceback__)
    event = {"event": "GET http://127.0.0.1:9/ [status:N/A]", "exc_info": info}
    warned = brief_library_warnings(None, "warning", dict(event))
    assert "exc_info" not in warned
    assert warned["error"] == "ConnectionRefusedError(111, 'Connection refused')"
    failed = brief_library_warnings(None, "error", dict(event))
    assert failed["exc_info"] == info, "an error keeps its traceback"
