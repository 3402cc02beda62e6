"""``Idempotency-Key`` for POST commands: a retried request gets the first answer and
appends nothing new. The first answer is kept in Redis for a day, keyed by caller, route and
key; a retry while the first is still running is told so (409), and reusing a key for a
different request is refused (422)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable

import orjson
from starlette.requests import Request
from starlette.responses import Response

from bloghub.api.http import container
from bloghub.errors import Conflict, InvalidInput

HEADER = "idempotency-key"
KEEP_S = 24 * 3600
RUNNING_S = 60
_KEY = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_REPLAYED_HEADERS = ("content-type", "bloghub-position", "location")


async def idempotent(
    request: Request, actor: str, run: Callable[[], Awaitable[Response]]
) -> Response:
    given = request.headers.get(HEADER)
    if given is None:
        return await run()
    if not _KEY.match(given):
        raise InvalidInput(
            "Idempotency-Key must be 1-128 letters, digits or ._:-", fields={HEADER: "not valid"}
        )
    c = container(request)
    key = c.cache.key("idem", actor, request.method, request.url.path, given)
    fingerprint = hashlib.sha256(await request.body()).hexdigest()
    running = orjson.dumps({"state": "running", "fingerprint": fingerprint})
    if not await c.redis.set(key, running, nx=True, ex=RUNNING_S):
        return _replay(await c.redis.get(key), fingerprint)
    try:
        response = await run()
    except BaseException:
        await c.redis.delete(key)  # nothing was decided: a retry may try again
        raise
    done = {
        "state": "done",
        "fingerprint": fingerprint,
        "status": response.status_code,
        "body": bytes(response.body).decode(),
        "headers": {k: v for k, v in response.headers.items() if k in _REPLAYED_HEADERS},
    }
    await c.redis.set(key, orjson.dumps(done), ex=KEEP_S)
    return response


def _replay(raw: bytes | str | None, fingerprint: str) -> Response:
    if raw is None:
        raise Conflict("a request with this Idempotency-Key just finished; retry")
    first = orjson.loads(raw)
    if first["fingerprint"] != fingerprint:
        raise InvalidInput(
            "this Idempotency-Key was used for a different request", fields={HEADER: "reused"}
        )
    if first["state"] != "done":
        raise Conflict("a request with this Idempotency-Key is still running")
    response = Response(first["body"], status_code=first["status"], headers=first["headers"])
    response.headers["idempotent-replay"] = "true"
    return response
