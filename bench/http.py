"""HTTP on loopback, driven by ``wrk``: bloghub against a bare Starlette app, same run.

Both servers are started the same way, ``uvicorn --factory bench.http_apps:NAME --loop uvloop
--http httptools`` (one process, then ``--workers 2``), each in a process of its own; the
projectors run in one more process (``bloghub project``), as ``make run`` runs them. The bare
app answers the very bytes bloghub gave for the same reads, pre-encoded, and a POST that
parses the same JSON body a draft create gets. Three pairs:

- cached published detail (``GET /v1/articles/{id}``, anonymous) / bare GET, same body;
- public profile (``GET /v1/users/{id}``, anonymous) / bare GET, same body;
- draft create (``POST /v1/articles``, authenticated, appended to Kafka) / bare POST;
- hot ranking (``GET /v1/ranking/hot``, anonymous, 20 entries of a ranking the job in the
  projectors' process computed over ``RANKED`` articles) / bare GET, same body.

``--pair NAME`` (``python -m bench http --pair ranking``) measures only the named pairs.

For each pair and worker count: a warm-up of each side, then windows at the maximum rate
(closed loop, ``wrk -t1 -cN``) alternating ABBA, then windows paced at half of that side's
maximum (median of its rounds), again ABBA. wrk2 is not in Debian, so the pacing is a Lua
script in wrk itself: every request takes the next slot of a fixed schedule (``1/rate``
apart, from a monotonic clock through LuaJIT's FFI) and ``delay()`` holds the connection
until its slot. A request whose slot has passed goes at once and the schedule does not
move, so the offered rate stays put; wrk times a request from its actual send, so a
backlog (coordinated omission) is not charged to the server, which at half the maximum
rate is rare. wrk's ``delay()`` works in whole milliseconds: requests leave in small bursts
on millisecond ticks.

wrk's own CPU (from ``getrusage`` of the finished child) is reported per window, so a
window whose generator was the limit shows it. Results: ``artifacts/bench/http.json``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
from tests.loopback import free_port

from bench import cpu
from bench.article_detail import PASSWORD, TAGS, markdown
from bench.http_apps import BODIES_ENV
from bench.support import ARTIFACTS, ROOT, Check, Figure, Report, console, median, workspace
from bloghub.processes import stop_process
from bloghub.settings import Settings

NAME = "http"
BLOGHUB, BARE = "bloghub", "bare"
SIDES = (BLOGHUB, BARE)
USER_AGENT = "bloghub-bench/1"
CLIENT_BOUND = 0.85  # wrk busier than this share of a core: it may be the limit
HUGE_RATE = 1_000_000_000  # the limiter still runs on every request, but never refuses
RANKED = 100  # articles with counters, so the ranking holds its full default top 100


@dataclass(frozen=True, slots=True)
class Params:
    workers: tuple[int, ...] = (1, 2)
    read_connections: int = 32
    write_connections: int = 16
    # Writes are measured closed-loop again at this many connections: a server whose
    # requests wait on round trips (Redis, PostgreSQL, Kafka) needs more of them in flight
    # to reach its peak than one that only computes, and at 16 it left the cores idle.
    peak_connections: int = 64
    warmup_s: float = 2.0
    duration_s: float = 6.0
    rounds: int = 2
    content_bytes: int = 5_000
    draft_bytes: int = 1_000
    only: tuple[str, ...] = ()  # pair names to measure; all when empty


@dataclass(frozen=True, slots=True)
class Target:
    """One request, as wrk sends it over and over."""

    path: str
    method: str = "GET"
    body: str = ""
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Pair:
    """What is compared: bloghub's request and the bare app's equivalent."""

    name: str
    bloghub: Target
    bare: Target
    connections: int
    goal: float
    # Measured again closed-loop at ``Params.peak_connections`` (the writes).
    peak: bool = False


@dataclass(slots=True)
class Window:
    pair: str
    workers: int
    side: str
    paced_rate: float  # 0: as fast as it goes
    round: int
    peak: bool = False  # closed-loop at ``Params.peak_connections`` (writes)
    requests: int = 0
    elapsed_s: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    errors: int = 0  # socket errors and non-2xx/3xx answers
    wrk_cpu_s: float = 0.0
    server_cpu_s: float = 0.0
    # What the whole machine spent meanwhile: every core's busy seconds, and each part's
    # (the server, the projectors, each local service, wrk) from ``/proc``.
    machine_cpu_s: float = 0.0
    parts_cpu_s: dict[str, float] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.requests / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def per_request_us(self, seconds: float) -> float:
        return seconds / self.requests * 1e6 if self.requests else 0.0


# --- wrk ---------------------------------------------------------------------------------------

_LUA = r"""
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk, bench_timespec *ts);
]]
local ts = ffi.new("bench_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, ts)  -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

wrk.method = %(method)s
wrk.body = %(body)s
%(headers)s
local step = %(step_ms).6f  -- ms between requests of this thread; 0: no pacing
local slot = nil

function delay()
  if step == 0 then return 0 end
  local t = now_ms()
  slot = (slot or t) + step
  local wait = slot - t
  if wait < 0.5 then return 0 end
  return math.floor(wait + 0.5)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%%d,"duration_us":%%d,"errors":%%d,' ..
    '"p50_us":%%d,"p99_us":%%d,"max_us":%%d}\n',
    summary.requests, summary.duration,
    e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"""


def _lua_string(text: str) -> str:
    level = "=" * 4
    return f"[{level}[{text}]{level}]"


def wrk_script(target: Target, rate: float) -> str:
    headers = "\n".join(
        f"wrk.headers[ {_lua_string(k)} ] = {_lua_string(v)}"
        for k, v in (("User-Agent", USER_AGENT), *target.headers)
    )
    return _LUA % {
        "method": _lua_string(target.method),
        "body": _lua_string(target.body) if target.body else "nil",
        "headers": headers,
        "step_ms": 1000.0 / rate if rate > 0 else 0.0,
    }


def run_wrk(url: str, target: Target, connections: int, seconds: float, rate: float) -> Window:
    """One wrk run; the window's side, pair and round are filled in by the caller."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(wrk_script(target, rate))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        done = subprocess.run(
            [
                "wrk",
                "-t1",
                f"-c{connections}",
                f"-d{seconds:g}s",
                "--timeout",
                "10s",
                "-s",
                script.name,
                url + target.path,
            ],
            capture_output=True,
            text=True,
            timeout=seconds + 30,
            check=True,
        )
    finally:
        os.unlink(script.name)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary: {done.stdout}\n{done.stderr}")
    got = json.loads(line.removeprefix("WRKJSON "))
    return Window(
        pair="",
        workers=0,
        side="",
        paced_rate=rate,
        round=0,
        requests=got["requests"],
        elapsed_s=got["duration_us"] / 1e6,
        p50_ms=got["p50_us"] / 1000,
        p99_ms=got["p99_us"] / 1000,
        max_ms=got["max_us"] / 1000,
        errors=got["errors"],
        wrk_cpu_s=(after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
    )


def ensure_wrk() -> None:
    if subprocess.run(["sh", "-c", "command -v wrk"], capture_output=True).returncode == 0:
        return
    console.print("[yellow]wrk is missing: installing Debian's package[/]")
    subprocess.run(["apt-get", "update", "-q"], check=True)
    subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=True)


