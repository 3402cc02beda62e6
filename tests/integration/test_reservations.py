"""The write-side index: one holder per key, and a sweeper that frees keys whose event
never arrived (a crash between reserve and append) without touching confirmed ones."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bloghub.adapters.postgres.engine import make_engine
from bloghub.adapters.postgres.lookups import Lookups
from bloghub.adapters.postgres.reservations import Reservations
from bloghub.commands.sweeper import sweep_forever
from bloghub.errors import Conflict
from bloghub.settings import Settings


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    e = make_engine(settings.sqlalchemy_url, pool_size=2)
    yield e
    await e.dispose()


@pytest.fixture(params=["sqlalchemy", "lookups"])
async def index(
    request: pytest.FixtureRequest, engine: AsyncEngine, settings: Settings
) -> AsyncIterator[Reservations]:
    """The index as tools build it (SQLAlchemy alone), and as the API does: its claims
    and confirmations as single statements on the lookups' asyncpg pool."""
    if request.param == "sqlalchemy":
        yield Reservations(engine)
        return
    lookups = await Lookups.open(settings.asyncpg_dsn, size=2, app="test-reservations")
    try:
        yield Reservations(engine, lookups)
    finally:
        await lookups.close()


async def _age(settings: Settings, value: str, seconds: int) -> None:
    conn = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        await conn.execute(
            "UPDATE reservations SET reserved_at = now() - make_interval(secs => $2) "
            "WHERE value = $1",
            value,
            seconds,
        )
    finally:
        await conn.close()


async def test_a_key_has_one_holder(index: Reservations) -> None:
    key = f"{secrets.token_hex(4)}@example.com"
    await index.reserve("email", key, "owner-1")
    with pytest.raises(Conflict):
        await index.reserve("email", key, "owner-2")
    await index.release("email", key, "owner-2")  # not the holder: nothing happens
    held = await index.get("email", key)
    assert held is not None
    assert held.owner_id == "owner-1"


async def test_sweeper_frees_only_stale_unconfirmed_keys(
    index: Reservations, settings: Settings
) -> None:
    crashed, confirmed, fresh = (f"{secrets.token_hex(4)}@example.com" for _ in range(3))
    for owner, key in enumerate((crashed, confirmed, fresh)):
        await index.reserve("email", key, f"owner-{owner}")
    await index.confirm("email", confirmed, "owner-1", "cG9z")
    await _age(settings, crashed, 3600)
    await _age(settings, confirmed, 3600)

    stop = asyncio.Event()
    sweeper = asyncio.create_task(sweep_forever(index, older_than_s=600, every_s=0.05, stop=stop))

    async def freed() -> bool:
        return await index.get("email", crashed) is None

    for _ in range(100):
        if await freed():
            break
        await asyncio.sleep(0.05)
    stop.set()
    await sweeper

    assert await index.get("email", crashed) is None
    kept = await index.get("email", confirmed)
    assert kept is not None
    assert (kept.status, kept.position) == ("confirmed", "cG9z")
    assert await index.get("email", fresh) is not None
    await index.reserve("email", crashed, "owner-9")  # the freed key can be taken again


async def test_a_step_below_a_held_newer_one_is_refused_and_older_steps_can_go(
    index: Reservations,
) -> None:
    series, owner = f"article-{secrets.token_hex(4)}", "author"
    for step in (2, 3, 4):
        key = await index.reserve_step("article_version", series, step, owner)
        await index.confirm("article_version", key, owner, "pos")
    assert key == f"{series}:0000000004"
    with pytest.raises(Conflict):
        await index.reserve_step("article_version", series, 4, owner)  # taken

    assert await index.release_steps_before("article_version", series, 4) == 2
    assert await index.get("article_version", f"{series}:0000000002") is None
    # Step 3 is free again, but a change decided on version 2 must still lose: 4 is held.
    with pytest.raises(Conflict):
        await index.reserve_step("article_version", series, 3, owner)
    # Another series is not touched by this one's steps, and the next step is free.
    other = await index.reserve_step("article_version", f"{series}x", 3, owner)
    assert other == f"{series}x:0000000003"
    assert await index.reserve_step("article_version", series, 5, owner) == f"{series}:0000000005"


