"""A birthday may be any day up to today where the day began first (UTC+14): someone far
east of the server enters their own today early in their morning."""

from __future__ import annotations

from datetime import UTC, date, datetime, tzinfo

import pytest
from pydantic import ValidationError

from bloghub.api.v1 import schemas
from bloghub.api.v1.schemas import ProfilePatch


class _Clock(datetime):
    at = datetime(2026, 12, 31, 11, 0, tzinfo=UTC)  # 01:00 on New Year's Day in Kiribati

    @classmethod
    def now(cls, tz: tzinfo | None = None) -> _Clock:
        return cls.fromtimestamp(cls.at.timestamp(), tz)


@pytest.fixture
def new_years_eve(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(schemas, "datetime", _Clock)


@pytest.mark.usefixtures("new_years_eve")
def test_today_in_the_earliest_zone_is_taken_and_the_day_after_is_not() -> None:
    taken = ProfilePatch.model_validate_json('{"birthday": "2027-01-01"}')
    assert taken.birthday == date(2027, 1, 1)
    with pytest.raises(ValidationError, match="must not be in the future"):
        ProfilePatch.model_validate_json('{"birthday": "2027-01-02"}')


@pytest.mark.usefixtures("new_years_eve")
def test_the_documented_pattern_admits_the_years_a_running_process_may_meet() -> None:
    """The document is written once per process; one running past New Year must not
    call the new year's birthdays invalid."""
    schema = str(ProfilePatch.model_json_schema()["properties"]["birthday"])
    assert "202[0-8]" in schema