# --- the servers -------------------------------------------------------------------------------


def tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and every descendant (from ``/proc``)."""
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry.name)] = int(fields[1])
        ticks[int(entry.name)] = int(fields[11]) + int(fields[12])
    family, grew = {pid}, True
    while grew:
        more = {p for p, parent in parents.items() if parent in family} - family
        grew = bool(more)
        family |= more
    return sum(ticks.get(p, 0) for p in family) / os.sysconf("SC_CLK_TCK")


def bloghub_env(settings: Settings) -> dict[str, str]:
    return {
        "BLOGHUB_MODE": settings.mode.value,
        "BLOGHUB_PREFIX": settings.prefix,
        "BLOGHUB_DATABASE_URL": settings.database_url.get_secret_value(),
        "BLOGHUB_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "BLOGHUB_RATE_IP_PER_MINUTE": str(HUGE_RATE),
        "BLOGHUB_RATE_USER_PER_MINUTE": str(HUGE_RATE),
        "BLOGHUB_LOG_FORMAT": "json",  # as in production
    }


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str

    def cpu_s(self) -> float:
        return tree_cpu_s(self.process.pid)


@contextlib.contextmanager
def spawned(
    argv: Sequence[str], env: dict[str, str], log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    full_env = os.environ | {"PYTHONPATH": f"{ROOT / 'src'}:{ROOT}"} | env
    with log.open("ab") as out:
        process = subprocess.Popen(
            list(argv), cwd=ROOT, env=full_env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        yield process
    finally:
        stop_process(process, grace_s=30)


@contextlib.contextmanager
def uvicorn_server(
    app: str, workers: int, env: dict[str, str], log: Path, ready_path: str
) -> Iterator[Server]:
    """``uvicorn --factory bench.http_apps:<app>`` with uvloop and httptools; yields once
    ``ready_path`` answers. bloghub's app is served through the protocol ``bloghub api``
    serves it through (httptools with the head and pace bounds, ``api/http_guard.py``):
    the bounds are part of what a request costs, and the app reads the session again after
    a body unless that protocol says the request had all come with its head."""
    port = free_port()
    http = "bloghub.api.http_guard:GuardedHttp" if app == BLOGHUB else "httptools"
    argv = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        f"bench.http_apps:{app}",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--loop",
        "uvloop",
        "--http",
        http,
        "--log-level",
        "warning",
        "--no-access-log",
        "--no-proxy-headers",
        *(["--workers", str(workers)] if workers > 1 else []),
    ]
    with spawned(argv, env, log) as process:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{app} server exited with {process.returncode}; see {log}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + ready_path, timeout=2).status_code < 500:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{app} server not ready after 60 s; see {log}")
            time.sleep(0.2)
        yield Server(process, url)


# --- seeding -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Seed:
    article_id: str
    author_id: str
    token: str
    detail: bytes
    profile: bytes
    ranking: bytes


def _until_ok(client: httpx.Client, method: str, path: str, timeout_s: float, **kw: Any) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        answer = client.request(method, path, **kw)
        if answer.status_code < 300:
            return answer
        if time.monotonic() > deadline:
            raise RuntimeError(f"{method} {path} answered {answer.status_code}: {answer.text}")
        time.sleep(0.2)


def seed(url: str, params: Params) -> Seed:
    """One author, logged in, with one published article of ``content_bytes``; the bodies
    bloghub answers for its detail and its author's profile (read until cached)."""
    with httpx.Client(base_url=url, timeout=15, headers={"user-agent": USER_AGENT}) as client:
        email = f"bench-{secrets.token_hex(6)}@example.com"
        body = {"email": email, "password": PASSWORD, "confirm_password": PASSWORD}
        _until_ok(client, "POST", "/v1/users", 10, json=body)
        login = _until_ok(
            client, "POST", "/v1/auth/login", 30, json={"email": email, "password": PASSWORD}
        )
        token = login.json()["access_token"]
        auth = {"authorization": f"Bearer {token}"}
        article = {
            "title": "Hot read",
            "content": markdown(1, params.content_bytes),
            "tags": TAGS[:3],
        }
        created = _until_ok(client, "POST", "/v1/articles", 30, json=article, headers=auth)
        article_id = created.json()["article"]["id"]
        _until_ok(client, "POST", f"/v1/articles/{article_id}/publish", 30, headers=auth)
        detail = _until_ok(client, "GET", f"/v1/articles/{article_id}", 30)
        # Liked once the interactions projector has seen the publish.
        _until_ok(client, "PUT", f"/v1/articles/{article_id}/like", 30, headers=auth)
        author_id = detail.json()["article"]["author"]["id"]
        profile = _until_ok(client, "GET", f"/v1/users/{author_id}", 30)
        # Read again: these are the bodies served from the cache.
        detail = client.get(f"/v1/articles/{article_id}")
        profile = client.get(f"/v1/users/{author_id}")
        ranking = _ranked(client)
    return Seed(article_id, author_id, token, detail.content, profile.content, ranking)


