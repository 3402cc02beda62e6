"""The reservation sweeper: releases unique keys whose event never arrived.

It runs wherever keys are reserved (every API process; ``bloghub run`` includes one), so a
deployment that runs only ``bloghub api`` still frees the keys of crashed requests. With
several processes, a Redis lock per beat lets one of them sweep; without Redis each sweeps
(a sweep is one idempotent DELETE, so two at once do no harm). A key is freed only past
``older_than_s``, which settings keep at least twice the time the producer may take to
deliver an event it was handed: by then its event can no longer land.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from bloghub.adapters.postgres.reservations import Reservations
from bloghub.errors import Transient, Unavailable

log = structlog.get_logger(__name__)


async def sweep_forever(
    reservations: Reservations,
    *,
    older_than_s: float,
    every_s: float,
    stop: asyncio.Event,
    redis: Redis | None = None,
    lock: str | None = None,
) -> None:
    while not stop.is_set():
        if await _my_turn(redis, lock, every_s):
            await sweep_once(reservations, older_than_s)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every_s)


async def sweep_once(reservations: Reservations, older_than_s: float) -> None:
    # By age and status alone, whatever the kind: a kind it has never heard of (an
    # account's turn, ``commands/users.py: account_turn``, left pending by a crashed
    # holder) is freed like any other, and nothing here reads what a kind means.
    try:
        released = await reservations.sweep(older_than_s)
    except (Transient, Unavailable) as exc:
        log.warning("reservations.sweep_failed", error=repr(exc))
        return
    if released:
        log.info("reservations.released", count=len(released))


async def _my_turn(redis: Redis | None, lock: str | None, every_s: float) -> bool:
    if redis is None or lock is None:
        return True
    try:
        # Held for most of a beat, so the next beat is anyone's again.
        return bool(await redis.set(lock, b"1", nx=True, px=max(100, int(every_s * 900))))
    except (RedisError, OSError, TimeoutError) as exc:
        log.info("reservations.sweep_lock_unavailable", error=repr(exc))
        return True
