"""The fast request line says what the configured JSON renderer would have said."""

from __future__ import annotations

import io
import re
import sys

import orjson
import pytest
import structlog

from bloghub.logs import access_log
from bloghub.settings import Mode, Settings

REQUEST_ID = "01a2377b-e834-71c3-a0bd-4f24fbd850f6"


def structlog_line() -> dict[str, object]:
    """The same event through the processors ``configure_logging`` installs."""
    event: structlog.typing.EventDict = {
        "method": "GET",
        "path": "/v1/articles/x",
        "status": 200,
        "ms": 1.25,
        "event": "http.request",
        "request_id": REQUEST_ID,
    }
    event = structlog.processors.add_log_level(None, "info", event)
    event = structlog.processors.TimeStamper(fmt="iso", utc=True)(None, "info", event)
    rendered = structlog.processors.JSONRenderer(serializer=orjson.dumps)(None, "", event)
    line: dict[str, object] = orjson.loads(rendered)
    return line


def test_the_json_line_has_the_same_fields_and_forms(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    monkeypatch.setattr(sys, "stderr", out)
    write = access_log(Settings(mode=Mode.TEST, log_format="json"))
    assert write is not None
    write("GET", "/v1/articles/x", 200, 1.25, REQUEST_ID)
    line = orjson.loads(out.getvalue())
    expected = structlog_line()
    iso = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
    assert iso.match(str(line.pop("timestamp")))
    assert iso.match(str(expected.pop("timestamp")))
    assert line == expected
    assert out.getvalue().endswith("\n")


def test_readable_logs_keep_going_through_structlog() -> None:
    assert access_log(Settings(mode=Mode.TEST, log_format="console")) is None
    assert access_log(Settings(mode=Mode.TEST)) is None
