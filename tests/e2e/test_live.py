"""Live notifications over WebSocket with two API processes, heartbeats, presence and
revocation, on the real services.

The follow, comment and like commands are not part of this module: a follow is appended
to the log as its command would append it, and everything after that (projector, push,
fan-out between API processes, presence) is the real path."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from bloghub.adapters.redis import make_redis
from bloghub.adapters.redis.live_channels import notifications_channel
from bloghub.settings import Settings
from tests.conftest import isolated, projecting, serve
from tests.e2e.test_accounts import PASSWORD
from tests.e2e.test_projector_lag import logged_in
from tests.e2e.test_sessions import bearer, login
from tests.loopback import free_port
from tests.support import projector_env, wait_until

UA = "bloghub-tests/1"
PING_S = 1.0
PRESENCE_TTL_S = 3.0
SIGNING_IN = 3  # sockets one address holds open before signing in, per API process


@dataclass(frozen=True)
class Api:
    url: str
    client: httpx.AsyncClient

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/v1/live"


@dataclass(frozen=True)
class Cluster:
    settings: Settings
    a: Api
    b: Api


@pytest.fixture(scope="module")
async def cluster(run_id: str) -> AsyncIterator[Cluster]:
    """Two API processes' apps on one deployment (prefix, database, Redis), projectors
    running: what one process is asked, the other's sockets must hear of."""
    async with (
        isolated(
            run_id,
            "live",
            live_ping_interval_s=PING_S,
            live_presence_ttl_s=PRESENCE_TTL_S,
            live_connections_per_user=2,
            live_max_message_bytes=1024,
            live_signing_in_per_address=SIGNING_IN,
        ) as s,
        projecting(s, "users", "social", "notifications"),
        serve(s) as a,
        serve(s) as b,
        httpx.AsyncClient(base_url=a.url, headers={"user-agent": UA}, timeout=10) as ca,
        httpx.AsyncClient(base_url=b.url, headers={"user-agent": UA}, timeout=10) as cb,
    ):
        yield Cluster(s, Api(a.url, ca), Api(b.url, cb))


async def user(api: Api) -> tuple[str, str]:
    """A new account, logged in: its id and access token."""
    email = f"live-{os.urandom(6).hex()}@example.com"
    user_id, headers = await logged_in(api.client, email)
    return user_id, headers["authorization"].removeprefix("Bearer ")


@contextlib.asynccontextmanager
async def socket(
    api: Api, token: str, *, in_header: bool = True
) -> AsyncIterator[ClientConnection]:
    """A live socket, authenticated by the protocol header or by its first message."""
    protocols = ["bloghub.live", f"bearer.{token}"] if in_header else ["bloghub.live"]
    async with connect(
        api.ws_url,
        subprotocols=protocols,  # type: ignore[arg-type]
        user_agent_header=UA,
        ping_interval=None,  # the server's own pings are the heartbeat under test
    ) as ws:
        if not in_header:
            await ws.send(orjson.dumps({"type": "auth", "token": token}).decode())
        yield ws


async def next_of(ws: ClientConnection, kind: str, *, within_s: float = 10.0) -> dict[str, Any]:
    """The next message of ``kind``, answering pings on the way."""
    async with asyncio.timeout(within_s):
        while True:
            message = orjson.loads(await ws.recv())
            if message["type"] == kind:
                return message  # type: ignore[no-any-return]
            if message["type"] == "ping":
                await ws.send('{"type": "pong"}')


async def closed_with(
    ws: ClientConnection, *, within_s: float = 10.0, answer_pings: bool = True
) -> int | None:
    """The close code the server ends the socket with (answering its pings, unless told
    to stay silent)."""
    with contextlib.suppress(ConnectionClosed):
        async with asyncio.timeout(within_s):
            while True:
                message = await ws.recv()
                if answer_pings and orjson.loads(message)["type"] == "ping":
                    await ws.send('{"type": "pong"}')
    return ws.close_code


async def follow(api: Api, follower_token: str, followee: str) -> None:
    answer = await api.client.put(f"/v1/users/{followee}/follow", headers=bearer(follower_token))
    assert answer.status_code == 200, answer.text


async def notification_applied(api: Api, token: str) -> dict[str, Any]:
    """The caller's newest notification once the projector has applied it."""
    found: list[dict[str, Any]] = []

    async def listed() -> bool:
        page = await api.client.get("/v1/notifications", headers=bearer(token))
        found[:] = page.json()["notifications"]
        return bool(found)

    await wait_until(listed, timeout_s=30)
    return found[0]


