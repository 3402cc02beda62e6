"""Account commands."""

from __future__ import annotations

from dataclasses import dataclass

from bloghub.commands.context import Caller, CommandDeps
from bloghub.events.position import Position
from bloghub.events.users import UserRegistered
from bloghub.ids import new_id_str


@dataclass(frozen=True, slots=True)
class RegisterUser:
    email: str  # already normalised by the input model
    password: str  # already checked against the password policy


@dataclass(frozen=True, slots=True)
class Registered:
    user_id: str
    position: Position


async def register_user(cmd: RegisterUser, deps: CommandDeps, caller: Caller) -> Registered:
    user_id = new_id_str()
    # Reserve first: a taken address is refused before paying for a password hash.
    await deps.reservations.reserve("email", cmd.email, user_id)
    try:
        password_hash = await deps.hasher.hash(cmd.password)
        position = await deps.record(
            Caller(actor_id=user_id, request_id=caller.request_id),
            UserRegistered(user_id=user_id, email=cmd.email, password_hash=password_hash),
        )
    except BaseException:
        # Nothing was recorded: free the address so a retry is not refused as a duplicate.
        await deps.reservations.release("email", cmd.email, user_id)
        raise
    await deps.reservations.confirm("email", cmd.email, user_id, position.encode())
    return Registered(user_id=user_id, position=position)
