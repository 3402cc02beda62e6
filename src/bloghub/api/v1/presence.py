"""``GET /v1/users/{id}/presence``: online now (on any API process), or when last seen;
for the user themself and their followers. An unknown or erased user has none (404), as
they have no profile."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

from bloghub.api.auth import USERS_READS, require_caller
from bloghub.api.consistent import wait_for_reads
from bloghub.api.follows import may_see_presence
from bloghub.api.http import JSON, Endpoint, container
from bloghub.api.v1.path_ids import path_id
from bloghub.api.v1.users import public_user
from bloghub.errors import CatchingUp, Forbidden, NotFound


class PresenceOut(BaseModel):
    user_id: str
    online: bool
    last_seen: datetime | None


class PresenceEnvelope(BaseModel):
    presence: PresenceOut


async def presence(request: Request) -> Response:
    claims = await require_caller(request)
    user_id = path_id(request, "user_id", "user")
    if await wait_for_reads(request, USERS_READS, claims.user_id):
        raise CatchingUp("your last change is still being applied; try again in a moment")
    found = await public_user(request, user_id)
    if found is None or found.get("deleted"):
        raise NotFound("no such user")
    if not await may_see_presence(request, claims.user_id, user_id):
        raise Forbidden("only the user and their followers see their presence")
    status = await container(request).live.presence.status(user_id)
    seen = status.last_seen_ms
    out = PresenceOut(
        user_id=user_id,
        online=status.online,
        last_seen=datetime.fromtimestamp(seen / 1000, UTC) if seen is not None else None,
    )
    return JSON(PresenceEnvelope(presence=out).model_dump(mode="json"))


ENDPOINTS = [
    Endpoint(
        "GET",
        "/v1/users/{user_id}/presence",
        presence,
        "Whether a user is online now, or when they were last seen (for followers)",
        "live",
        response=PresenceEnvelope,
        auth=True,
        errors=(401, 403, 404, 503),
    ),
]