async def presence(api: Api, token: str, user_id: str) -> httpx.Response:
    return await api.client.get(f"/v1/users/{user_id}/presence", headers=bearer(token))


async def test_a_follow_reaches_the_user_on_either_process_within_a_second(
    cluster: Cluster,
) -> None:
    alice, alice_token = await user(cluster.a)
    bob, bob_token = await user(cluster.b)
    async with (
        socket(cluster.a, alice_token) as on_a,
        socket(cluster.b, alice_token, in_header=False) as on_b,
    ):
        await next_of(on_a, "ready")
        await next_of(on_b, "ready")
        await follow(cluster.b, bob_token, alice)
        listed = await notification_applied(cluster.b, alice_token)
        # Within a second of the projector applying it, on both processes.
        pushed_a = await next_of(on_a, "notification", within_s=1.0)
        pushed_b = await next_of(on_b, "notification", within_s=1.0)
    for pushed in (pushed_a["notification"], pushed_b["notification"]):
        assert pushed["id"] == listed["id"]
        assert (pushed["kind"], pushed["actor_id"]) == ("follower", bob)
    me = await cluster.a.client.get("/v1/users/me", headers=bearer(alice_token))
    assert me.json()["user"]["unread_notifications"] == 1
    marked = await cluster.b.client.post(
        "/v1/notifications/read", json={"ids": [listed["id"]]}, headers=bearer(alice_token)
    )
    assert marked.status_code == 204
    me = await cluster.b.client.get("/v1/users/me", headers=bearer(alice_token))
    assert me.json()["user"]["unread_notifications"] == 0


async def test_a_notification_pushed_twice_is_shown_once(cluster: Cluster) -> None:
    # While a replay's switch hands over, the old and the new generation's projectors both
    # push what they apply: the same notification (its id derived from its cause) comes
    # twice on the channel, and a socket shows it once.
    alice, alice_token = await user(cluster.a)
    _, bob_token = await user(cluster.b)
    async with socket(cluster.a, alice_token) as ws:
        await next_of(ws, "ready")
        await follow(cluster.b, bob_token, alice)
        first = (await next_of(ws, "notification"))["notification"]
        redis = make_redis(cluster.settings.redis_url.get_secret_value())
        try:
            again = orjson.dumps({**first, "user_id": alice})
            channel = notifications_channel(cluster.settings.prefix)
            assert await redis.publish(channel, again) >= 1
            other = {**first, "id": str(uuid.uuid4()), "user_id": alice}
            await redis.publish(channel, orjson.dumps(other))
        finally:
            await redis.aclose()
        # The one after it comes next: the repeat was passed over.
        pushed = (await next_of(ws, "notification"))["notification"]
        assert pushed["id"] == other["id"], pushed


async def test_a_silent_client_is_dropped_and_goes_offline(cluster: Cluster) -> None:
    carol, carol_token = await user(cluster.a)
    _, dave_token = await user(cluster.a)
    _, stranger_token = await user(cluster.b)
    await follow(cluster.a, dave_token, carol)

    async def dave_follows() -> bool:
        return (await presence(cluster.b, dave_token, carol)).status_code == 200

    await wait_until(dave_follows, timeout_s=30)
    async with socket(cluster.a, carol_token) as ws:
        await next_of(ws, "ready")
        seen_online = (await presence(cluster.b, dave_token, carol)).json()["presence"]
        code = await closed_with(ws, within_s=10 * PING_S, answer_pings=False)
    assert seen_online["online"] is True
    assert code == 4408
    after = (await presence(cluster.b, dave_token, carol)).json()["presence"]
    assert after["online"] is False
    assert after["last_seen"] is not None
    assert (await presence(cluster.b, stranger_token, carol)).status_code == 403
    assert (await presence(cluster.b, carol_token, carol)).status_code == 200


async def test_logout_closes_the_socket(cluster: Cluster) -> None:
    _, erin_token = await user(cluster.a)
    async with socket(cluster.b, erin_token) as ws:
        await next_of(ws, "ready")
        closing = asyncio.create_task(closed_with(ws))  # answering pings meanwhile
        out = await cluster.a.client.post("/v1/auth/logout", headers=bearer(erin_token))
        assert out.status_code == 204
        assert await closing == 4403
    async with socket(cluster.b, erin_token) as again:
        assert await closed_with(again) == 4403  # the ended session cannot come back


