"""live: idle WebSocket connections held by one API process (``bloghub api --workers 1``):
resident memory per connection, and the delivery latency of a notification to one of
them with all of them connected.

Each connection is its own user with a session opened in the session store and a token
signed as a login would sign it (5,000 logins would measure password hashing, not
sockets). Latency runs from the append of a ``user.followed`` event to the log to its
arrival on the followee's socket: the projector, its commit, Redis pub/sub, the API
process's fan-out and the socket, all included. The clients answer the server's pings as
a browser page would; the client process's own CPU shares the machine's 2 cores.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import statistics
import sys
import time
from dataclasses import asdict, dataclass

import httpx
import orjson
from tests.loopback import free_port
from websockets.asyncio.client import ClientConnection, connect

from bench.http import bloghub_env, spawned
from bench.support import ARTIFACTS, Check, Figure, Report, console, workspace
from bloghub.adapters.redis import make_redis
from bloghub.adapters.redis.live_channels import notifications_channel
from bloghub.adapters.redis.sessions import SessionStore
from bloghub.bootstrap import token_service
from bloghub.events.base import envelop
from bloghub.events.log import EventLog
from bloghub.events.social import UserFollowed
from bloghub.ids import new_id_str
from bloghub.settings import Settings

NAME = "live"
UA = "bloghub-bench/1"


@dataclass(frozen=True, slots=True)
class Params:
    connections: int = 5000
    samples: int = 200  # notifications whose delivery is timed
    spacing_s: float = 0.05  # between two timed notifications
    settle_s: float = 5.0  # idle time before memory is read


@dataclass
class Client:
    user_id: str
    ws: ClientConnection
    arrived: dict[str, float]

    async def listen(self) -> None:
        """Answer pings; note when each notification arrives, by its actor."""
        with contextlib.suppress(Exception):
            async for raw in self.ws:
                message = orjson.loads(raw)
                if message["type"] == "ping":
                    await self.ws.send('{"type":"pong"}')
                elif message["type"] == "notification":
                    self.arrived[message["notification"]["actor_id"]] = time.perf_counter()


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def tokens(settings: Settings, count: int) -> list[tuple[str, str]]:
    """``count`` users, each with a live session and its access token."""
    signer = token_service(settings)
    redis = make_redis(settings.redis_url.get_secret_value())
    store = SessionStore(redis, prefix=settings.prefix)
    out = []
    try:
        for _ in range(count):
            user_id = new_id_str()
            pair = signer.issue(user_id, UA)
            await store.open(pair.session_id, user_id, pair.refresh_jti, pair.session_ends_at)
            out.append((user_id, pair.access))
    finally:
        await redis.aclose()
    return out


async def open_all(
    url: str, users: list[tuple[str, str]], arrived: dict[str, float]
) -> tuple[list[Client], list[asyncio.Task[None]]]:
    """Connect every user, a few hundred handshakes at a time; each starts answering pings
    at once (opening thousands takes longer than two ping intervals)."""
    clients: list[Client] = []
    listeners: list[asyncio.Task[None]] = []
    gate = asyncio.Semaphore(200)

    async def one(user_id: str, token: str) -> None:
        async with gate:
            ws = await connect(
                url,
                subprotocols=["bloghub.live", f"bearer.{token}"],  # type: ignore[list-item]
                user_agent_header=UA,
                ping_interval=None,
                open_timeout=60,
            )
            ready = orjson.loads(await ws.recv())
            assert ready["type"] == "ready", ready
            client = Client(user_id, ws, arrived)
            clients.append(client)
            listeners.append(asyncio.create_task(client.listen()))

    await asyncio.gather(*(one(u, t) for u, t in users))
    return clients, listeners


async def watch_pushes(settings: Settings, pushed: dict[str, float]) -> None:
    """Note when each notification is published by the projector (after its commit)."""
    redis = make_redis(settings.redis_url.get_secret_value())
    try:
        async with redis.pubsub() as sub:
            await sub.subscribe(notifications_channel(settings.prefix))
            while True:
                message = await sub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if message is not None:
                    pushed[orjson.loads(message["data"])["actor_id"]] = time.perf_counter()
    finally:
        await redis.aclose()


async def timed_deliveries(
    settings: Settings, clients: list[Client], arrived: dict[str, float], params: Params
) -> tuple[list[float], list[float]]:
    """Per timed notification: append to arrival, and projector's publish to arrival."""
    log = EventLog.from_settings(settings)
    await log.start()
    sent: dict[str, float] = {}
    pushed: dict[str, float] = {}
    watching = asyncio.create_task(watch_pushes(settings, pushed))
    await asyncio.sleep(0.5)
    try:
        for i in range(params.samples):
            target = clients[(i * 7919) % len(clients)]  # spread over the connections
            actor = new_id_str()
            event = UserFollowed(follower_id=actor, followee_id=target.user_id)
            sent[actor] = time.perf_counter()
            await log.append([envelop(event, actor_id=actor, request_id=None)])
            await asyncio.sleep(params.spacing_s)
        for _ in range(300):  # up to 30 s for the last ones
            if set(sent) <= set(arrived):
                break
            await asyncio.sleep(0.1)
    finally:
        watching.cancel()
        await asyncio.gather(watching, return_exceptions=True)
        await log.close()
    whole = [arrived[a] - t for a, t in sent.items() if a in arrived]
    fan_out = [arrived[a] - pushed[a] for a in sent if a in arrived and a in pushed]
    return whole, fan_out


