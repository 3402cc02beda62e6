"""A person at the dashboard: a projector stopped under write load shows rising lag and
leaves OK; restarted, it comes back to OK. A generation being rebuilt shows as a replay
with its progress, and the charts draw every projector generation. Debian's Chromium,
driven by Playwright."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
import signal
import subprocess
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from playwright.async_api import Page, async_playwright
from sqlalchemy.ext.asyncio import AsyncConnection

from bloghub.adapters.postgres.generations import create_generation
from bloghub.adapters.postgres.migrations import register_migration, set_phase
from bloghub.adapters.redis import make_redis
from bloghub.events.base import Recorded, registry
from bloghub.events.log import EventLog
from bloghub.migration_phases import Phase
from bloghub.projections.dead_letters import DeadLetters
from bloghub.projections.postgres_sink import projector_engine
from bloghub.projections.runner import ProjectorRunner
from bloghub.projections.runner_config import RunnerConfig, group_id
from bloghub.projections.stats import CommitStats
from bloghub.projections.users import UsersProjector
from bloghub.settings import Settings
from tests.browser import (
    ARTIFACTS,
    CHROMIUM_FLAGS,
    assert_strict,
    chromium,
    csp_violations,
    watched_page,
)
from tests.conftest import isolated, serve
from tests.support import append_registrations, projector_process


async def write_load(log: EventLog, stop: asyncio.Event) -> None:
    n = 0
    while not stop.is_set():
        await append_registrations(log, 20, tag=f"load{n}", chunk=20)
        n += 1
        await asyncio.sleep(0.1)


async def cell(page: Page, name: str) -> str:
    return (await page.locator(f'tr[data-projector="users"] .{name}').inner_text()).strip()


async def number(page: Page, name: str) -> float:
    text = (await cell(page, name)).replace(",", "")
    return float(text) if text not in ("", "\u2013") else 0.0


async def wait_for_state(
    page: Page, accept: set[str], timeout_s: float = 60, name: str = "state"
) -> str:
    for _ in range(int(timeout_s / 0.25)):
        state = await cell(page, name)
        if state in accept:
            return state
        await asyncio.sleep(0.25)
    raise AssertionError(f"{name} stayed {state!r}, wanted one of {accept}")


async def test_stopped_projector_shows_rising_lag_and_recovers(run_id: str, tmp_path: Path) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    overrides: dict[str, object] = {"ops_sample_every_s": 0.5, "ops_state_window_s": 3.0}
    async with isolated(run_id, "ops", **overrides) as settings, serve(settings) as live:
        log = EventLog.from_settings(settings, timeout_s=10)
        await log.start()
        stop_load = asyncio.Event()
        load = asyncio.create_task(write_load(log, stop_load))
        projector = projector_process(settings, "users", log_file=tmp_path / "p.log")
        try:
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(
                    executable_path="/usr/bin/chromium", args=CHROMIUM_FLAGS
                )
                page = await browser.new_page(viewport={"width": 1400, "height": 1300})
                await page.goto(f"{live.url}/ops")
                await page.fill("#token", settings.operator_token.get_secret_value())
                await page.click("button[type=submit]")
                await page.wait_for_selector('tr[data-projector="users"]')
                assert await wait_for_state(page, {"OK", "WARN"}) in {"OK", "WARN"}
                # Running, as its heartbeat says (a group that has not committed yet is
                # not stopped, so the state alone does not say the process is up yet).
                await wait_for_state(page, {"1"}, name="instances")

                projector.send_signal(signal.SIGTERM)
                assert projector.wait(timeout=30) == 0
                left = await wait_for_state(page, {"STOP", "STALL"})
                first_lag, first_age = await number(page, "lag"), await number(page, "lag-seconds")
                # The figures rise with the next samples; on a loaded machine a sample can
                # take longer than the dashboard's interval, so wait for them to move.
                for _ in range(80):
                    await asyncio.sleep(0.25)
                    later_lag = await number(page, "lag")
                    later_age = await number(page, "lag-seconds")
                    if later_lag > first_lag and later_age > first_age:
                        break
                await page.screenshot(
                    path=str(ARTIFACTS / "ops-projector-stopped.png"), full_page=True
                )
                assert left in {"STOP", "STALL"}
                assert later_lag > first_lag > 0
                assert later_age > first_age > 0
                assert await cell(page, "instances") == "0"

                projector = projector_process(settings, "users", log_file=tmp_path / "p.log")
                stop_load.set()
                await load
                assert await wait_for_state(page, {"OK"}) == "OK"
                for _ in range(120):
                    if await number(page, "lag") == 0:
                        break
                    await asyncio.sleep(0.25)
                assert await number(page, "lag") == 0
                await page.screenshot(
                    path=str(ARTIFACTS / "ops-projector-recovered.png"), full_page=True
                )
                await browser.close()
        finally:
            stop_load.set()
            await asyncio.gather(load, return_exceptions=True)
            await log.close()
            if projector.poll() is None:
                projector.send_signal(signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    projector.wait(timeout=30)


class SlowUsersProjector(UsersProjector):
    """The users projector at a pace a person can watch: each batch is held a moment."""

    async def handle(self, conn: AsyncConnection, records: Sequence[Recorded]) -> None:
        await super().handle(conn, records)
        await asyncio.sleep(0.25)


@contextlib.asynccontextmanager
async def slow_rebuild(settings: Settings, generation: int) -> AsyncIterator[None]:
    """Generation ``generation`` of users being built from offset 0 beside the serving one
    (state "building", as a replay leaves it) for as long as the block lasts."""
    engine = projector_engine(settings.sqlalchemy_url, pool_size=2)
    redis = make_redis(settings.redis_url.get_secret_value())
    dead = DeadLetters(bootstrap=settings.kafka_bootstrap, prefix=settings.prefix, redis=redis)
    await dead.start()
    stop = asyncio.Event()
    try:
        async with engine.begin() as conn:
            await create_generation(conn, "users", generation, activate=False)
        building = SlowUsersProjector.build(engine, settings, generation=generation, cache=None)
        building.live = False
        config = dataclasses.replace(RunnerConfig.from_settings(settings), batch_max_events=20)
        # It reports its commits as a worker does, so the dashboard sees its pace.
        group = group_id(settings.prefix, "users", generation)
        stats = CommitStats(redis, prefix=settings.prefix, group=group)
        runner = ProjectorRunner(
            building, config=config, registry=registry, dead_letters=dead, stats=stats
        )
        task = asyncio.create_task(runner.run(stop))
        try:
            yield
        finally:
            stop.set()
            await task
    finally:
        await dead.close()
        await redis.aclose()
        await engine.dispose()


MOVED_TO = "postgresql+asyncpg://mover:s3cret-Pass@10.0.0.9:5432/articles_elsewhere"


async def replay_text(page: Page) -> str:
    return await page.locator(
        '#replays li[data-projector="users"][data-generation="2"]'
    ).inner_text()


async def test_dashboard_charts_every_generation_and_shows_replay_progress(
    run_id: str, tmp_path: Path
) -> None:
    async with (
        isolated(run_id, "dash", ops_sample_every_s=0.5) as settings,
        serve(settings) as live,
    ):
        log = EventLog.from_settings(settings, timeout_s=10)
        await log.start()
        await append_registrations(log, 3000, tag="dash", chunk=500)
        projector = projector_process(settings, "users", log_file=tmp_path / "p.log")
        async with live.container.engine.begin() as conn:  # bloghub migrate, phase 2
            await register_migration(conn, "articles", 1, MOVED_TO)
            assert await set_phase(conn, "articles", Phase.SOURCE_ONLY, Phase.SOURCE_FIRST)
        try:
            async with slow_rebuild(settings, 2), chromium() as browser:
                page = await watched_page(browser)
                login = await page.goto(f"{live.url}/ops")
                assert login is not None
                assert login.status == 401
                await page.fill("#token", settings.operator_token.get_secret_value())
                async with page.expect_navigation() as reloaded:
                    await page.click("button[type=submit]")
                dashboard = await reloaded.value
                assert dashboard is not None
                assert dashboard.status == 200
                await page.wait_for_selector('#replays li[data-generation="2"] progress[value]')
                # The database answers: no notice that it does not.
                assert not await page.locator("#database").is_visible()
                for _ in range(120):  # the ETA needs a rate, which needs two samples
                    if "ETA \u2013" not in await replay_text(page):
                        break
                    await asyncio.sleep(0.25)
                legend = page.locator('[data-chart="lag"] .u-legend .u-series')
                for _ in range(120):  # the building generation's first samples
                    if await legend.count() >= 3:
                        break
                    await asyncio.sleep(0.25)
                replay = await replay_text(page)
                done = await page.locator('#replays li[data-generation="2"] progress').evaluate(
                    "(bar) => [bar.value, bar.max]"
                )
                names = await legend.all_inner_texts()
                per_generation = page.locator(
                    '#lag-seconds figure[data-group$=".users.g1"], '
                    '#lag-seconds figure[data-group$=".users.g2"]'
                )
                chart = page.locator('[data-chart="lag"] .u-over')
                box = await chart.bounding_box()
                assert box is not None
                await page.mouse.move(box["x"] + box["width"] - 3, box["y"] + box["height"] / 2)
                hovered = await page.locator('[data-chart="lag"] .u-legend').inner_text()
                moving = await page.locator(
                    '#replays li.migration[data-projector="articles"]'
                ).inner_text()
                await page.screenshot(path=str(ARTIFACTS / "ops-replay-charts.png"), full_page=True)

                assert_strict(login.headers["content-security-policy"])
                assert_strict(dashboard.headers["content-security-policy"])
                assert "users: generation 2 building" in replay
                assert re.search(r"ETA \d+ (s|min)", replay), replay
                assert 0 < done[0] < done[1] == 3000
                assert any("users g1" in n for n in names)
                assert any("users g2" in n for n in names)
                assert await per_generation.count() == 2
                assert ":" in hovered  # the time under the pointer, beside each value
                assert "articles: moving to another database, phase 2 of 4 (source first)" in (
                    moving
                )
                assert "reads from the source" in moving
                assert "mover:***@" in moving
                assert "s3cret" not in moving
                assert await csp_violations(page) == []
        finally:
            await log.close()
            projector.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                projector.wait(timeout=30)


async def test_a_locked_sign_in_says_so_not_that_the_token_is_wrong(run_id: str) -> None:
    """Past the tries an address has, the right token is refused too (429): the page told
    the operator it was not the operator token, so they went on typing it."""
    async with (
        isolated(run_id, "opslock", ops_login_per_minute=2) as settings,
        serve(settings) as live,
        chromium() as browser,
    ):
        page = await watched_page(browser)
        await page.goto(f"{live.url}/ops")
        message = page.locator("#message")
        for _ in range(2):
            await page.fill("#token", "not-the-token")
            await page.click("button[type=submit]")
            await message.filter(has_text="not the operator token").wait_for()
            await page.evaluate("document.getElementById('message').textContent = ''")
        await page.fill("#token", settings.operator_token.get_secret_value())
        await page.click("button[type=submit]")
        await message.filter(has_text="Too many tries").wait_for()
        assert re.search(r"Try again in \d+ s\.", await message.inner_text())
        assert await csp_violations(page) == []
