"""The fast request line says what the configured JSON renderer would have said."""

from __future__ import annotations

import asyncio
import io
import re
import sys

import orjson
import pytest
import structlog

from bloghub.logs import ACCESS_FLUSH_S, access_log
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


async def test_lines_share_a_write_and_an_error_goes_out_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Counting(io.StringIO):
        writes = 0

        def write(self, text: str) -> int:
            self.writes += 1
            return super().write(text)

    out = Counting()
    monkeypatch.setattr(sys, "stderr", out)
    write = access_log(Settings(mode=Mode.TEST, log_format="json"))
    assert write is not None
    write("GET", "/v1/a", 200, 1.0, REQUEST_ID)
    write("GET", "/v1/b", 200, 1.0, REQUEST_ID)
    assert out.getvalue() == ""  # held for a moment, to share one write
    write("GET", "/v1/c", 503, 1.0, REQUEST_ID)
    paths = [orjson.loads(line)["path"] for line in out.getvalue().splitlines()]
    assert paths == ["/v1/a", "/v1/b", "/v1/c"]  # the error, and what came before it, at once
    assert out.writes == 1
    write("GET", "/v1/d", 200, 1.0, REQUEST_ID)
    await asyncio.sleep(ACCESS_FLUSH_S * 2)
    assert orjson.loads(out.getvalue().splitlines()[-1])["path"] == "/v1/d"  # not held long
