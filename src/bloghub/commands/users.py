"""Account commands."""

from __future__ import annotations

import asyncio
import re
import unicodedata
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import structlog

from bloghub.commands.context import Caller, CommandDeps, Key
from bloghub.commands.turns import take_turn
from bloghub.errors import Conflict, Unauthorized, Unavailable
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


# Unicode's default-ignorable code points: joiners, variation selectors, fillers, tag
# characters and the rest that show nothing. Migration 0025 keeps a copy of this class.
_IGNORABLE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e"
    "\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufff8\U0001bca0-\U0001bca3"
    "\U0001d173-\U0001d17a\U000e0000-\U000e0fff]"
)


# What RealWorld shows as an erased author's username: no account may take it (in any
# spelling its key folds together), or an erased author's articles would link to it.
ERASED_NAME = "deleted user"


# The blank braille cell is no default-ignorable, yet shows as a space: in a key it is
# one (so "jake" followed by it is "jake", and "deleted" and "user" joined by it are the
# erased author's name). Migration 0027 keeps a copy of this rule.
_SHOWN_AS_SPACE = str.maketrans({"\u2800": " "})
_SPACE_RUNS = re.compile(" {2,}")


def username_key(nickname: str) -> str:
    """Nicknames are unique regardless of case, of compatibility forms and of characters
    that show nothing: "Jake", "jake", "Jake" in full-width letters and "jake" with a
    zero-width joiner or a tag character in it are one username (NFKC, case-folded, NFKC
    again since folding can leave text that is not normalised; then without the
    default-ignorable code points, normalised once more; a character that shows as a
    space is one, and spaces in a run or at the ends are as one space or none). An emoji
    sequence keeps its name: its joiners are left out of the key, not out of the name."""
    return _SPACE_RUNS.sub(" ", as_shown(nickname)).strip(" ")


def as_shown(nickname: str) -> str:
    """``username_key`` before its spaces are folded: what a page shows of the name, with
    a space wherever one shows (a rule on spacing reads this)."""
    shown = nickname.translate(_SHOWN_AS_SPACE)
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", shown).casefold())
    return unicodedata.normalize("NFKC", _IGNORABLE.sub("", folded))


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
            owner = await _settled_owner(deps, kind, value)
            if owner is not None:
                return owner
            continue  # released between our two looks: try to take it again
        await deps.record_holding(
            Caller(user_id, caller.request_id), (kind, value, user_id), new_account(user_id)
        )
        return user_id
    raise Conflict(f"that {kind} is changing hands; try again")


HOLD_WAIT_S = 5.0  # how long a login waits for another's claim of its key to settle
_HOLD_POLL_S = 0.05


async def _settled_owner(deps: CommandDeps, kind: str, value: str) -> str | None:
    """The account holding ``kind``/``value`` once its claim is confirmed, or ``None`` if
    the claim was released. A pending claim is another first login's (or a binding's)
    still on its way to the log, which may yet refuse it: a session for its owner could be
    a session for an account that never comes to be. So this waits for it to settle (the
    claimant's own answer waits for the same), and answers 503 past ``HOLD_WAIT_S``."""
    deadline = asyncio.get_running_loop().time() + HOLD_WAIT_S
    while True:
        held = await deps.reservations.get(kind, value)
        if held is None or held.status == "confirmed":
            return None if held is None else held.owner_id
        if asyncio.get_running_loop().time() >= deadline:
            raise Unavailable(f"that {kind} is being signed up just now; try again")
        await asyncio.sleep(_HOLD_POLL_S)


async def change_password(
    deps: CommandDeps,
    caller: Caller,
    *,
    user_id: str,
    new_password: str,
    via: Literal["password", "sms_reset"],
    keep_session_id: str | None,
    credentials_seen: str | None = None,
) -> Position:
    """Set a new password, in the account's turn (two changes at once: one is 409). The
    owner was proven before the turn (their session, their current password as of the
    credentials epoch ``credentials_seen``); a change recorded meanwhile leaves that proof
    behind, and this one is refused rather than both answered and one of them lost."""
    # A reset's code is spent: it waits its turn rather than be told to retry.
    wait_s = SPENT_PROOF_WAIT_S if via == "sms_reset" else 0.0
    async with account_turn(deps, user_id, wait_s=wait_s):
        await _still_proven(deps, user_id, keep_session_id, credentials_seen)
        event = await _password_changed(deps, user_id, new_password, via, keep_session_id)
        return await deps.record(Caller(user_id, caller.request_id), event)


@dataclass(frozen=True, slots=True)
class NewPassword:
    """A password change riding along a profile change (``update_profile``)."""

    password: str  # already checked against the password policy
    keep_session_id: str | None
    credentials_seen: str | None = None  # the credentials epoch when the owner was proven


