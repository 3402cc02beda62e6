"""The operator's line for a store out of reach: said for the 503s a store's outage gives,
once per interval, and not for the 503s that are no outage (a read model catching up, the
schema behind, a write the log could not confirm)."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from bloghub import logs
from bloghub.api.v1.search import SearchUnavailable
from bloghub.errors import CatchingUp, SchemaBehind, Unavailable
from bloghub.logs import Seldom, store_unreachable


def _said(exc: BaseException) -> list[str]:
    with capture_logs() as lines:
        store_unreachable("/v1/x", exc)
    return [line["event"] for line in lines]


def test_only_an_outage_is_said_and_once_per_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logs, "SELDOM", Seldom())
    for not_an_outage in (
        CatchingUp("your last change is still being applied"),
        SchemaBehind("run migrations"),
        SearchUnavailable("search is unavailable"),
    ):
        assert _said(not_an_outage) == [], not_an_outage
    out = Unavailable("the database is not reachable")
    assert _said(out) == ["api.store_unreachable"]
    assert _said(out) == [], "once per interval"

    monkeypatch.setattr(logs, "SELDOM", Seldom())
    wrapped = SearchUnavailable("search is unavailable")
    wrapped.__cause__ = Unavailable("the search index is not reachable")
    assert _said(wrapped) == ["api.store_unreachable"]
