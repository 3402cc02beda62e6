"""An operator's command that cannot work at all (settings that do not validate, a service
it cannot reach, a database never upgraded) says so in one line on stderr naming what to
do, and exits 2: no traceback."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import asyncpg
import pytest

from bloghub.adapters.postgres.databases import drop_database
from bloghub.settings import Settings
from tests.conftest import BASE_DSN, isolated, pg
from tests.e2e.test_ops_cli import Ran

DOWN = "127.0.0.1:1"  # nothing listens there
PG_DOWN = f"postgresql+asyncpg://bloghub:bloghub@{DOWN}/bloghub"


async def bloghub(env: dict[str, str], *args: str) -> tuple[Ran, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bloghub.cli",
        *args,
        env={**os.environ, "BLOGHUB_MODE": "test", "COLUMNS": "200", **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode is not None
    return Ran(process.returncode, out.decode() + err.decode()), err.decode()


async def explained(env: dict[str, str], args: tuple[str, ...], *words: str) -> None:
    ran, err = await bloghub(env, *args)
    assert ran.code == 2, ran.out
    assert "Traceback" not in ran.out, ran.out
    lines = err.strip().splitlines()
    assert lines, ran.out
    # Libraries may log before the end (aiokafka's connection error), one line each; the
    # last line is the command's own.
    last = lines[-1]
    assert last.startswith(f"bloghub {args[0]}: "), ran.out
    for word in words:
        assert word in last, ran.out
    assert "bloghub:bloghub@" not in ran.out, "the password is not shown"


@pytest.fixture(scope="module")
async def empty(run_id: str) -> AsyncIterator[str]:
    """A database no `bloghub db upgrade` ever ran on."""
    name = f"bloghub_t{run_id}_cli_empty"
    admin = await asyncpg.connect(BASE_DSN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        base = BASE_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
        yield f"{base}/{name}"
    finally:
        await drop_database(admin, name)
        await admin.close()


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"BLOGHUB_MODE": "production"}, ("production mode refuses", "BLOGHUB_OPERATOR_TOKEN")),
        ({"BLOGHUB_MODE": "bogus"}, ("invalid settings", "BLOGHUB_MODE")),
        (
            {"BLOGHUB_CORS_ORIGINS": '["*"]'},
            ("invalid settings", "BLOGHUB_CORS_ORIGINS", "BLOGHUB_CORS_ALLOW_CREDENTIALS"),
        ),
        # A list is JSON; a bare value is told so, not a traceback.
        ({"BLOGHUB_CORS_ORIGINS": "https://a.example"}, ("BLOGHUB_CORS_ORIGINS", "not JSON")),
        ({"BLOGHUB_SMS_COUNTRY_CODES": "[86"}, ("BLOGHUB_SMS_COUNTRY_CODES", "not JSON")),
        ({"BLOGHUB_TRUSTED_PROXIES": '["nope"]'}, ("BLOGHUB_TRUSTED_PROXIES", "'nope'")),
        # The value as given, even when it reads as a setting's name.
        (
            {"BLOGHUB_TRUSTED_PROXIES": '["redis_url"]'},
            ("'redis_url' is not an IP", "BLOGHUB_TRUSTED_PROXIES"),
        ),
        ({"BLOGHUB_KAFKA_BOOTSTRAP": DOWN}, ("cannot reach Kafka", "BLOGHUB_KAFKA_BOOTSTRAP")),
        ({"BLOGHUB_DATABASE_URL": PG_DOWN}, ("cannot reach PostgreSQL", "connection refused")),
    ],
)
async def test_lag_says_what_is_wrong(env: dict[str, str], words: tuple[str, ...]) -> None:
    await explained(env, ("lag",), *words)


@pytest.mark.parametrize("args", [("lag",), ("topics",)])
async def test_kafka_unreachable_is_one_line(args: tuple[str, ...]) -> None:
    """A command that asks once says it in its own line alone: aiokafka's record of the
    failed connection is not a second one."""
    env = {"BLOGHUB_KAFKA_BOOTSTRAP": DOWN}
    ran, err = await bloghub(env, *args)
    assert ran.code == 2, ran.out
    assert err.strip().splitlines() == [err.strip()], err
    assert "cannot reach Kafka" in err, err


@pytest.mark.parametrize(
    "args",
    [
        ("replay", "--status"),
        ("migrate", "status"),
        ("db", "upgrade"),
        # Before any worker starts (each would fail its start-up with a traceback) and
        # before `run` says where it serves.
        ("api", "--workers", "2"),
        ("run", "--workers", "2"),
    ],
)
async def test_postgres_unreachable(args: tuple[str, ...]) -> None:
    await explained({"BLOGHUB_DATABASE_URL": PG_DOWN}, args, "cannot reach PostgreSQL", DOWN)


@pytest.mark.parametrize("args", [("replay", "--status"), ("replay", "users")])
async def test_redis_unreachable(args: tuple[str, ...], settings: Settings) -> None:
    env = {
        "BLOGHUB_REDIS_URL": f"redis://{DOWN}/0",
        "BLOGHUB_DATABASE_URL": settings.sqlalchemy_url,
    }
    await explained(env, args, "cannot reach Redis", "BLOGHUB_REDIS_URL")


async def test_a_one_shot_command_says_redis_is_out_of_reach_in_its_line_alone(
    settings: Settings,
) -> None:
    env = {
        "BLOGHUB_REDIS_URL": f"redis://{DOWN}/0",
        "BLOGHUB_DATABASE_URL": settings.sqlalchemy_url,
    }
    ran, err = await bloghub(env, "replay", "--status")
    assert ran.code == 2, ran.out
    (line,) = err.strip().splitlines()  # no record of the client's own before it
    assert line.startswith("bloghub replay: cannot reach Redis"), ran.out


@pytest.mark.parametrize("args", [("replay", "--status"), ("replay", "users")])
async def test_a_redis_database_the_server_has_not_is_one_line(
    args: tuple[str, ...], settings: Settings
) -> None:
    """The server answers, and refuses the URL's database number."""
    url = urlsplit(settings.redis_url.get_secret_value())
    env = {
        "BLOGHUB_REDIS_URL": f"{url.scheme}://{url.netloc}/99",
        "BLOGHUB_DATABASE_URL": settings.sqlalchemy_url,
    }
    await explained(env, args, "has no database", "BLOGHUB_REDIS_URL")


