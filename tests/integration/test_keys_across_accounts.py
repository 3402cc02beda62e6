"""A key that passes between accounts (an email, a phone, a WeChat id) reaches the users read
model whatever order the accounts' events are applied in. The two accounts sit on different
partitions, whose events are applied in no agreed order; here the later account's partition
is applied first. The write-side index alone decides who holds a key: nothing is
dead-lettered, each account ends as its own events say, and login finds the index's holder."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka.partitioner import murmur2

from bloghub.adapters.postgres.engine import make_engine
from bloghub.adapters.postgres.reservations import Reservations
from bloghub.auth.passwords import PasswordHasher
from bloghub.events.base import Event, envelop
from bloghub.events.codec import decode
from bloghub.events.log import EventLog
from bloghub.events.topics import DLQ, topic_for
from bloghub.events.users import (
    PhoneBound,
    UserRegistered,
    UserRegisteredByPhone,
    UserRegisteredByWeChat,
)
from bloghub.ids import new_id_str
from bloghub.settings import Settings
from tests.conftest import isolated, projecting, read_topic, serve
from tests.support import passed, wait_until

PASSWORD_A, PASSWORD_B = "a-s3cret-Pass!", "b-s3cret-Pass!"


@dataclass
class Rig:
    settings: Settings
    log: EventLog
    index: Reservations
    api: httpx.AsyncClient
    hash_a: str
    hash_b: str

    async def apply(self, event: Event) -> int:
        """Append ``event``, return once the projector has passed it (applied or
        dead-lettered), and say which partition it landed on."""
        position = await self.log.append([envelop(event, actor_id=None, request_id=None)])

        async def done() -> bool:
            return await passed(self.settings, "users", position)

        await wait_until(done, timeout_s=60)
        ((_, partition, _),) = list(position)
        return partition

    async def dead_letters_of(self, *user_ids: str) -> list[str]:
        """The types of the accounts' events that the dead-letter topic holds."""
        letters = await read_topic(self.settings, topic_for(self.settings.prefix, DLQ))
        return [decode(r.value).type for r in letters if decode(r.value).aggregate_id in user_ids]

    async def keys_of(self, user_id: str) -> dict[str, Any] | None:
        """The account's keys in the read model; None if it has no row."""
        conn = await asyncpg.connect(self.settings.asyncpg_dsn)
        try:
            row = await conn.fetchrow(
                "SELECT email, phone, wechat_openid FROM users_g1.users WHERE id = $1::uuid",
                user_id,
            )
        finally:
            await conn.close()
        return None if row is None else dict(row)

    async def login(self, email: str, password: str) -> httpx.Response:
        return await self.api.post("/v1/auth/login", json={"email": email, "password": password})


@pytest.fixture(scope="module")
async def rig(run_id: str) -> AsyncIterator[Rig]:
    hasher = PasswordHasher("argon2")
    hash_a, hash_b = await hasher.hash(PASSWORD_A), await hasher.hash(PASSWORD_B)
    async with isolated(run_id, "keys") as s, projecting(s, "users"), serve(s) as live:
        log = EventLog.from_settings(s, timeout_s=10)
        await log.start()
        engine = make_engine(s.sqlalchemy_url, pool_size=1)
        try:
            async with httpx.AsyncClient(base_url=live.url, timeout=10) as api:
                yield Rig(s, log, Reservations(engine), api, hash_a, hash_b)
        finally:
            await engine.dispose()
            await log.close()


def two_accounts(settings: Settings) -> tuple[str, str]:
    """Ids of accounts A and B whose events land on different partitions (placed by key,
    as the producer's partitioner does; the test checks where they landed)."""

    def partition(user_id: str) -> int:
        return int(murmur2(user_id.encode()) & 0x7FFFFFFF) % settings.topic_partitions

    a = new_id_str()
    b = new_id_str()
    while partition(b) == partition(a):
        b = new_id_str()
    return a, b


def phone() -> str:
    return f"+86138{secrets.randbelow(10**8):08d}"


def email() -> str:
    return f"keys-{secrets.token_hex(6)}@example.com"


async def test_a_phone_rebound_before_its_move_is_applied_reaches_both_accounts(rig: Rig) -> None:
    a, b = two_accounts(rig.settings)
    p, p2, email_b = phone(), phone(), email()
    await rig.index.reserve("phone", p, a)
    on_a = await rig.apply(UserRegisteredByPhone(user_id=a, phone=p))
    await rig.index.reserve("email", email_b, b)
    on_b = await rig.apply(UserRegistered(user_id=b, email=email_b, password_hash=rig.hash_b))
    assert on_a != on_b

    # What the commands did, in this order: A moved to P2 and let P go, then B bound P.
    await rig.index.reserve("phone", p2, a)
    await rig.index.release_confirmed("phone", p, a)
    await rig.index.reserve("phone", p, b)
    # B's partition is applied before A's: B takes P while the read model still gives P to A.
    assert await rig.apply(PhoneBound(user_id=b, phone=p)) == on_b
    assert await rig.apply(PhoneBound(user_id=a, phone=p2, previous_phone=p)) == on_a

    assert await rig.dead_letters_of(a, b) == []
    assert await rig.keys_of(a) == {"email": None, "phone": p2, "wechat_openid": None}
    assert await rig.keys_of(b) == {"email": email_b, "phone": p, "wechat_openid": None}
    login = await rig.login(email_b, PASSWORD_B)
    assert login.status_code == 200, login.text
    token = login.json()["access_token"]
    me = await rig.api.get("/v1/users/me", headers={"authorization": f"Bearer {token}"})
    assert me.status_code == 200, me.text
    assert me.json()["user"]["phone"] == p


