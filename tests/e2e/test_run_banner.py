"""``bloghub run`` (what ``make run`` starts) says where the docs and the dashboard are and
how to get into the dashboard; following what it prints gets an operator in."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from bloghub.cli import run_banner
from bloghub.processes import stop_process
from bloghub.settings import Settings
from tests.conftest import isolated
from tests.loopback import free_port
from tests.support import wait_until


def banner_of(log_file: Path) -> str:
    text = log_file.read_text(errors="replace")
    return text[text.find("bloghub serving on") :]


def run_env(own: Settings, port: int) -> dict[str, str]:
    """The environment of a ``bloghub`` process serving ``own``'s deployment on ``port``, as
    a development machine starts it."""
    return {
        **os.environ,
        "BLOGHUB_MODE": "development",
        "BLOGHUB_PREFIX": own.prefix,
        "BLOGHUB_DATABASE_URL": own.sqlalchemy_url,
        "BLOGHUB_TOPIC_PARTITIONS": str(own.topic_partitions),
        "BLOGHUB_API_PORT": str(port),
    }


def start_run(
    env: dict[str, str], log_file: Path, *more: str, command: str = "run"
) -> subprocess.Popen[bytes]:
    """``bloghub run --workers 1`` (or ``command``) and ``more`` arguments, its output in
    ``log_file``."""
    with log_file.open("ab") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "bloghub.cli", command, "--workers", "1", *more],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )


async def test_following_the_run_banner_opens_the_dashboard(run_id: str, tmp_path: Path) -> None:
    log_file = tmp_path / "run.log"
    async with isolated(run_id, "banner") as own:
        env = run_env(own, free_port())
        env.pop("BLOGHUB_OPERATOR_TOKEN", None)  # the development default, as on a new machine
        process = start_run(env, log_file)
        try:

            async def printed() -> bool:
                return "readiness" in banner_of(log_file)

            await wait_until(printed, timeout_s=90)
            banner = banner_of(log_file)
            dashboard = re.search(r"dashboard\s+(\S+)\s+operator token (\S+)", banner)
            docs = re.search(r"API docs\s+(\S+)", banner)
            assert dashboard is not None, banner
            assert docs is not None, banner
            async with httpx.AsyncClient(timeout=10) as client:

                async def serving() -> bool:
                    try:
                        return (await client.get(docs.group(1))).status_code == 200
                    except httpx.TransportError:
                        return False

                await wait_until(serving, timeout_s=90)
                url, token = dashboard.group(1), dashboard.group(2)
                login = await client.post(f"{url}/session", json={"token": token})
                assert login.status_code == 204, login.text
                page = await client.get(url)
                assert page.status_code == 200
                assert "/ops/static/ops.js" in page.text
        finally:
            stop_process(process, grace_s=30)


def test_a_chosen_operator_token_is_never_printed() -> None:
    chosen = "a-token-the-operator-chose-" + "x" * 20
    banner = run_banner(Settings(operator_token=chosen, api_host="0.0.0.0"), 2, 2)
    assert chosen not in banner
    assert "BLOGHUB_OPERATOR_TOKEN" in banner
    assert "http://127.0.0.1:8000/ops" in banner


async def test_ctrl_c_stops_one_api_process_without_a_traceback(
    run_id: str, tmp_path: Path
) -> None:
    """Ctrl-C is how an operator stops a server in a terminal: it ends as with several
    workers (uvicorn raised the signal again after stopping: a traceback and 130)."""
    log_file = tmp_path / "api.log"
    port = free_port()
    async with isolated(run_id, "ctrl-c") as own:
        env = run_env(own, port)
        process = start_run(env, log_file, command="api")
        try:
            async with httpx.AsyncClient(timeout=10) as client:

                async def serving() -> bool:
                    try:
                        return (await client.get(f"http://127.0.0.1:{port}/healthz")).is_success
                    except httpx.TransportError:
                        return False

                await wait_until(serving, timeout_s=90)
            process.send_signal(signal.SIGINT)
            assert process.wait(timeout=60) == 0
            assert "Traceback" not in log_file.read_text(errors="replace")
        finally:
            stop_process(process, grace_s=30)