def _ranked(client: httpx.Client) -> bytes:
    """The hot ranking's body once the job has computed it (it runs at the projectors'
    start, then every minute)."""
    deadline = time.monotonic() + 60
    while True:
        answer = client.get("/v1/ranking/hot")
        if answer.status_code == 200 and answer.json()["articles"]:
            return answer.content
        if time.monotonic() > deadline:
            raise RuntimeError(f"no ranking computed after 60 s: {answer.text}")
        time.sleep(0.5)


def pairs(s: Seed, params: Params) -> list[Pair]:
    draft = json.dumps(
        {"title": "A draft", "content": markdown(2, params.draft_bytes), "tags": list(TAGS[:2])}
    )
    json_type = (("Content-Type", "application/json"),)
    return [
        Pair(
            "detail",
            Target(f"/v1/articles/{s.article_id}"),
            Target("/detail"),
            params.read_connections,
            0.5,
        ),
        Pair(
            "profile",
            Target(f"/v1/users/{s.author_id}"),
            Target("/profile"),
            params.read_connections,
            0.5,
        ),
        # A like is appended to Kafka before the answer; the same user liking again and again
        # appends each time (the projector keeps the set, so the count stays one).
        Pair(
            "like",
            Target(
                f"/v1/articles/{s.article_id}/like",
                "PUT",
                "",
                (("Authorization", f"Bearer {s.token}"),),
            ),
            Target("/like", "PUT"),
            params.write_connections,
            0.3,
            peak=True,
        ),
        Pair(
            "draft create",
            Target(
                "/v1/articles",
                "POST",
                draft,
                (*json_type, ("Authorization", f"Bearer {s.token}")),
            ),
            Target("/drafts", "POST", draft, json_type),
            params.write_connections,
            0.15,
            peak=True,
        ),
        Pair(
            "ranking",
            Target("/v1/ranking/hot"),
            Target("/ranking"),
            params.read_connections,
            0.75,
        ),
    ]


