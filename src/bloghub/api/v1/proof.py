"""The account owner's proof: the current password, checked under its own attempt limit, so a
stolen access token never turns into unlimited password guesses. Routes that change what an
account is (its phone, its password) ask for it."""

from __future__ import annotations

from starlette.requests import Request

from bloghub.api.http import container
from bloghub.api.queries import UserRow
from bloghub.api.v1.sessions import client_ip
from bloghub.auth.audit import security_event
from bloghub.errors import Unauthorized


async def check_current_password(
    request: Request, row: UserRow | None, user_id: str, password: str, *, purpose: str
) -> None:
    c = container(request)
    await c.password_checks.attempt(user_id, "password checks")
    hashed = row.password_hash if row is not None else None
    if await c.commands.hasher.verify(password, hashed):
        await c.password_checks.cleared(user_id)
        return
    locked_for_s = await c.password_checks.failed(user_id)
    security_event(
        "password_check.failed",
        ip=client_ip(request),
        user_id=user_id,
        purpose=purpose,
        locked_for_s=locked_for_s,
    )
    raise Unauthorized("the current password is wrong", fields={"current_password": "wrong"})