async def test_the_first_free_candidate_is_claimed_in_order(index: Reservations) -> None:
    base = f"slug-{secrets.token_hex(4)}"
    await index.reserve("slug", base, "article-1")
    await index.reserve("slug", f"{base}-b", "article-2")
    got = await index.reserve_first("slug", [base, f"{base}-b", f"{base}-c"], "article-3")
    assert got == f"{base}-c"
    held = await index.get("slug", got)
    assert held is not None
    assert (held.owner_id, held.status) == ("article-3", "pending")
    with pytest.raises(Conflict):
        await index.reserve_first("slug", [base, f"{base}-b"], "article-4")


async def test_a_claim_repeated_by_its_owner_holds_and_another_owner_is_refused(
    index: Reservations,
) -> None:
    """A claim sent again (its connection was lost, its answer with it) finds its own
    pending row; anyone else, or the owner of a confirmed key, is refused."""
    key = f"{secrets.token_hex(4)}@example.com"
    await index.reserve("email", key, "owner-1")
    await index.reserve("email", key, "owner-1")
    with pytest.raises(Conflict):
        await index.reserve("email", key, "owner-2")
    await index.confirm("email", key, "owner-1", "cG9z")
    for owner in ("owner-1", "owner-2"):
        with pytest.raises(Conflict):
            await index.reserve("email", key, owner)
    held = await index.get("email", key)
    assert held is not None
    assert (held.owner_id, held.status, held.position) == ("owner-1", "confirmed", "cG9z")


async def test_a_claim_right_after_the_server_ended_the_pools_sessions_is_taken(
    index: Reservations, settings: Settings
) -> None:
    # As after a failover or an administrator's termination: every pooled connection is
    # gone, and the first use of one may find its protocol left mid-exchange.
    admin = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        for round_ in range(3):
            # Both pooled connections open (two claims at once), then ended by the server.
            await asyncio.gather(
                *(index.reserve("email", f"warm-{secrets.token_hex(4)}@x.test", "w") for _ in "ab")
            )
            await admin.execute(
                # This run's database only: another instance on the server is not ours.
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name"
                " IN ('test-reservations', 'bloghub') AND pid <> pg_backend_pid()"
                " AND datname = current_database()"
            )
            value = f"after-{round_}-{secrets.token_hex(4)}@example.com"
            await index.reserve("email", value, "owner")
            held = await index.get("email", value)
            assert held is not None
            assert held.owner_id == "owner"
    finally:
        await admin.close()


async def test_confirmations_at_once_each_confirm_their_own_key_with_their_position(
    index: Reservations,
) -> None:
    """Confirmations made together (the API sends those waiting in one statement): each key
    its own position, the same key confirmed twice at once is confirmed once, a key gone
    meanwhile (swept) is confirmed again, and another owner's key is left alone."""
    run = secrets.token_hex(4)
    slugs = [f"slug-{run}-{i}" for i in range(40)]
    for i, slug in enumerate(slugs):
        await index.reserve("slug", slug, f"article-{i}")
    taken = f"slug-{run}-other"
    await index.reserve("slug", taken, "article-other")
    swept = f"slug-{run}-swept"  # never reserved here: as if the sweeper freed it
    await asyncio.gather(
        *(index.confirm("slug", s, f"article-{i}", f"pos-{i}") for i, s in enumerate(slugs)),
        index.confirm("slug", slugs[-1], "article-39", "pos-39"),
        index.confirm("slug", taken, "article-intruder", "pos-x"),
        index.confirm("slug", swept, "article-swept", "pos-s"),
    )
    for i, slug in enumerate(slugs):
        held = await index.get("slug", slug)
        assert held is not None
        assert (held.owner_id, held.status, held.position) == (
            f"article-{i}",
            "confirmed",
            f"pos-{i}",
        )
    other = await index.get("slug", taken)
    assert other is not None
    assert (other.owner_id, other.status, other.position) == ("article-other", "pending", None)
    again = await index.get("slug", swept)
    assert again is not None
    assert (again.owner_id, again.status, again.position) == ("article-swept", "confirmed", "pos-s")
