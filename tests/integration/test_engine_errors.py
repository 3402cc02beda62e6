"""A database error names the statement, never the values bound to it: those are people's
emails, phones and texts, and the message ends up in logs."""

from __future__ import annotations

import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy import text

from bloghub.adapters.postgres.engine import make_engine
from bloghub.settings import Settings


async def test_a_failed_statement_does_not_carry_its_bound_values(settings: Settings) -> None:
    engine = make_engine(settings.sqlalchemy_url, pool_size=1)
    secret = "someone\u0000@example.com"
    try:
        async with engine.connect() as conn:
            with pytest.raises(sa_exc.DBAPIError) as failed:
                await conn.execute(text("SELECT CAST(:email AS text)"), {"email": secret})
    finally:
        await engine.dispose()
    assert "someone" not in str(failed.value)
    assert "hidden due to hide_parameters" in str(failed.value)
