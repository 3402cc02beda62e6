"""A failed statement's message never carries its bound parameters: they hold password
hashes and codes, and such messages end up in logs and dead-letter headers."""

from __future__ import annotations

import secrets

import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql import insert

from bloghub.adapters.postgres.engine import make_engine
from bloghub.adapters.postgres.tables import reservations
from bloghub.settings import Settings


async def test_a_failed_statement_does_not_show_its_parameters(settings: Settings) -> None:
    secret = f"$argon2id$v=19$m=65536,t=3,p=4$salt${secrets.token_hex(16)}"
    value = f"leak-{secrets.token_hex(6)}"
    row = insert(reservations).values(kind="leak", value=value, owner_id=secret)
    engine = make_engine(settings.sqlalchemy_url, pool_size=1)
    try:
        async with engine.begin() as conn:
            await conn.execute(row)
        with pytest.raises(sa_exc.IntegrityError) as failed:
            async with engine.begin() as conn:
                await conn.execute(row)
        async with engine.begin() as conn:
            await conn.execute(reservations.delete().where(reservations.c.value == value))
    finally:
        await engine.dispose()
    assert "reservations" in str(failed.value)  # the message still says what failed …
    for shown in (str(failed.value), repr(failed.value)):
        assert secret not in shown  # … never with what