async def measure(settings: Settings, params: Params, report: Report) -> None:
    logs = ARTIFACTS / "live-logs"
    logs.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = bloghub_env(settings) | {
        "BLOGHUB_API_PORT": str(port),
        "BLOGHUB_LIVE_CONNECTIONS_PER_USER": "5",
    }
    project = [sys.executable, "-m", "bloghub.cli", "project", "notifications"]
    api = [sys.executable, "-m", "bloghub.cli", "api", "--workers", "1"]
    users = await tokens(settings, params.connections)
    with (
        spawned(project, env, logs / "projector.log"),
        spawned(api, env, logs / "api.log") as server,
    ):
        base = f"http://127.0.0.1:{port}"
        await _ready(base)
        await asyncio.sleep(params.settle_s)
        before = rss_kib(server.pid)
        arrived: dict[str, float] = {}
        started = time.perf_counter()
        clients, listeners = await open_all(base.replace("http", "ws") + "/v1/live", users, arrived)
        connect_s = time.perf_counter() - started
        await asyncio.sleep(params.settle_s)
        after = rss_kib(server.pid)
        async with httpx.AsyncClient() as http:
            ops_live = await _ops_clients(http, base, settings)
        latencies, fan_out = await timed_deliveries(settings, clients, arrived, params)
        still = rss_kib(server.pid)
        for c in clients:
            await c.ws.close()
        for task in listeners:
            task.cancel()
        await asyncio.gather(*listeners, return_exceptions=True)
    per_conn = (after - before) / params.connections
    ordered = sorted(latencies) or [0.0]
    pushes = sorted(fan_out) or [0.0]

    def p(q: float, values: list[float] = ordered) -> float:
        return values[min(len(values) - 1, int(q * len(values)))] * 1000

    report.figures += [
        Figure("connections held", params.connections, "conns"),
        Figure(
            "resident memory per connection", per_conn, "KiB", detail=f"{before:,} -> {after:,} KiB"
        ),
        Figure("API process RSS with all connected", after / 1024, "MiB"),
        Figure("delivery latency p50", p(0.50), "ms", detail="append to socket"),
        Figure("delivery latency p99", p(0.99), "ms", detail="append to socket"),
        Figure("delivery latency max", ordered[-1] * 1000, "ms", detail="append to socket"),
        Figure("push latency p50", p(0.50, pushes), "ms", detail="projector's publish to socket"),
        Figure("push latency p99", p(0.99, pushes), "ms", detail="projector's publish to socket"),
        Figure("time to open every connection", connect_s, "s"),
    ]
    report.checks += [
        Check(
            "every timed notification arrived",
            len(latencies) == params.samples,
            f"{len(latencies)} of {params.samples}",
        ),
        Check(
            "every connection stayed up",
            all(c.ws.close_code is None or c.ws.close_code == 1000 for c in clients),
            "no server-side close while idle",
        ),
        Check(
            "the dashboard counts them",
            ops_live == params.connections,
            f"{ops_live} clients reported",
        ),
    ]
    report.raw = {
        "latencies_ms": [x * 1000 for x in latencies],
        "push_latencies_ms": [x * 1000 for x in fan_out],
        "rss_kib": [before, after, still],
        "median_ms": statistics.median(latencies) * 1000 if latencies else None,
    }


async def forget_keys(settings: Settings) -> None:
    """The run's sessions, presence and last-seen keys (thousands) leave the shared Redis
    with it: a key left there slows every SCAN of the keyspace."""
    redis = make_redis(settings.redis_url.get_secret_value())
    try:
        batch: list[bytes] = []
        async for key in redis.scan_iter(match=f"{settings.prefix}:*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                await redis.unlink(*batch)
                batch.clear()
        if batch:
            await redis.unlink(*batch)
    finally:
        await redis.aclose()


async def _ready(base: str) -> None:
    async with httpx.AsyncClient() as http:
        for _ in range(600):
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get(base + "/healthz", timeout=2)).status_code < 500:
                    return
            await asyncio.sleep(0.1)
    raise RuntimeError("API not ready")


async def _ops_clients(http: httpx.AsyncClient, base: str, settings: Settings) -> int:
    """Connected clients as the ops dashboard's JSON reports them (after a beat)."""
    token = settings.operator_token.get_secret_value()
    for _ in range(100):
        answer = await http.get(
            base + "/ops/api/lag", headers={"authorization": f"Bearer {token}"}, timeout=120
        )
        processes = (
            answer.json().get("live", {}).get("processes", []) if answer.status_code == 200 else []
        )
        count = sum(int(p["clients"]) for p in processes)
        if count:
            return count
        await asyncio.sleep(0.5)
    return 0


async def run(params: Params = Params()) -> Report:
    report = Report(
        name=NAME,
        title="live: idle WebSocket connections on one API process, and delivery latency",
        params=asdict(params),
    )
    async with workspace(NAME, migrate=True) as ws:
        console.print(f"[dim]{NAME}: prefix {ws.prefix}, database {ws.database}[/]")
        try:
            await measure(ws.settings, params, report)
        finally:
            await forget_keys(ws.settings)
    report.notes += [
        "server: `bloghub api --workers 1` (uvicorn, websockets); projector: `bloghub project "
        "notifications`; clients: the websockets library in the bench process, same machine",
        "memory: VmRSS of the API process after the connections sat idle, minus before them",
        f"pid of this run: {os.getpid()}, seed {secrets.token_hex(2)}",
    ]
    return report
