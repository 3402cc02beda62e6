"""Producer throughput: ``EventLog.append`` against a raw ``AIOKafkaProducer``.

Both sides have the same shape: several concurrent appenders, each taking the next chunk of
500 messages, sending it and waiting until every record of the chunk is acknowledged. Both
producers have the EventLog's settings (idempotent, ``acks="all"``, the configured
``BLOGHUB_PRODUCER_LINGER_MS``) and send the same bytes: the raw side sends envelopes encoded
up front, with the same key and headers, so the difference is the EventLog's own work per
record (encoding, topic lookup, the bounded wait). A third, informational variant also
builds the events and envelopes inside the timed loop, as a request does.

A fourth, also informational, appends as requests do: ``callers`` concurrent tasks, each
appending one record and waiting for it before the next, all of the same key (as every
like of one article). It says what the log costs a single-record write when nothing else
runs: the rate, and the CPU of this process and of the broker per append.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from aiokafka import AIOKafkaProducer

import bloghub.events.users  # noqa: F401  (registers the users family's event types)
from bench import cpu
from bench.support import Check, Figure, Report, console, median, rate, topic_size, workspace
from bloghub.events.base import Envelope, envelop, registry
from bloghub.events.codec import Headers, encode
from bloghub.events.log import EventLog
from bloghub.events.topics import Family, topic_for
from bloghub.events.users import UserRegistered
from bloghub.ids import new_id_str
from bloghub.settings import Settings

NAME = "producer"
GOAL_RATIO = 0.6
PASSWORD_HASH = "$argon2id$v=19$m=65536,t=3,p=4$YmVuY2htYXJrc2FsdA$" + "h" * 43


@dataclass(frozen=True, slots=True)
class Params:
    messages: int = 50_000
    warmup: int = 5_000
    chunk: int = 500
    appenders: int = 8
    rounds: int = 5
    callers: int = 16  # the single appends' concurrent callers (a write pair's connections)
    single_appends: int = 20_000


Wire = tuple[bytes, bytes, Headers]  # key, value, headers


def make_envelope(i: int, tag: str) -> Envelope:
    user_id = new_id_str()
    event = UserRegistered(
        user_id=user_id, email=f"bench-{tag}-{i}@example.com", password_hash=PASSWORD_HASH
    )
    return envelop(event, actor_id=user_id, request_id=new_id_str())


def chunks_of(n: int, size: int) -> list[range]:
    return [range(start, min(start + size, n)) for start in range(0, n, size)]


async def drive(
    ranges: Sequence[range], appenders: int, send: Callable[[range], Awaitable[None]]
) -> float:
    """Run ``send`` over every chunk with ``appenders`` concurrent tasks; seconds taken."""
    pending: Iterator[range] = iter(ranges)

    async def appender() -> None:
        for chunk in pending:  # one shared iterator: each chunk goes to exactly one task
            await send(chunk)

    started = time.perf_counter()
    await asyncio.gather(*(appender() for _ in range(appenders)))
    return time.perf_counter() - started


async def single_appends(
    log: EventLog, envelopes: Sequence[Envelope], callers: int, n: int
) -> tuple[float, cpu.CpuUse]:
    """``n`` appends of one record each by ``callers`` concurrent tasks, each waiting for
    its record before the next (as a request does); seconds taken and the CPU used. Every
    record has the same key, so all go to one partition (as the likes of one article)."""
    key = envelopes[0].aggregate_id
    same_key = [e._replace(aggregate_id=key) for e in envelopes[:n]]
    pending = iter(same_key)

    async def caller() -> None:
        for env in pending:
            await log.append([env])

    before = cpu.sample()
    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(callers)))
    return time.perf_counter() - started, cpu.used(before, cpu.sample())


def raw_producer(settings: Settings) -> Any:
    """A producer configured exactly as ``EventLog._ensure_producer`` configures its own."""
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        client_id="bloghub-bench-raw",
        enable_idempotence=True,
        acks="all",
        linger_ms=settings.producer_linger_ms,
        request_timeout_ms=max(1000, int(settings.append_timeout_s * 1000) - 300),
        retry_backoff_ms=50,
    )


class Sides:
    """The three ways of sending message ``i`` of a run, as chunk senders."""

    def __init__(
        self, producer: Any, log: EventLog, topic: str, envelopes: list[Envelope], tag: str
    ) -> None:
        self._producer = producer
        self._log = log
        self._topic = topic
        self._envelopes = envelopes
        self._wire: list[Wire] = []
        for env in envelopes:
            value, headers = encode(env)
            self._wire.append((env.aggregate_id.encode(), value, headers))
        self._tag = tag
        self._built = 0

    @property
    def wire_bytes(self) -> float:
        return sum(len(v) for _, v, _ in self._wire) / max(1, len(self._wire))

    async def raw(self, chunk: range) -> None:
        producer, topic, wire = self._producer, self._topic, self._wire
        futures = []
        for i in chunk:
            key, value, headers = wire[i]
            futures.append(await producer.send(topic, value=value, key=key, headers=headers))
        await asyncio.gather(*futures)

    async def event_log(self, chunk: range) -> None:
        await self._log.append(self._envelopes[chunk.start : chunk.stop])

    async def build_and_append(self, chunk: range) -> None:
        self._built += 1
        tag = f"{self._tag}-b{self._built}"
        await self._log.append([make_envelope(i, tag) for i in chunk])


async def run(params: Params = Params()) -> Report:
    report = Report(
        name=NAME,
        title="producer: EventLog.append vs raw AIOKafkaProducer (messages/s)",
        params=asdict(params),
    )
    async with workspace(NAME, migrate=False) as ws:
        settings = ws.settings
        topic = topic_for(settings.prefix, Family.USERS)
        console.print(f"[dim]{NAME}: prefix {ws.prefix}, database {ws.database}[/]")
        n = max(params.messages, params.warmup)
        envelopes = [make_envelope(i, ws.prefix) for i in range(n)]
        producer = raw_producer(settings)
        log = EventLog(
            bootstrap=settings.kafka_bootstrap,
            prefix=settings.prefix,
            registry=registry,
            timeout_s=settings.append_timeout_s,
            client_id="bloghub-bench-eventlog",
            linger_ms=settings.producer_linger_ms,
        )
        await producer.start()
        await log.start()
        try:
            sides = Sides(producer, log, topic, envelopes, ws.prefix)
            variants: dict[str, Callable[[range], Awaitable[None]]] = {
                "raw": sides.raw,
                "event_log": sides.event_log,
                "build_and_append": sides.build_and_append,
            }
            warm = chunks_of(params.warmup, params.chunk)
            for send in variants.values():
                await drive(warm, params.appenders, send)
            measured = chunks_of(params.messages, params.chunk)
            rates: dict[str, list[float]] = {k: [] for k in variants}
            singles: list[tuple[float, cpu.CpuUse]] = []
            single_n = min(params.single_appends, n)
            await single_appends(log, envelopes, params.callers, min(single_n, params.warmup))
            for round_no in range(params.rounds):
                # Alternate the order so neither side always runs on a warmer broker.
                order = list(variants) if round_no % 2 == 0 else list(reversed(variants))
                for key in order:
                    seconds = await drive(measured, params.appenders, variants[key])
                    rates[key].append(rate(params.messages, seconds))
                singles.append(await single_appends(log, envelopes, params.callers, single_n))
                console.print(
                    f"[dim]round {round_no + 1}: "
                    + ", ".join(f"{k} {rates[k][-1]:,.0f}/s" for k in variants)
                    + f", single appends {rate(single_n, singles[-1][0]):,.0f}/s[/]"
                )
            wire_bytes = sides.wire_bytes
        finally:
            await log.close()
            await producer.stop()
        landed = await topic_size(settings.kafka_bootstrap, topic)

    raw_rate = median(rates["raw"])
    log_rate = median(rates["event_log"])
    build_rate = median(rates["build_and_append"])
    per_round = [e / r for e, r in zip(rates["event_log"], rates["raw"], strict=True)]

    def rounds(key: str) -> str:
        return "rounds: " + ", ".join(f"{v:,.0f}" for v in rates[key])

    single_rates = [rate(single_n, seconds) for seconds, _ in singles]
    own_us = [use.own / single_n * 1e6 for _, use in singles]
    broker_us = [use.services.get("kafka", 0.0) / single_n * 1e6 for _, use in singles]

    report.figures += [
        Figure("raw AIOKafkaProducer, pre-encoded bytes", raw_rate, "msg/s", detail=rounds("raw")),
        Figure(
            "EventLog.append, pre-built envelopes", log_rate, "msg/s", detail=rounds("event_log")
        ),
        Figure(
            "ratio EventLog / raw (medians)",
            log_rate / raw_rate,
            "x",
            goal=GOAL_RATIO,
            detail=f"paired per round: {', '.join(f'{r:.2f}' for r in per_round)} "
            f"(median {median(per_round):.2f})",
        ),
        Figure(
            "build events + envelop + EventLog.append",
            build_rate,
            "msg/s",
            detail=rounds("build_and_append"),
        ),
        Figure("ratio build+append / raw (informational)", build_rate / raw_rate, "x"),
        Figure(
            f"single appends, {params.callers} concurrent callers, one key",
            median(single_rates),
            "msg/s",
            detail="rounds: " + ", ".join(f"{v:,.0f}" for v in single_rates),
        ),
        Figure(
            "single appends: this process's CPU per append",
            median(own_us),
            "us",
            detail="rounds: " + ", ".join(f"{v:.0f}" for v in own_us),
        ),
        Figure(
            "single appends: the broker's CPU per append",
            median(broker_us),
            "us",
            detail="rounds: " + ", ".join(f"{v:.0f}" for v in broker_us),
        ),
    ]
    warm_singles = min(single_n, params.warmup)
    sent = len(variants) * (params.warmup + params.rounds * params.messages)
    sent += warm_singles + params.rounds * single_n
    report.checks.append(
        Check(
            "records in the topic == records sent",
            landed == sent,
            f"{landed:,} in {topic} (sum of end offsets), {sent:,} sent",
        )
    )
    report.raw = {
        "rates": rates,
        "paired_ratios": per_round,
        "mean_value_bytes": wire_bytes,
        "single_appends": {"rates": single_rates, "own_us": own_us, "broker_us": broker_us},
    }
    report.notes.append(
        f"median of {params.rounds} rounds, order alternated; {params.appenders} concurrent "
        f"appenders x {params.chunk} messages per append; value {wire_bytes:.0f} B + key + "
        "3 headers per message on both sides; single appends: "
        f"{single_n:,} per round, one record per append, {params.callers} callers"
    )
    return report