# --- the run -----------------------------------------------------------------------------------


@dataclass
class Run:
    params: Params
    servers: dict[str, Server]
    workers: int
    pairs: list[Pair]
    projectors: int | None = None  # the `bloghub project` process both sides run beside
    windows: list[Window] = field(default_factory=list)

    def window(
        self, pair: Pair, side: str, seconds: float, rate: float, round_: int, *, peak: bool = False
    ) -> Window:
        target = pair.bloghub if side == BLOGHUB else pair.bare
        connections = self.params.peak_connections if peak else pair.connections
        server = self.servers[side]
        cpu_before, machine_before, projectors_before = server.cpu_s(), cpu.sample(), 0.0
        if self.projectors is not None:
            projectors_before = tree_cpu_s(self.projectors)
        w = run_wrk(server.url, target, connections, seconds, rate)
        w.server_cpu_s = server.cpu_s() - cpu_before
        machine = cpu.used(machine_before, cpu.sample())
        w.machine_cpu_s = machine.machine
        w.parts_cpu_s = {"server": w.server_cpu_s}
        if self.projectors is not None:
            w.parts_cpu_s["projectors"] = tree_cpu_s(self.projectors) - projectors_before
        w.parts_cpu_s |= machine.services | {"wrk": w.wrk_cpu_s}
        w.pair, w.workers, w.side, w.round, w.peak = pair.name, self.workers, side, round_, peak
        if round_ > 0:
            self.windows.append(w)
            label = "max" if rate == 0 else f"paced {rate:,.0f}/s"
            label = f"max at c{connections}" if peak else label
            console.print(
                f"[dim]{pair.name:>12} w{self.workers} {side:>7} {label:>16}: "
                f"{w.rate:9,.0f} req/s  p50 {w.p50_ms:7.2f} ms  p99 {w.p99_ms:7.2f} ms  "
                f"wrk {w.wrk_cpu_s / w.elapsed_s:4.0%}  server {w.server_cpu_s / w.elapsed_s:4.0%}"
                f"  errors {w.errors}[/]"
            )
        return w

    def measure(self, pair: Pair) -> None:
        p = self.params
        for side in SIDES:
            self.window(pair, side, p.warmup_s, 0, 0)
        order = [SIDES if r % 2 else SIDES[::-1] for r in range(1, p.rounds + 1)]
        for r, sides in enumerate(order, 1):
            for side in sides:
                self.window(pair, side, p.duration_s, 0, r)
        half = {
            side: median([w.rate for w in self.of(pair.name, side, paced=False)]) / 2
            for side in SIDES
        }
        for r, sides in enumerate(order, 1):
            for side in sides:
                self.window(pair, side, p.duration_s, half[side], r)
        if pair.peak:
            for side in SIDES:
                self.window(pair, side, p.warmup_s, 0, 0, peak=True)
            for r, sides in enumerate(order, 1):
                for side in sides:
                    self.window(pair, side, p.duration_s, 0, r, peak=True)

    def of(self, pair: str, side: str, *, paced: bool, peak: bool = False) -> list[Window]:
        return [
            w
            for w in self.windows
            if w.pair == pair and w.side == side and (w.paced_rate > 0) == paced and w.peak == peak
        ]


