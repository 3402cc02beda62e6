"""Account commands."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import structlog

from bloghub.commands.context import Caller, CommandDeps, Key
from bloghub.errors import Conflict
from bloghub.events.base import Event
from bloghub.events.position import Position
from bloghub.events.users import (
    PasswordChanged,
    PhoneBound,
    ProfileUpdated,
    UserErased,
    UserRegistered,
)
from bloghub.ids import new_id_str

log = structlog.get_logger(__name__)

NewAccount = Callable[[str], Event]  # user id -> the event that makes the account


USERNAME = "username"  # the write-side index kind of nicknames (Conduit's usernames)


def username_key(nickname: str) -> str:
    """Nicknames are unique regardless of case and of compatibility forms: "Jake", "jake"
    and "Jake" in full-width letters are one username (NFKC, case-folded, NFKC again, since
    folding can leave text that is not normalised)."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", nickname).casefold())


@dataclass(frozen=True, slots=True)
class RegisterUser:
    email: str  # already normalised by the input model
    password: str  # already checked against the password policy
    nickname: str | None = None  # reserved as the account's username when given


@dataclass(frozen=True, slots=True)
class Registered:
    user_id: str
    position: Position


async def register_user(cmd: RegisterUser, deps: CommandDeps, caller: Caller) -> Registered:
    user_id = new_id_str()
    # Reserve first: a taken address or name is refused before paying for a password hash.
    keys = await _reserve_all(deps, _account_keys(cmd, user_id))
    try:
        password_hash = await deps.hasher.hash(cmd.password)
    except BaseException:
        await _release_all(deps, keys)
        raise
    events: list[Event] = [
        UserRegistered(user_id=user_id, email=cmd.email, password_hash=password_hash)
    ]
    if cmd.nickname is not None:
        events.append(ProfileUpdated(user_id=user_id, changed=["nickname"], nickname=cmd.nickname))
    position = await deps.record_holding_all(
        Caller(actor_id=user_id, request_id=caller.request_id), keys, *events
    )
    return Registered(user_id=user_id, position=position)


def _account_keys(cmd: RegisterUser, user_id: str) -> list[Key]:
    keys: list[Key] = [("email", cmd.email, user_id)]
    if cmd.nickname is not None:
        keys.append((USERNAME, username_key(cmd.nickname), user_id))
    return keys


async def _reserve_all(deps: CommandDeps, keys: list[Key]) -> list[Key]:
    """Reserve every key or none: a conflict on one frees those taken before it."""
    taken: list[Key] = []
    try:
        for key in keys:
            await deps.reservations.reserve(*key)
            taken.append(key)
    except BaseException:
        await _release_all(deps, taken)
        raise
    return taken


async def _release_all(deps: CommandDeps, keys: list[Key]) -> None:
    for key in keys:
        await deps.reservations.release(*key)


async def account_for(
    deps: CommandDeps, caller: Caller, *, kind: str, value: str, new_account: NewAccount
) -> str:
    """The account holding ``kind``/``value`` (a phone, a WeChat open id), made now if none
    does. The write-side index decides, so two first logins at once make one account."""
    for _ in range(3):
        user_id = new_id_str()
        try:
            await deps.reservations.reserve(kind, value, user_id)
        except Conflict:
            held = await deps.reservations.get(kind, value)
            if held is not None:
                return held.owner_id
            continue  # released between our two looks: try to take it again
        await deps.record_holding(
            Caller(user_id, caller.request_id), (kind, value, user_id), new_account(user_id)
        )
        return user_id
    raise Conflict(f"that {kind} is changing hands; try again")


async def change_password(
    deps: CommandDeps,
    caller: Caller,
    *,
    user_id: str,
    new_password: str,
    via: Literal["password", "sms_reset"],
    keep_session_id: str | None,
) -> Position:
    event = await _password_changed(deps, user_id, new_password, via, keep_session_id)
    return await deps.record(Caller(user_id, caller.request_id), event)


@dataclass(frozen=True, slots=True)
class NewPassword:
    """A password change riding along a profile change (``update_profile``)."""

    password: str  # already checked against the password policy
    keep_session_id: str | None