async def test_a_password_change_closes_the_other_sessions_sockets(cluster: Cluster) -> None:
    email = f"live-{os.urandom(6).hex()}@example.com"
    _, first = await logged_in(cluster.a.client, email)
    other = (await login(cluster.b.client, email))["access_token"]
    async with socket(cluster.a, other) as ws:
        await next_of(ws, "ready")
        closing = asyncio.create_task(closed_with(ws))  # answering pings meanwhile
        new = "Another-Pass-9876"
        changed = await cluster.b.client.post(
            "/v1/users/me/password",
            json={"current_password": PASSWORD, "new_password": new, "confirm_password": new},
            headers=first,
        )
        assert changed.status_code == 204, changed.text
        assert await closing == 4403


async def test_limits_bad_tokens_and_oversized_messages(cluster: Cluster) -> None:
    _, token = await user(cluster.a)
    async with socket(cluster.a, token) as one, socket(cluster.b, token) as two:
        await next_of(one, "ready")
        await next_of(two, "ready")
        closings = [asyncio.create_task(closed_with(ws)) for ws in (one, two)]
        async with socket(cluster.a, token) as third:
            assert await closed_with(third) == 4429  # two per user, across processes
        await one.send("x" * 2048)
        assert await closings[0] == 1009
        await two.close()
        await closings[1]
    async with socket(cluster.a, token[:-2] + "xx") as forged:
        assert await closed_with(forged) == 4401


async def test_a_token_of_a_session_that_ended_is_told_the_session_ended(
    cluster: Cluster,
) -> None:
    # 4403, as for a socket whose session ends while it is open: the client signs in
    # again rather than trying a refresh that cannot work.
    _, token = await user(cluster.a)
    out = await cluster.a.client.post("/v1/auth/logout", headers=bearer(token))
    assert out.status_code in (200, 204), out.text
    async with socket(cluster.a, token, in_header=False) as ws:
        assert await closed_with(ws) == 4403
        assert ws.close_reason == "session ended"


async def test_an_address_holds_only_so_many_sockets_before_signing_in(cluster: Cluster) -> None:
    # Sockets that show no token are held up to the auth timeout each: one address may
    # hold only a few of them at once per process, and signing in frees a place.
    _, token = await user(cluster.a)
    async with contextlib.AsyncExitStack() as stack:

        async def unsigned(api: Api) -> ClientConnection:
            return await stack.enter_async_context(
                connect(api.ws_url, subprotocols=["bloghub.live"], user_agent_header=UA)  # type: ignore[list-item]
            )

        waiting = [await unsigned(cluster.a) for _ in range(SIGNING_IN)]
        refused = await unsigned(cluster.a)
        assert await closed_with(refused, within_s=5) == 4429
        assert "still to sign in" in (refused.close_reason or "")
        elsewhere = await unsigned(cluster.b)  # another process counts its own
        await elsewhere.send(orjson.dumps({"type": "auth", "token": token}).decode())
        await next_of(elsewhere, "ready")
        await waiting[0].send(orjson.dumps({"type": "auth", "token": token}).decode())
        await next_of(waiting[0], "ready")
        # Signed in, it no longer counts: another may wait to sign in, and it signs in.
        late = await unsigned(cluster.a)
        await late.send(orjson.dumps({"type": "auth", "token": "not a token"}).decode())
        assert await closed_with(late) == 4401
        for ws in waiting[1:]:
            await ws.send(orjson.dumps({"type": "auth", "token": token}).decode())
            assert await closed_with(ws) == 4429  # past the user's two sockets, as before


def api_process(settings: Settings, port: int, log_file: Path) -> subprocess.Popen[bytes]:
    env = {
        **projector_env(settings, batch=500),
        "BLOGHUB_API_PORT": str(port),
        "BLOGHUB_LIVE_PING_INTERVAL_S": str(PING_S),
        "BLOGHUB_LIVE_PRESENCE_TTL_S": str(PRESENCE_TTL_S),
    }
    with log_file.open("ab") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "bloghub.cli", "api", "--workers", "1"],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )


async def started_api(settings: Settings, log_file: Path) -> tuple[Api, subprocess.Popen[bytes]]:
    """A real `bloghub api` process on the cluster's deployment, answering."""
    port = free_port()
    child = api_process(settings, port, log_file)
    url = f"http://127.0.0.1:{port}"

    async def up() -> bool:
        try:
            async with httpx.AsyncClient() as probe:
                return (await probe.get(f"{url}/healthz")).status_code == 200
        except httpx.TransportError:
            return False

    try:
        await wait_until(up, timeout_s=60)
    except BaseException:
        child.kill()
        child.wait()
        raise
    return Api(url, httpx.AsyncClient(base_url=url, headers={"user-agent": UA}, timeout=10)), child