def figures(run: Run, pair: Pair) -> list[Figure]:
    tag = f"{pair.name} w{run.workers}"
    out: list[Figure] = []
    for side in SIDES:
        full = run.of(pair.name, side, paced=False)
        paced = run.of(pair.name, side, paced=True)
        rates = [w.rate for w in full]
        wrk_cpu = max(w.wrk_cpu_s / w.elapsed_s for w in full)
        out += [
            Figure(
                f"{tag} {side}: req/s",
                median(rates),
                "/s",
                detail="rounds "
                + ", ".join(f"{r:,.0f}" for r in rates)
                + f"; wrk CPU up to {wrk_cpu:.0%} of a core; server CPU "
                + f"{median([w.server_cpu_s / w.elapsed_s for w in full]):.0%}",
            ),
            Figure(
                f"{tag} {side}: server CPU per request",
                median([cpu_per_request_us(w) for w in full]),
                "us",
                detail="server CPU seconds (the whole process tree) / requests, at max",
            ),
            Figure(
                f"{tag} {side}: p50 / p99 at max",
                median([w.p50_ms for w in full]),
                "ms",
                detail=f"p99 {median([w.p99_ms for w in full]):.2f} ms",
            ),
            Figure(
                f"{tag} {side}: p50 / p99 at half rate",
                median([w.p50_ms for w in paced]),
                "ms",
                detail=f"p99 {median([w.p99_ms for w in paced]):.2f} ms at "
                + f"{median([w.rate for w in paced]):,.0f}/s achieved",
            ),
        ]
    out += machine_figures(run, pair)
    out += peak_figures(run, pair)
    ratio = median([w.rate for w in run.of(pair.name, BLOGHUB, paced=False)]) / median(
        [w.rate for w in run.of(pair.name, BARE, paced=False)]
    )
    out.append(
        Figure(f"{tag}: bloghub / bare", ratio, "x", goal=pair.goal, detail="req/s, medians")
    )
    cpu = median([cpu_per_request_us(w) for w in run.of(pair.name, BARE, paced=False)]) / median(
        [cpu_per_request_us(w) for w in run.of(pair.name, BLOGHUB, paced=False)]
    )
    out.append(
        Figure(
            f"{tag}: bloghub / bare by CPU",
            cpu,
            "x",
            detail="bare's server CPU per request / bloghub's: the req/s ratio the same CPU "
            "would give; steadier than req/s when other work shares the machine",
        )
    )
    return out


