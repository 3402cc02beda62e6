"""A person at the dashboard: a projector stopped under write load shows rising lag and
leaves OK; restarted, it comes back to OK. Debian's Chromium, driven by Playwright."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
from pathlib import Path

from playwright.async_api import Page, async_playwright

from bloghub.events.log import EventLog
from tests.conftest import isolated, serve
from tests.support import append_registrations, projector_process

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "e2e"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


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


async def wait_for_state(page: Page, accept: set[str], timeout_s: float = 60) -> str:
    for _ in range(int(timeout_s / 0.25)):
        state = await cell(page, "state")
        if state in accept:
            return state
        await asyncio.sleep(0.25)
    raise AssertionError(f"state stayed {state!r}, wanted one of {accept}")


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