async def test_a_request_to_one_api_process_reaches_a_socket_on_another_process(
    cluster: Cluster, tmp_path: Path
) -> None:
    """Two operating-system processes: the socket is held by a `bloghub api` child, the
    follow is asked of the test's own server; the push crosses Redis pub/sub."""
    frank, frank_token = await user(cluster.a)
    _, gina_token = await user(cluster.a)
    other, child = await started_api(cluster.settings, tmp_path / "api.log")
    try:
        async with socket(other, frank_token) as ws:
            await next_of(ws, "ready")
            await follow(cluster.a, gina_token, frank)
            listed = await notification_applied(cluster.a, frank_token)
            pushed = await next_of(ws, "notification", within_s=10.0)
            # The dashboard counts the socket under the process that holds it.
            operator = bearer(cluster.settings.operator_token.get_secret_value())
            shown: list[dict[str, Any]] = []

            async def counted() -> bool:
                snap = (await cluster.a.client.get("/ops/api/lag", headers=operator)).json()
                shown[:] = snap["live"]["processes"]
                held = [p for p in shown if p["process"].split(":")[1] == str(child.pid)]
                return [p["clients"] for p in held] == [1]

            await wait_until(counted, timeout_s=10)
        assert pushed["notification"]["id"] == listed["id"]
        assert pushed["notification"]["kind"] == "follower"
    finally:
        await other.client.aclose()
        child.terminate()
        child.wait()


async def test_a_killed_api_process_leaves_no_ghost_presence(
    cluster: Cluster, tmp_path: Path
) -> None:
    grace, grace_token = await user(cluster.a)
    spare, child = await started_api(cluster.settings, tmp_path / "api.log")
    try:
        async with socket(spare, grace_token) as ws:
            await next_of(ws, "ready")
            assert (await presence(cluster.a, grace_token, grace)).json()["presence"]["online"]
            child.send_signal(signal.SIGKILL)
            child.wait()

            async def offline() -> bool:
                found = (await presence(cluster.a, grace_token, grace)).json()["presence"]
                return found["online"] is False

            # Gone within its TTL (and a little for the test's own polling).
            await wait_until(offline, timeout_s=PRESENCE_TTL_S + 3)
            assert ws is not None
    finally:
        await spare.client.aclose()
        if child.poll() is None:
            child.kill()
            child.wait()


async def test_an_erased_users_presence_is_shown_to_no_one(cluster: Cluster) -> None:
    """A follower who saw them online learns nothing more of them once they erased their
    account: no presence, no last-seen time, also after their open socket is closed."""
    ivan, ivan_token = await user(cluster.a)
    _, judy_token = await user(cluster.b)
    await follow(cluster.b, judy_token, ivan)
    async with socket(cluster.a, ivan_token) as ws:
        await next_of(ws, "ready")
        seen = await presence(cluster.b, judy_token, ivan)
        assert seen.status_code == 200, seen.text
        assert seen.json()["presence"]["online"] is True
        closing = asyncio.create_task(closed_with(ws))  # answering pings meanwhile
        erased = await cluster.b.client.request(
            "DELETE", "/v1/users/me", json={"password": PASSWORD}, headers=bearer(ivan_token)
        )
        assert erased.status_code == 204, erased.text
        assert await closing == 4403
    after = {"bloghub-after": erased.headers["bloghub-position"]}
    profile = await cluster.a.client.get(f"/v1/users/{ivan}", headers=after)
    assert profile.status_code == 404
    for api in (cluster.a, cluster.b):
        gone = await api.client.get(
            f"/v1/users/{ivan}/presence", headers={**bearer(judy_token), **after}
        )
        assert gone.status_code == 404, gone.text
        assert "last_seen" not in gone.text
    # Nor is it kept: the erasure deleted it, and the socket's close wrote none.
    prefix = cluster.settings.prefix
    redis = make_redis(cluster.settings.redis_url.get_secret_value())
    try:
        kept = await redis.exists(f"{prefix}:presence:{ivan}", f"{prefix}:last-seen:{ivan}")
    finally:
        await redis.aclose()
    assert kept == 0
