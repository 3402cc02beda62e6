"""Alembic environment: runs migrations over the async engine built from settings."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from bloghub.adapters.postgres.engine import make_engine
from bloghub.adapters.postgres.tables import shared
from bloghub.settings import load_settings

target_metadata = shared


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()


async def _main() -> None:
    url = context.config.attributes.get("database_url") or load_settings().sqlalchemy_url
    engine = make_engine(url, pool_size=1, app="bloghub-migrations")
    async with engine.connect() as conn:
        await conn.run_sync(_run)
        await conn.commit()
    await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run against a database")
asyncio.run(_main())
