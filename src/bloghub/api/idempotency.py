"""``Idempotency-Key`` for POST commands: a retried request gets the first answer and
appends nothing new.

The first answer is kept in Redis for a day, keyed by caller, route and key. A retry while
the first is still running (a double-clicked Publish) waits for the first's answer, up to
``RUNNING_WAIT_S``, and is told to retry (409) only if it has none by then; reusing a key
for a different request is refused (422). When the event log took the first request's
write without confirming it (``unconfirmed``: it may still land), the key keeps that state
instead of being freed, so a retry cannot write a second time: it is told the write is
unconfirmed (503, Retry-After) until the log answers, then gets the real answer. If the
producer gave up without an answer the write may or may not be in the log, and the retry
is told so (409 ``unconfirmed``) rather than run again, as when the first request's process
died before the key learned its fate (a key "running" past ``RUNNING_S``). The key's fate
follows the write, not the request: a request cut short (a client gone) still leaves the
right state behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import orjson
import structlog
from starlette.requests import Request
from starlette.responses import Response

from bloghub.api.http import container
from bloghub.commands.after_append import AfterAppend
from bloghub.errors import Conflict, InvalidInput, Unavailable
from bloghub.events.log import Indeterminate, NotRecorded

log = structlog.get_logger(__name__)

HEADER = "idempotency-key"
KEEP_S = 24 * 3600
# Longer than any request runs (its log append is bounded by the delivery timeout): a key
# "running" for longer was left by a process that died mid-request.
RUNNING_S = 60
# How long a retry waits for the first request's answer while that one still runs.
RUNNING_WAIT_S = 5.0
_KEY = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_REPLAYED_HEADERS = ("content-type", "bloghub-position", "location")
T = TypeVar("T")


class StillUnconfirmed(Unavailable):
    """The first request with this key was taken by the log but is not confirmed yet."""

    code = "unconfirmed"
    retry_after_s = 1


class StillRunning(Conflict):
    """The first request with this key still runs after a retry has waited for it."""

    retry_after_s = 1


class NeverConfirmed(Conflict):
    """The log never confirmed the first request with this key: it may or may not be in the
    log, and running it again could record it twice."""

    code = "unconfirmed"


async def answering(command: Awaitable[T], respond: Callable[[T], Awaitable[Response]]) -> Response:
    """``respond`` to what ``command`` did; if the log has not confirmed it yet, the
    ``unconfirmed`` error carries the response it will have, so the key can learn it."""
    try:
        done = await command
    except Indeterminate as unsure:
        raise unsure.then(respond) from unsure
    return await respond(done)


async def idempotent(
    request: Request, actor: str, run: Callable[[], Awaitable[Response]]
) -> Response:
    keys = request.headers.getlist(HEADER)
    if not keys:
        return await run()
    if len(keys) > 1:
        # Which one would a retry be matched by? The client would believe either.
        raise InvalidInput(
            "send one Idempotency-Key",
            fields={HEADER: "given more than once"},
        )
    given = keys[0]
    if not _KEY.match(given):
        raise InvalidInput(
            "Idempotency-Key must be 1-128 letters, digits or ._:-",
            fields={HEADER: "must be 1-128 letters, digits or ._:-"},
        )
    c = container(request)
    key = c.cache.key("idem", actor, request.method, request.url.path, given)
    fingerprint = fingerprint_of(await request.body())
    # Kept as long as an answer would be: a first request whose process died leaves it
    # "running", and a retry must not run the write again (it may have reached the log).
    running = orjson.dumps({"state": "running", "fingerprint": fingerprint, "at": time.time()})
    waiting_until, pause = time.monotonic() + RUNNING_WAIT_S, 0.01
    while not await c.redis.set(key, running, nx=True, ex=KEEP_S):
        raw = await c.redis.get(key)
        if raw is None:
            continue  # the first recorded nothing and freed the key: this one may run
        if not _running(raw, fingerprint) or time.monotonic() >= waiting_until:
            return _replay(raw, fingerprint)
        await asyncio.sleep(pause)
        pause = min(2 * pause, 0.2)
    after = c.commands.after_append
    entry = _Entry(c.redis, key, fingerprint, after, c.settings.delivery_timeout_s)
    first = asyncio.ensure_future(run())
    following = after.start("follow_idempotent_request", lambda: entry.follow(first), key=key)
    try:
        return await asyncio.shield(first)
    finally:
        # Answer once the key says what the answer says (bounded: storing is retried on).
        stored = asyncio.ensure_future(entry.stored.wait())
        await asyncio.wait({stored, following}, timeout=after.wait_s, return_when="FIRST_COMPLETED")
        stored.cancel()


def fingerprint_of(body: bytes) -> str:
    """What makes two requests under one key the same request: their JSON's meaning, not
    its bytes (a client's retry may space or order it otherwise); a body that is not JSON,
    by its bytes. No body is an empty object, as a write that takes none reads both
    (``http.no_body``)."""
    if not body.strip():
        body = b"{}"
    with contextlib.suppress(orjson.JSONDecodeError):
        body = orjson.dumps(orjson.loads(body), option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(body).hexdigest()


class _Entry:
    """What the key holds, following the first request's write to its end."""

    def __init__(
        self, redis: Any, key: str, fingerprint: str, after: AfterAppend, delivery_s: float
    ) -> None:
        self._redis = redis
        self._key = key
        self._fingerprint = fingerprint
        self._after = after
        self._delivery_s = delivery_s
        self.stored = asyncio.Event()

    async def follow(self, first: asyncio.Future[Response]) -> None:
        try:
            response = await asyncio.shield(first)
        except Indeterminate as unsure:
            # Past the producer's delivery bound the question is closed even if this
            # process is gone by then: a retry is told "never confirmed", not "wait".
            until = time.time() + self._delivery_s
            await self._put({"state": "unconfirmed", "until": until})
            await self._resolve(unsure)
        except BaseException:
            await self._step("forget", self._forget)  # nothing was recorded: a retry may run
        else:
            await self._put(_done(response))

    async def _resolve(self, unsure: Indeterminate) -> None:
        try:
            answer = await unsure.outcome
        except NotRecorded:
            await self._step("forget", self._forget)
            return
        except Exception as exc:
            log.warning("idempotency.never_confirmed", key=self._key, error=repr(exc))
            await self._put({"state": "unconfirmed", "gave_up": True})
            return
        if isinstance(answer, Response):
            await self._put(_done(answer))
        else:  # a route that did not carry its answer on: the write did land
            await self._put({"state": "unconfirmed", "gave_up": True})

    async def _put(self, value: dict[str, Any]) -> None:
        body = orjson.dumps({**value, "fingerprint": self._fingerprint})

        async def put() -> None:
            await self._redis.set(self._key, body, ex=KEEP_S)

        await self._step("store_idempotent_answer", put)

    async def _forget(self) -> None:
        await self._redis.delete(self._key)

    async def _step(self, what: str, step: Callable[[], Awaitable[None]]) -> None:
        await self._after.start(what, step, key=self._key)
        self.stored.set()


def _done(response: Response) -> dict[str, Any]:
    return {
        "state": "done",
        "status": response.status_code,
        "body": bytes(response.body).decode(),
        "headers": {k: v for k, v in response.headers.items() if k in _REPLAYED_HEADERS},
    }


def _running(raw: bytes | str, fingerprint: str) -> bool:
    """The key names this same request, still running in a live process."""
    first = orjson.loads(raw)
    return bool(
        first["fingerprint"] == fingerprint
        and first["state"] == "running"
        and time.time() - first.get("at", 0) <= RUNNING_S
    )


def _replay(raw: bytes | str, fingerprint: str) -> Response:
    first = orjson.loads(raw)
    if first["fingerprint"] != fingerprint:
        raise InvalidInput(
            "this Idempotency-Key was used for a different request",
            fields={HEADER: "was used for a different request"},
        )
    if first["state"] == "unconfirmed":
        if first.get("gave_up") or first.get("until", 0) < time.time():
            raise NeverConfirmed(
                "the event log never confirmed the request first sent with this "
                "Idempotency-Key: it may or may not be recorded; check before writing again",
                fields={HEADER: "names a request that may or may not be recorded; check"},
            )
        raise StillUnconfirmed(
            "the request first sent with this Idempotency-Key is not confirmed by the event "
            "log yet; retry for its answer",
            fields={HEADER: "names a request not confirmed yet; retry for its answer"},
        )
    if first["state"] == "running" and time.time() - first.get("at", 0) > RUNNING_S:
        # No request runs this long: its process died (a crash, a kill) before the key
        # learned its fate, and its write may or may not be in the log.
        raise NeverConfirmed(
            "the request first sent with this Idempotency-Key was cut short: it may or may "
            "not be recorded; check before writing again with a new key",
            fields={HEADER: "names a request cut short that may or may not be recorded; check"},
        )
    if first["state"] != "done":
        raise StillRunning(
            f"a request with this Idempotency-Key is still running after {RUNNING_WAIT_S:g} s; "
            "retry",
            fields={HEADER: "names a request still running; retry"},
        )
    response = Response(first["body"], status_code=first["status"], headers=first["headers"])
    response.headers["idempotent-replay"] = "true"
    return response
