"""A service address an operator mistyped (a URL that is no URL, another driver's scheme, a
port that is no number) is refused by every command in one line naming the setting, exit
2, with no traceback; so is a migration's target URL (``migrate start --to``), before
anything is registered. libpq's ``postgresql://`` is read as asyncpg's, wherever a
PostgreSQL URL is given."""

from __future__ import annotations

import pytest

from bloghub.settings import Settings
from tests.e2e.test_cli_errors import explained
from tests.e2e.test_ops_cli import bloghub, refused

PASSWORD = "bloghub:bloghub@"


@pytest.mark.parametrize(
    ("env", "args", "words"),
    [
        (
            {"BLOGHUB_DATABASE_URL": "garbage"},
            ("lag",),
            ("invalid settings", "BLOGHUB_DATABASE_URL", "postgresql+asyncpg://"),
        ),
        (
            {"BLOGHUB_DATABASE_URL": f"postgresql+psycopg2://{PASSWORD}127.0.0.1/bloghub"},
            ("migrate", "status"),
            ("BLOGHUB_DATABASE_URL", "not postgresql+psycopg2://", "asyncpg"),
        ),
        (
            {"BLOGHUB_DATABASE_URL": f"mysql://{PASSWORD}127.0.0.1/bloghub"},
            ("replay", "--status"),
            ("BLOGHUB_DATABASE_URL", "not mysql://"),
        ),
        (
            {"BLOGHUB_REDIS_URL": "garbage"},
            ("migrate", "status"),
            ("invalid settings", "BLOGHUB_REDIS_URL", "redis://"),
        ),
        (
            {"BLOGHUB_OPENSEARCH_URL": "garbage"},
            ("replay", "--status"),
            ("invalid settings", "BLOGHUB_OPENSEARCH_URL", "http://"),
        ),
        (
            {"BLOGHUB_OPENSEARCH_URL": "http://127.0.0.1:notaport"},
            ("replay", "--status"),
            ("BLOGHUB_OPENSEARCH_URL", "port must be a number"),
        ),
        (
            {"BLOGHUB_KAFKA_BOOTSTRAP": "127.0.0.1:notaport"},
            ("lag",),
            ("invalid settings", "BLOGHUB_KAFKA_BOOTSTRAP", "HOST:PORT"),
        ),
    ],
)
async def test_a_mistyped_service_address_is_refused_naming_its_setting(
    env: dict[str, str], args: tuple[str, ...], words: tuple[str, ...]
) -> None:
    await explained(env, args, *words)


async def test_a_libpq_database_url_works_as_asyncpgs(settings: Settings) -> None:
    ran = await bloghub(settings, "lag", env={"BLOGHUB_DATABASE_URL": settings.asyncpg_dsn})
    assert settings.asyncpg_dsn.startswith("postgresql://")
    assert ran.code == 0, ran.out
    assert f"{settings.prefix}.articles" in ran.out, ran.out


async def test_a_target_url_that_is_no_url_is_refused(settings: Settings) -> None:
    ran = await bloghub(settings, "migrate", "start", "articles", "--to", "notaurl")
    refused(ran, "the target URL (--to)", "postgresql+asyncpg://")


async def test_a_libpq_target_url_is_read_as_asyncpgs(settings: Settings) -> None:
    # libpq's spelling reaches the server as asyncpg's would: here, to hear that the
    # database does not exist (the driver psycopg was never asked for).
    nowhere = settings.asyncpg_dsn.rsplit("/", 1)[0] + "/bloghub_no_such_target"
    ran = await bloghub(settings, "migrate", "start", "articles", "--to", nowhere)
    refused(ran, "cannot reach the target", 'database "bloghub_no_such_target" does not exist')
    assert PASSWORD not in ran.out, "the password is not shown"
    status = await bloghub(settings, "migrate", "status")
    assert status.code == 0, status.out
    assert "bloghub_no_such_target" not in status.out, "nothing was registered"
