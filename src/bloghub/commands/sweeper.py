"""The reservation sweeper: releases unique keys whose event never arrived."""

from __future__ import annotations

import asyncio

import structlog

from bloghub.adapters.postgres.reservations import Reservations
from bloghub.errors import Transient, Unavailable

log = structlog.get_logger(__name__)


async def sweep_forever(
    reservations: Reservations, *, older_than_s: float, every_s: float, stop: asyncio.Event
) -> None:
    while not stop.is_set():
        try:
            released = await reservations.sweep(older_than_s)
            if released:
                log.info("reservations.released", count=len(released))
        except (Transient, Unavailable) as exc:
            log.warning("reservations.sweep_failed", error=repr(exc))
        try:
            await asyncio.wait_for(stop.wait(), timeout=every_s)
        except TimeoutError:
            continue
