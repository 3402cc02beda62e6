"""``bloghub migrate`` moves the articles read model to another database while clients
write and read through the API: through all four phases and back one, every process
following each move without a restart; reads come from the target once it is first;
differences injected on the target (a row deleted, one changed, one extra) are found by
the validator and fixed by the repair consumer; no write is lost in either store."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx

from bloghub.ids import new_id_str
from bloghub.ops.migration_repair import run_repairs
from bloghub.settings import Settings
from tests.conftest import isolated, pg, projecting, serve
from tests.e2e.test_accounts import PASSWORD, signup_body
from tests.e2e.test_replay_under_load import environment, run
from tests.support import second_database, wait_until

WRITERS = 3


@dataclass
class Writes:
    """Writers publishing articles through the API, each read back at its position."""

    url: str
    titles: dict[str, str] = field(default_factory=dict)  # article id -> title
    positions: dict[str, str] = field(default_factory=dict)  # article id -> publish position
    problems: list[str] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def writer(self) -> None:
        async with httpx.AsyncClient(base_url=self.url, timeout=60) as c:
            email = f"mig-{secrets.token_hex(6)}@example.com"
            self._ok(await c.post("/v1/users", json=signup_body(email)), "signup")
            login = await c.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
            auth = {"authorization": f"Bearer {login.json()['access_token']}"}
            while not self.stop.is_set():
                await self._one(c, auth)

    async def _one(self, c: httpx.AsyncClient, auth: dict[str, str]) -> None:
        title = f"t-{secrets.token_hex(4)}"
        body = {"title": title, "content": "x", "tags": ["mig"]}
        drafted = await c.post("/v1/articles", json=body, headers=auth)
        if not self._ok(drafted, "draft"):
            return
        article_id = drafted.json()["article"]["id"]
        published = await c.post(f"/v1/articles/{article_id}/publish", headers=auth)
        if not self._ok(published, "publish"):
            return
        self.titles[article_id] = title
        self.positions[article_id] = published.headers["bloghub-position"]
        read = await c.get(
            f"/v1/articles/{article_id}",
            headers={"bloghub-after": published.headers["bloghub-position"]},
        )
        if not self._ok(read, "read"):
            return
        if read.headers.get("bloghub-stale") == "true":
            self.problems.append(f"read of {article_id} ran out of its bound")
        elif read.json()["article"]["title"] != title:
            self.problems.append(f"read of {article_id} missed its write")

    def _ok(self, response: httpx.Response, what: str) -> bool:
        if response.status_code >= 400:
            self.problems.append(f"{what}: {response.status_code} {response.text[:200]}")
        return response.status_code < 400


@contextlib.asynccontextmanager
async def writing(writes: Writes) -> AsyncIterator[None]:
    tasks = [asyncio.create_task(writes.writer()) for _ in range(WRITERS)]
    try:
        yield
    finally:
        writes.stop.set()
        await asyncio.gather(*tasks)


@contextlib.asynccontextmanager
async def connected(url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        yield conn
    finally:
        await conn.close()


async def phase(settings: Settings) -> int:
    async with pg(settings) as conn:
        found = await conn.fetchval(
            "SELECT phase FROM projector_migrations WHERE projector = 'articles'"
        )
    return int(found)


async def titles(url: str) -> dict[str, str]:
    async with connected(url) as conn:
        rows = await conn.fetch("SELECT id::text, published_title FROM articles_g1.articles")
    return {r["id"]: r["published_title"] for r in rows}


async def more_writes(writes: Writes, at_least: int) -> None:
    before = len(writes.titles)

    async def grew() -> bool:
        return len(writes.titles) >= before + at_least

    await wait_until(grew, timeout_s=120)


async def test_migrate_articles_through_four_phases_and_back_under_load(
    run_id: str, tmp_path: Path
) -> None:
    overrides: dict[str, object] = {"generations_poll_s": 0.5, "read_wait_s": 10.0}
    async with (
        isolated(run_id, "migrate", **overrides) as s,
        second_database(s) as target_url,
        projecting(s),
        serve(s) as api,
    ):
        env = environment(s)
        logs = tmp_path / "migrate.log"
        writes = Writes(api.url)
        repair_stop = asyncio.Event()
        repairs = asyncio.create_task(run_repairs(s, repair_stop))
        try:
            async with writing(writes):
                await more_writes(writes, 10)
                # Phase 1: the target is filled from the log; caught up, it moves to 2.
                started = await run(env, logs, "migrate", "start", "articles", "--to", target_url)
                assert started == 0, logs.read_text()[-3000:]
                assert await phase(s) == 2
                status = tmp_path / "status.log"
                assert await run({**env, "COLUMNS": "250"}, status, "migrate", "status") == 0
                shown = status.read_text()
                assert "source" in shown, shown  # phase 2 reads from the source
                assert "***@" in shown, shown  # the target's password is not shown
                assert "bloghub:bloghub@" not in shown, shown
                await more_writes(writes, 10)
                # Phase 3 through the ops API: reads now come from the target.
                moved = await _ops_phase(api.url, s, 3)
                assert moved == {
                    "projector": "articles",
                    "generation": 1,
                    "phase": 3,
                    "reads_from": "target",
                }
                await more_writes(writes, 10)
                injected = await _inject(target_url, writes)
                await _read_from_target(api.url, writes, injected["changed"])
                # The validator finds all three; the repair consumer fixes the target.
                out = tmp_path / "validate.log"
                assert await run(env, out, "migrate", "validate", "articles") == 1
                found = out.read_text()
                for kind, article_id in injected.items():
                    kind_word = {"deleted": "missing", "changed": "different"}.get(kind, kind)
                    assert f"{kind_word}: articles {{'id': '{article_id}'}}" in found, found
                await _until_repaired(s, target_url, injected)
                # Phase 4, then back to 3: the source is written again and catches up.
                assert await run(env, logs, "migrate", "phase", "articles", "4") == 0
                assert await phase(s) == 4
                await more_writes(writes, 10)
                assert await run(env, logs, "migrate", "phase", "articles", "3") == 0
                assert await phase(s) == 3
                await more_writes(writes, 10)
            assert writes.problems == [], writes.problems[:10]
            # No write lost: every published article in both stores, with its title.
            await _both_have(s, target_url, writes.titles)
            final = tmp_path / "final.log"
            assert await run(env, final, "migrate", "validate", "articles") == 0, final.read_text()
        finally:
            repair_stop.set()
            await repairs


async def _ops_phase(url: str, s: Settings, wanted: int) -> object:
    token = s.operator_token.get_secret_value()
    async with httpx.AsyncClient(base_url=url, timeout=60) as c:
        moved = await c.post(
            "/ops/api/migrations/articles/phase",
            json={"phase": wanted},
            headers={"authorization": f"Bearer {token}"},
        )
        assert moved.status_code == 200, moved.text
        return moved.json()


async def _inject(target_url: str, writes: Writes) -> dict[str, str]:
    """On the target only: one article row deleted, one changed, one extra."""
    ids = list(writes.titles)
    deleted, changed, extra = ids[0], ids[1], new_id_str()
    async with connected(target_url) as conn:
        await conn.execute("DELETE FROM articles_g1.articles WHERE id = $1", deleted)
        await conn.execute(
            "UPDATE articles_g1.articles SET published_title = 'only in the target' WHERE id = $1",
            changed,
        )
        await conn.execute(
            "INSERT INTO articles_g1.articles SELECT $1, author_id, version, status, title, "
            "content, tags, created_at, updated_at, published_version, published_title, "
            "published_content, published_tags, published_at "
            "FROM articles_g1.articles WHERE id = $2",
            extra,
            changed,
        )
    return {"deleted": deleted, "changed": changed, "extra": extra}


async def _read_from_target(url: str, writes: Writes, article_id: str) -> None:
    """The API reads the target in phase 3: it serves the row changed there alone. (The
    read names its position, so it comes from the read model, not a cache.)"""
    async with httpx.AsyncClient(base_url=url, timeout=60) as c:
        read = await c.get(
            f"/v1/articles/{article_id}",
            headers={"bloghub-after": writes.positions[article_id]},
        )
    assert read.status_code == 200, read.text
    assert read.json()["article"]["title"] == "only in the target"


async def _until_repaired(s: Settings, target_url: str, injected: dict[str, str]) -> None:
    async def repaired() -> bool:
        source, target = await titles(s.sqlalchemy_url), await titles(target_url)
        return (
            target.get(injected["deleted"]) == source[injected["deleted"]]
            and target.get(injected["changed"]) == source[injected["changed"]]
            and injected["extra"] not in target
        )

    await wait_until(repaired, timeout_s=120)


async def _both_have(s: Settings, target_url: str, written: dict[str, str]) -> None:
    async def there() -> bool:
        for url in (s.sqlalchemy_url, target_url):
            found = await titles(url)
            if any(found.get(i) != t for i, t in written.items()):
                return False
        return True

    await wait_until(there, timeout_s=120)