async def test_a_phone_given_up_is_not_given_back_by_a_projector_behind_the_move(
    rig: Rig,
) -> None:
    """The commands ran ahead of the projector: A registered by phone P, bound P2 and freed
    P. Applying the registration late must not give A back the key of P: until the move
    was applied, A would hold both, a code to P would still prove A's owner, and P could
    not be bound by anyone else."""
    a, p, p2 = new_id_str(), phone(), phone()
    await rig.index.reserve("phone", p, a)
    await rig.index.confirm("phone", p, a, "pos-p")
    await rig.index.reserve("phone", p2, a)
    await rig.index.confirm("phone", p2, a, "pos-p2")
    await rig.index.release_confirmed("phone", p, a)

    await rig.apply(UserRegisteredByPhone(user_id=a, phone=p))
    assert await rig.index.held_by("phone", a) == [p2]
    assert (await rig.keys_of(a) or {}).get("phone") == p  # the read model is where it is
    # Nor does a binding applied late give it back.
    await rig.apply(PhoneBound(user_id=a, phone=p, previous_phone=None))
    assert await rig.index.held_by("phone", a) == [p2]

    await rig.apply(PhoneBound(user_id=a, phone=p2, previous_phone=p))
    assert await rig.index.held_by("phone", a) == [p2]
    assert (await rig.keys_of(a) or {}).get("phone") == p2
    assert await rig.dead_letters_of(a) == []


async def test_a_phone_swept_before_its_event_landed_is_held_again(rig: Rig) -> None:
    """A key the index lost while its event was on the way (swept) is made again when the
    event is applied, for an account that holds no other phone."""
    a, p = new_id_str(), phone()
    await rig.apply(UserRegisteredByPhone(user_id=a, phone=p))
    assert await rig.index.held_by("phone", a) == [p]
    key = await rig.index.get("phone", p)
    assert key is not None
    assert (key.owner_id, key.status) == (a, "confirmed")


@pytest.mark.parametrize("holder", ["applied_first", "applied_last"])
async def test_an_email_on_two_registrations_logs_in_the_index_holder(
    rig: Rig, holder: str
) -> None:
    a, b = two_accounts(rig.settings)
    address = email()
    # A's registration took long to land: its pending key was swept, and B took the
    # address. The log holds both registrations; the index gives the address to B.
    await rig.index.reserve("email", address, b)
    events = [
        UserRegistered(user_id=a, email=address, password_hash=rig.hash_a),
        UserRegistered(user_id=b, email=address, password_hash=rig.hash_b),
    ]
    if holder == "applied_first":
        events.reverse()
    partitions = {await rig.apply(event) for event in events}
    assert len(partitions) == 2

    assert await rig.dead_letters_of(a, b) == []
    assert await rig.keys_of(a) == {"email": address, "phone": None, "wechat_openid": None}
    assert await rig.keys_of(b) == {"email": address, "phone": None, "wechat_openid": None}
    login = await rig.login(address, PASSWORD_B)
    assert login.status_code == 200, login.text
    assert login.json()["user"]["id"] == b
    assert (await rig.login(address, PASSWORD_A)).status_code == 401


@pytest.mark.parametrize("holder", ["applied_first", "applied_last"])
async def test_a_wechat_id_on_two_registrations_makes_both_accounts(rig: Rig, holder: str) -> None:
    a, b = two_accounts(rig.settings)
    openid = f"o-{secrets.token_hex(8)}"
    # As with emails: A's key was swept before its event landed, and B's first login took
    # the open id. WeChat login asks the index, which names B.
    await rig.index.reserve("wechat", openid, b)
    events = [
        UserRegisteredByWeChat(user_id=a, openid=openid),
        UserRegisteredByWeChat(user_id=b, openid=openid),
    ]
    if holder == "applied_first":
        events.reverse()
    partitions = {await rig.apply(event) for event in events}
    assert len(partitions) == 2

    assert await rig.dead_letters_of(a, b) == []
    assert await rig.keys_of(a) == {"email": None, "phone": None, "wechat_openid": openid}
    assert await rig.keys_of(b) == {"email": None, "phone": None, "wechat_openid": openid}
    held = await rig.index.get("wechat", openid)
    assert held is not None
    assert held.owner_id == b