async def _still_proven(
    deps: CommandDeps, user_id: str, session_id: str | None, credentials_seen: str | None
) -> None:
    """In the account's turn: the session that proved the owner still stands, and no other
    change of the credentials was made since the proof (each moves the epoch, in its turn:
    ``_password_changed``)."""
    if session_id is not None and not await deps.sessions.is_live(session_id, user_id):
        raise Unauthorized("the session has ended; log in again")
    if credentials_seen is not None and (
        await deps.sessions.credentials_epoch(user_id) != credentials_seen
    ):
        raise Unauthorized(
            "the password was changed meanwhile: sign in with the new one",
            fields={"current_password": "changed meanwhile"},
        )


async def _password_changed(
    deps: CommandDeps,
    user_id: str,
    new_password: str,
    via: Literal["password", "sms_reset"],
    keep_session_id: str | None,
) -> PasswordChanged:
    password_hash = await deps.hasher.hash(new_password)
    # Other sessions end now, not when the users projector gets to the event; the epoch
    # moves with them, so a change proven before this one is refused (``_still_proven``).
    await deps.sessions.seal(user_id, keep=keep_session_id)
    return PasswordChanged(
        user_id=user_id, password_hash=password_hash, via=via, keep_session_id=keep_session_id
    )


async def update_profile(
    deps: CommandDeps,
    caller: Caller,
    *,
    user_id: str,
    changes: Mapping[str, Any],
    password: NewPassword | None = None,
) -> Position:
    """Set profile fields, and the password with them if one is given: one append, so both
    are recorded or neither. A nickname is a username: reserved (case-insensitively) before
    anything else, so a name taken by someone else refuses the whole change before a
    session ends. A rename takes the account's turn (``account_turn``): what the account
    holds is read from the write-side index, and once the change is recorded every other
    name it holds is freed (a case-only rename keeps its name)."""
    if "nickname" not in changes and password is None:
        return await _update_profile(deps, caller, user_id, changes, password, turn=None)
    async with account_turn(deps, user_id) as turn:
        if password is not None:
            await _still_proven(deps, user_id, password.keep_session_id, password.credentials_seen)
        if "nickname" in changes:
            turn.held = await deps.reservations.held_by(USERNAME, user_id)
        return await _update_profile(deps, caller, user_id, changes, password, turn=turn)


async def _update_profile(
    deps: CommandDeps,
    caller: Caller,
    user_id: str,
    changes: Mapping[str, Any],
    password: NewPassword | None,
    *,
    turn: AccountTurn | None,
) -> Position:
    who = Caller(user_id, caller.request_id)
    held = turn.held if turn is not None else []
    events: list[Event] = []
    if changes:
        events.append(ProfileUpdated(user_id=user_id, changed=sorted(changes), **changes))
    new = changes.get("nickname")
    key = await _claim_username(deps, new, user_id, held) if new is not None else None
    if password is not None:
        try:
            changed = await _password_changed(
                deps, user_id, password.password, "password", password.keep_session_id
            )
        except BaseException:
            if key is not None and key[1] not in held:
                await deps.reservations.release(*key)
            raise
        events.insert(0, changed)
    if key is None:
        position = await deps.record(who, *events)
    else:
        settling = turn.settling if turn is not None else None
        position = await deps.record_holding(who, key, *events, settling=settling)
    if turn is not None:
        # Freed as the turn ends (``account_turn``), decided here, in the turn.
        turn.given_up = [(USERNAME, n, user_id) for n in held if key is None or n != key[1]]
    return position


async def _claim_username(deps: CommandDeps, nickname: str, user_id: str, held: list[str]) -> Key:
    """The key of ``nickname`` for the account, claimed unless the account holds it (a
    case-only rename, or the same name again)."""
    key = (USERNAME, username_key(nickname), user_id)
    if key[1] not in held:
        try:
            await deps.reservations.reserve(*key)
        except Conflict:
            raise Conflict("that username is taken", fields={"nickname": "already taken"}) from None
    return key


ACCOUNT_TURN = "account_turn"


@dataclass
class AccountTurn:
    """What a change made in the account's turn leaves to its end."""

    held: list[str] = field(default_factory=list)  # the keys of its kind the account held
    given_up: list[Key] = field(default_factory=list)  # to free once it is recorded
    settling: list[asyncio.Task[None]] = field(default_factory=list)  # its own keys' fate


# How long a change whose proof is already spent (an SMS code) waits for the account's
# turn, rather than be told to retry with a code that no longer works.
SPENT_PROOF_WAIT_S = 5.0