def peak_figures(run: Run, pair: Pair) -> list[Figure]:
    """Writes closed-loop at ``peak_connections``: the most each side answers when enough
    requests are in flight to keep bloghub's cores busy while its requests wait on round
    trips."""
    windows = {side: run.of(pair.name, side, paced=False, peak=True) for side in SIDES}
    if not all(windows.values()):
        return []
    n, tag = run.params.peak_connections, f"{pair.name} w{run.workers}"
    out = [
        Figure(
            f"{tag} {side}: req/s at {n} connections",
            median([w.rate for w in ws]),
            "/s",
            detail="rounds "
            + ", ".join(f"{w.rate:,.0f}" for w in ws)
            + f"; p50 {median([w.p50_ms for w in ws]):.1f} ms, "
            + f"p99 {median([w.p99_ms for w in ws]):.1f} ms; server CPU per request "
            + f"{median([cpu_per_request_us(w) for w in ws]):,.0f} µs; "
            + f"{median([w.machine_cpu_s / w.elapsed_s for w in ws]):.2f} cores busy",
        )
        for side, ws in windows.items()
    ]
    ratio = median([w.rate for w in windows[BLOGHUB]]) / median([w.rate for w in windows[BARE]])
    out.append(
        Figure(
            f"{tag}: bloghub / bare at {n} connections",
            ratio,
            "x",
            detail=f"req/s, medians, each side closed-loop at {n} connections",
        )
    )
    return out


def machine_figures(run: Run, pair: Pair) -> list[Figure]:
    """What a request costs the machine at max: the server, the projectors it sets working,
    Kafka, PostgreSQL, Redis, OpenSearch and wrk, each from ``/proc``, and the rest of the
    machine's busy time (other work on it). Then the rate the cores allow at the cost of
    bloghub's own parts (wrk and the rest left out): a server that waits on round trips
    leaves cores idle below that rate; at it, the machine is the bound, whatever the server
    does with its own process's time."""
    tag = f"{pair.name} w{run.workers}"
    cores = os.cpu_count() or 1
    bare_rate = median([w.rate for w in run.of(pair.name, BARE, paced=False)])
    out: list[Figure] = []
    for side in SIDES:
        full = run.of(pair.name, side, paced=False)
        names = sorted({name for w in full for name in w.parts_cpu_s})
        shares = {
            n: median([w.per_request_us(w.parts_cpu_s.get(n, 0.0)) for w in full]) for n in names
        }
        shares["rest"] = median(
            [
                w.per_request_us(max(0.0, w.machine_cpu_s - sum(w.parts_cpu_s.values())))
                for w in full
            ]
        )
        busy = median([w.machine_cpu_s / w.elapsed_s for w in full])
        out.append(
            Figure(
                f"{tag} {side}: machine CPU per request",
                median([w.per_request_us(w.machine_cpu_s) for w in full]),
                "us",
                detail=", ".join(f"{n} {v:,.0f}" for n, v in shares.items() if v >= 0.5)
                + f" µs; {busy:.2f} of {cores} cores busy",
            )
        )
        if side == BLOGHUB:
            own = sum(v for n, v in shares.items() if n not in ("wrk", "rest"))
            allowed = cores / own * 1e6 if own > 0 else 0.0
            out.append(
                Figure(
                    f"{tag} {side}: req/s the cores allow",
                    allowed,
                    "/s",
                    detail=f"{cores} cores / {own:,.0f} µs (server, projectors, services): "
                    f"{allowed / bare_rate if bare_rate else 0:.2f}x of bare's measured rate",
                )
            )
    return out


def cpu_per_request_us(w: Window) -> float:
    return w.server_cpu_s / w.requests * 1e6 if w.requests else 0.0


# A broker up for less than this is still warming up (``cpu.uptimes``).
WARM_S = 180.0


def checks(windows: Sequence[Window], s: Seed) -> list[Check]:
    errors = sum(w.errors for w in windows)
    busy = [w for w in windows if w.wrk_cpu_s / w.elapsed_s >= CLIENT_BOUND]
    return [
        Check("every answer 2xx", errors == 0, f"{errors:,} errors or non-2xx answers in all"),
        Check(
            "wrk is not the limit",
            not busy,
            f"{len(busy)} windows where wrk used >= {CLIENT_BOUND:.0%} of a core",
        ),
        Check(
            "bodies served",
            bool(s.detail) and bool(s.profile) and bool(s.ranking),
            f"detail {len(s.detail):,} bytes, profile {len(s.profile):,} bytes, ranking "
            f"{len(s.ranking):,} bytes (bare serves these)",
        ),
    ]