@pytest.mark.parametrize("args", [("lag",), ("replay", "--status"), ("migrate", "status")])
async def test_a_database_never_upgraded(args: tuple[str, ...], empty: str) -> None:
    await explained({"BLOGHUB_DATABASE_URL": empty}, args, "run `bloghub db upgrade`")


async def test_a_failure_of_no_known_kind_keeps_its_traceback() -> None:
    # A projector name argparse lets through is refused as before; an unknown failure
    # (here a connection option the driver does not know) still shows where it came from.
    url = "postgresql+asyncpg://x:y@127.0.0.1:5432/d?no_such_option=1"
    ran, _ = await bloghub({"BLOGHUB_DATABASE_URL": url}, "lag")
    assert ran.code not in (0, 2), ran.out
    assert "Traceback" in ran.out, ran.out


async def test_a_replay_refused_for_opensearch_registers_no_generation(run_id: str) -> None:
    # It registered one "building" generation per projector it reached first, which the
    # dashboard then showed as a replay stuck in STOP, with nothing running it.
    async with isolated(run_id, "replay_nosearch") as s:
        env = {
            "BLOGHUB_DATABASE_URL": s.sqlalchemy_url,
            "BLOGHUB_PREFIX": s.prefix,
            "BLOGHUB_OPENSEARCH_URL": f"http://{DOWN}",
        }
        await explained(env, ("replay", "users", "search"), "cannot reach OpenSearch")
        async with pg(s) as conn:
            rows = await conn.fetch("SELECT projector, generation FROM projector_generations")
        assert [tuple(r) for r in rows if r["generation"] > 1] == []


async def test_an_opensearch_url_whose_path_names_no_index_is_one_line(
    run_id: str, settings: Settings
) -> None:
    """The client puts the URL's path before every request: here it names an index there
    is none of, and every request is a 404 (it was a NotFoundError's traceback)."""
    async with isolated(run_id, "replay_search_path") as s:
        env = {
            "BLOGHUB_DATABASE_URL": s.sqlalchemy_url,
            "BLOGHUB_PREFIX": s.prefix,
            "BLOGHUB_OPENSEARCH_URL": f"{settings.opensearch_url.rstrip('/')}/nosuchpath",
        }
        await explained(
            env, ("replay", "search", "--no-swap"), "answered 404", "/nosuchpath", "OPENSEARCH_URL"
        )
        async with pg(s) as conn:
            rows = await conn.fetch("SELECT projector, generation FROM projector_generations")
        assert [tuple(r) for r in rows if r["generation"] > 1] == []


@pytest.mark.parametrize("command", ["api", "run"])
async def test_a_taken_port_is_said_before_anything_starts(
    command: str, settings: Settings
) -> None:
    # `run` printed where it serves and started every projector (joining a running
    # instance's groups) before it failed to bind, and exited 3 after a traceback.
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        env = {
            "BLOGHUB_DATABASE_URL": settings.sqlalchemy_url,
            "BLOGHUB_API_HOST": "127.0.0.1",
            "BLOGHUB_API_PORT": str(port),
        }
        ran, _ = await bloghub(env, command, "--workers", "1")
    assert ran.code == 2, ran.out
    assert f"cannot listen on 127.0.0.1:{port}" in ran.out
    assert "serving on" not in ran.out
    assert "projector.started" not in ran.out


@pytest.mark.parametrize("flag", ["--workers", "--projectors"])
@pytest.mark.parametrize("count", ["0", "-1", "two"])
async def test_process_counts_below_one_are_refused(flag: str, count: str) -> None:
    ran, err = await bloghub({}, "run", flag, count)
    assert ran.code == 2, ran.out
    assert flag in err


async def test_a_time_that_is_not_one_is_refused_naming_its_option() -> None:
    ran, err = await bloghub({}, "migrate", "validate", "users", "--since", "yesterday")
    assert ran.code == 2, ran.out
    assert "Traceback" not in ran.out, ran.out
    assert "argument --since: 'yesterday' is not an ISO 8601 time" in err, err


async def test_project_s_help_names_the_projectors() -> None:
    ran, _ = await bloghub({}, "project", "--help")
    assert ran.code == 0, ran.out
    assert "one of: users, articles," in ran.out, ran.out


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("replay", "--status", "--no-swap"), "--status takes no projector names"),
        (("replay", "verify", "users", "1", "2", "--workers", "2"), "--workers goes with"),
        (("migrate", "status", "--to", "postgresql://x/y"), "status takes no --to"),
        (("migrate", "repair", "--every", "5"), "repair takes no --every"),
    ],
)
async def test_an_option_the_command_does_not_take_is_refused(
    args: tuple[str, ...], said: str
) -> None:
    """Not ignored: an operator who typed it expects it to do something."""
    ran, _ = await bloghub({}, *args)
    assert ran.code == 2, ran.out
    assert said in ran.out, ran.out