@asynccontextmanager
async def account_turn(
    deps: CommandDeps, user_id: str, *, wait_s: float = 0.0
) -> AsyncIterator[AccountTurn]:
    """The account's turn to change its unique keys (username, phone) (commands/turns.py):
    a concurrent change of the same account is refused (409), never interleaved, so each
    reads what the account holds after the one before it. ``wait_s``: how long to wait for
    a turn another change holds before the 409 (for a change that has spent its proof).

    The turn ends only after the change's own keys are settled (a confirmation landing
    late would bring back a key the next change frees) and the keys it gave up are freed
    (a free retried after the turn could take a key the next change takes back): one step
    off the request path, retried, never an error in the change's answer. If it gives up
    (the index unreachable for its every try), the turn stays until swept."""
    holder = new_id_str()
    busy = "another change of this account is in progress; retry"
    await take_turn(deps, ACCOUNT_TURN, user_id, holder, wait_s=wait_s, busy=busy)
    turn = AccountTurn()

    async def end() -> None:
        if turn.settling:
            await asyncio.wait(turn.settling)
        for key in turn.given_up:
            await deps.reservations.release_confirmed(*key)
        await deps.reservations.release(ACCOUNT_TURN, user_id, holder)

    try:
        yield turn
    finally:
        await deps.after("end_account_turn", end, owner=user_id)


NO_PROOF_CHANGE = object()  # the owner's proof holds whatever phone the account has


async def bind_phone(
    deps: CommandDeps,
    caller: Caller,
    *,
    user_id: str,
    phone: str,
    proven_with: str | object | None = NO_PROOF_CHANGE,
) -> Position:
    """Bind ``phone`` (already proven by an SMS code, and the caller proven the account's
    owner) to the account; 409 if another account holds it, or if another change of the
    account is under way. In the account's turn, the phones it holds are read from the
    write-side index; once the binding is recorded, every other one is freed.

    ``proven_with``: the phone the account had when its owner was proven, when the proof
    rests on it (a code to that phone, or none at all for an account with no password and
    no phone). A binding made meanwhile (two at once) leaves that proof behind: 409, and
    the retry is asked for a proof against the phone bound now."""
    # Its codes are spent: it waits its turn rather than be told to retry with them.
    async with account_turn(deps, user_id, wait_s=SPENT_PROOF_WAIT_S) as turn:
        held = await deps.reservations.held_by("phone", user_id)
        if proven_with is not NO_PROOF_CHANGE and (
            proven_with not in held if proven_with is not None else held
        ):
            raise Conflict(
                "the account's phone changed while this was asked; prove it is you again",
                fields={"phone": "changed meanwhile"},
            )
        if phone not in held:
            try:
                await deps.reservations.reserve("phone", phone, user_id)
            except Conflict:
                raise Conflict(
                    "that phone belongs to another account", fields={"phone": "already taken"}
                ) from None
        given_up = [number for number in held if number != phone]
        position = await deps.record_holding(
            Caller(user_id, caller.request_id),
            ("phone", phone, user_id),
            # The one it replaces; more than one only for an account whose extra phones
            # leaked before changes took turns (all are freed as the turn ends).
            PhoneBound(user_id=user_id, phone=phone, previous_phone=_first(given_up)),
            settling=turn.settling,
        )
        turn.given_up = [("phone", number, user_id) for number in given_up]
        return position


def _first(values: list[str]) -> str | None:
    return values[0] if values else None


async def erase_user(deps: CommandDeps, caller: Caller, *, user_id: str) -> Position:
    """Erase the person (whose proof of ownership the caller has checked). The erasure is
    recorded first: if the log does not take it, nothing is erased. Then their key is
    shredded and their unique keys freed at once; the users projector does the same when it
    applies the event, so a failure here only delays it, and never turns the recorded
    erasure into an error."""
    position = await deps.record(Caller(user_id, caller.request_id), UserErased(user_id=user_id))
    # Every session ends now, whatever the projectors' lag (a token that outlived its
    # person could still read what the read model has not yet emptied).
    await deps.after("end_sessions", lambda: deps.sessions.seal(user_id), user_id=user_id)
    # When they were last seen is theirs too: deleted, and not written again by their
    # sockets still open (each closes once its process hears the sessions ended).
    await deps.after("forget_presence", lambda: deps.presence.forget(user_id), user_id=user_id)
    await deps.after("shred_key", lambda: _shred_and_seal(deps, user_id), user_id=user_id)
    return position


async def _shred_and_seal(deps: CommandDeps, user_id: str) -> None:
    """Shred the key (a login that checks the account from now on finds it erased), then
    seal again: a phone or WeChat login that found the account alive before the shred either
    opened its session before this seal (ended here) or opens it after (refused: its epoch,
    ``login_epoch``, is older than this seal's)."""
    await deps.keys.erase(user_id)
    await deps.sessions.seal(user_id)


async def login_epoch(deps: CommandDeps, user_id: str) -> str:
    """The credentials epoch a phone or WeChat login opens its session under, read before
    it makes sure the account is not erased (``AccountErased``, 401): an erasure seals
    before and after it shreds the key (``erase_user``), so no such login leaves a live
    session for an erased account, whatever the order the two ran in."""
    epoch = await deps.sessions.credentials_epoch(user_id)
    await deps.keys.refuse_erased(user_id)
    return epoch