async def run(params: Params = Params()) -> Report:
    ensure_wrk()
    # Settings given to this command (BLOGHUB_LOG_SAMPLE_READS=0.01, say) reach the servers.
    given = {k: v for k, v in os.environ.items() if k.startswith("BLOGHUB_")}
    report = Report(
        name=NAME,
        title="http: bloghub / bare Starlette under wrk on loopback (uvicorn, uvloop, httptools)",
        params=asdict(params) | {"environment": given},
    )
    up = cpu.uptimes() if cpu.available() else {}
    if up.get("kafka", WARM_S) < WARM_S:
        console.print(
            f"[yellow]{NAME}: Kafka started {up['kafka']:.0f} s ago: its JVM is still compiling "
            "its hot paths, and the writes' figures will show it (best measured a few minutes "
            "after the services start)[/]"
        )
    async with workspace(NAME, migrate=True) as ws:
        console.print(f"[dim]{NAME}: prefix {ws.prefix}, database {ws.database}[/]")
        await counted_articles(ws.settings, RANKED)
        runs, s = await asyncio.to_thread(measure_all, ws.settings, params)
    for r in runs:
        for pair in r.pairs:
            report.figures += figures(r, pair)
    windows = [w for r in runs for w in r.windows]
    report.checks += checks(windows, s)
    report.raw = {"windows": [asdict(w) | {"rate": w.rate} for w in windows]}
    report.notes += [
        "max: wrk -t1 -cN closed loop (N=32 for reads, 16 for writes); half rate: the same "
        "connections paced by a Lua schedule in wrk at half that side's median max rate; "
        f"writes also closed-loop at {params.peak_connections} connections",
        "both servers: uvicorn --factory bench.http_apps:APP --loop uvloop --http httptools "
        "(bloghub: httptools through bloghub's GuardedHttp, as `bloghub api` serves it; "
        "--workers 2 for w2); projectors in a separate `bloghub project` process",
        f"server logs under {ARTIFACTS / 'http-logs'}",
        "services up at the start: "
        + ", ".join(f"{name} {seconds:,.0f} s" for name, seconds in sorted(up.items())),
    ]
    return report


async def counted_articles(settings: Settings, count: int) -> None:
    """``count`` published articles with likes and collects in the read models the
    ranking reads (the counters' projector is not what this measures)."""
    from tests.ranking_rows import add_article, create_read_models

    await create_read_models(settings)
    for i in range(count):
        await add_article(settings, hours_ago=i % 48, likes=i * 7 % 500, collects=i % 30)


def measure_all(settings: Settings, params: Params) -> tuple[list[Run], Seed]:
    logs = ARTIFACTS / "http-logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = bloghub_env(settings)
    runs: list[Run] = []
    project = [sys.executable, "-m", "bloghub.cli", "project"]
    with spawned(project, env, logs / "projectors.log") as projectors:
        with uvicorn_server(BLOGHUB, 1, env, logs / "bloghub.log", "/healthz") as first:
            s = seed(first.url, params)
        bodies = logs / "bare-bodies.json"
        bodies.write_text(
            json.dumps(
                {
                    "detail": s.detail.decode(),
                    "profile": s.profile.decode(),
                    "ranking": s.ranking.decode(),
                }
            )
        )
        bare_env = {BODIES_ENV: str(bodies)}
        for workers in params.workers:
            with (
                uvicorn_server(BLOGHUB, workers, env, logs / "bloghub.log", "/healthz") as ours,
                uvicorn_server(BARE, workers, bare_env, logs / "bare.log", "/profile") as theirs,
            ):
                chosen = [p for p in pairs(s, params) if not params.only or p.name in params.only]
                r = Run(
                    params,
                    {BLOGHUB: ours, BARE: theirs},
                    workers,
                    pairs=chosen,
                    projectors=projectors.pid,
                )
                for pair in r.pairs:
                    r.measure(pair)
                runs.append(r)
    return runs, s


def params_from(only: Sequence[str], workers: Sequence[int]) -> Params:
    """The default run, narrowed to the pairs and worker counts named on the command line."""
    default = Params()
    return replace(default, only=tuple(only), workers=tuple(workers) or default.workers)