async def _password_changed(
    deps: CommandDeps,
    user_id: str,
    new_password: str,
    via: Literal["password", "sms_reset"],
    keep_session_id: str | None,
) -> PasswordChanged:
    password_hash = await deps.hasher.hash(new_password)
    # Other sessions end now, not when the users projector gets to the event.
    await deps.sessions.end_all(user_id, keep=keep_session_id)
    return PasswordChanged(
        user_id=user_id, password_hash=password_hash, via=via, keep_session_id=keep_session_id
    )


async def update_profile(
    deps: CommandDeps,
    caller: Caller,
    *,
    user_id: str,
    changes: Mapping[str, Any],
    previous_nickname: str | None = None,
    password: NewPassword | None = None,
) -> Position:
    """Set profile fields, and the password with them if one is given: one append, so both
    are recorded or neither. A nickname is a username: reserved (case-insensitively) before
    anything else, so a name taken by someone else refuses the whole change before a
    session ends; the previous one is freed after the change is recorded."""
    who = Caller(user_id, caller.request_id)
    events: list[Event] = []
    if changes:
        events.append(ProfileUpdated(user_id=user_id, changed=sorted(changes), **changes))
    new, old = changes.get("nickname"), previous_nickname
    renamed = "nickname" in changes and (
        old is None or new is None or username_key(new) != username_key(old)
    )
    key = await _claim_username(deps, new, user_id) if renamed and new is not None else None
    if password is not None:
        events.insert(
            0,
            await _password_changed(
                deps, user_id, password.password, "password", password.keep_session_id
            ),
        )
    if key is None:
        position = await deps.record(who, *events)
    else:
        position = await deps.record_holding(who, key, *events)
    if renamed and old is not None:

        async def free_previous() -> None:
            await deps.reservations.release_confirmed(USERNAME, username_key(old), user_id)

        await deps.after("free_previous_username", free_previous, owner=user_id)
    return position


async def _claim_username(deps: CommandDeps, nickname: str, user_id: str) -> Key:
    key = (USERNAME, username_key(nickname), user_id)
    held = await deps.reservations.get(USERNAME, key[1])
    if held is not None and held.owner_id != user_id:
        raise Conflict("that username is taken", fields={"nickname": "already taken"})
    if held is None:
        try:
            await deps.reservations.reserve(*key)
        except Conflict:
            raise Conflict("that username is taken", fields={"nickname": "already taken"}) from None
    return key


async def bind_phone(
    deps: CommandDeps, caller: Caller, *, user_id: str, phone: str, previous: str | None
) -> Position:
    """Bind ``phone`` (already proven by an SMS code, and the caller proven the account's
    owner) to the account; 409 if another
    account holds it. The previous phone is freed once the change is recorded."""
    held = await deps.reservations.get("phone", phone)
    if held is not None and held.owner_id != user_id:
        raise Conflict("that phone belongs to another account", fields={"phone": "already taken"})
    if held is None:
        await deps.reservations.reserve("phone", phone, user_id)
    position = await deps.record_holding(
        Caller(user_id, caller.request_id),
        ("phone", phone, user_id),
        PhoneBound(user_id=user_id, phone=phone, previous_phone=previous),
    )
    if previous is not None and previous != phone:

        async def free_previous() -> None:
            await deps.reservations.release_confirmed("phone", previous, user_id)

        # The binding is recorded: freeing the old number must not turn its answer into
        # an error, so it is retried off the request path.
        await deps.after("free_previous_phone", free_previous, owner=user_id)
    return position


async def erase_user(deps: CommandDeps, caller: Caller, *, user_id: str) -> Position:
    """Erase the person (whose proof of ownership the caller has checked). The erasure is
    recorded first: if the log does not take it, nothing is erased. Then their key is
    shredded and their unique keys freed at once; the users projector does the same when it
    applies the event, so a failure here only delays it, and never turns the recorded
    erasure into an error."""
    position = await deps.record(Caller(user_id, caller.request_id), UserErased(user_id=user_id))
    # Every session ends now, whatever the projectors' lag (a token that outlived its
    # person could still read what the read model has not yet emptied).
    await deps.after("end_sessions", lambda: deps.sessions.end_all(user_id), user_id=user_id)
    # When they were last seen is theirs too: deleted, and not written again by their
    # sockets still open (each closes once its process hears the sessions ended).
    await deps.after("forget_presence", lambda: deps.presence.forget(user_id), user_id=user_id)
    await deps.after("shred_key", lambda: deps.keys.erase(user_id), user_id=user_id)
    return position
