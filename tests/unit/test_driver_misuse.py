"""An asyncpg ``InterfaceError`` is either a connection the driver calls gone (wait and try
another) or this code's misuse of the driver (a bug: retrying fails the same way for
ever, so it must not be a 503 that never recovers)."""

from __future__ import annotations

import asyncpg
import pytest

from bloghub.adapters.postgres.engine import translate, translated
from bloghub.errors import Transient

MISUSE = [
    asyncpg.InterfaceError("the number of query arguments cannot exceed 32767"),
    asyncpg.InterfaceError("the server expects 1 argument for this query, 2 were passed"),
]


@pytest.mark.parametrize("misuse", MISUSE)
def test_a_misused_driver_is_not_transient(misuse: asyncpg.InterfaceError) -> None:
    assert translate(misuse) is misuse


@pytest.mark.parametrize("misuse", MISUSE)
async def test_a_misused_driver_surfaces_as_itself(misuse: asyncpg.InterfaceError) -> None:
    with pytest.raises(type(misuse)) as raised:
        async with translated():
            raise misuse
    assert raised.value is misuse


@pytest.mark.parametrize(
    "closed",
    [
        asyncpg.InterfaceError("connection is closed"),
        asyncpg.InterfaceError("cannot perform operation: connection is closed"),
        asyncpg.InterfaceError("pool is closing"),
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        asyncpg.InternalClientError("cannot switch to state 12; another operation is in progress"),
    ],
)
async def test_a_closed_connection_is_still_transient(closed: Exception) -> None:
    with pytest.raises(Transient):
        async with translated():
            raise closed
