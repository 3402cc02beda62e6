"""A replay of the users projector rebuilds an erased person's sessions as they ended live:
one logged out stays logged out at its time, one live at the erasure ends at the erasure.
The replay knows of the erasure from its first batch (the key is shredded), and once took
every session of the person for a login that raced the erasure (born ended): `replay
verify` then found every erased account's sessions different."""

from __future__ import annotations

import asyncio

import httpx

from bloghub.ops.replay import ReplayPlan, building_stores, close_stores, replay
from bloghub.ops.verify import verify_generations
from tests.conftest import isolated, projecting, serve
from tests.e2e.test_accounts import PASSWORD, signup_body
from tests.support import once_caught_up


async def test_an_erased_person_s_sessions_replay_as_they_ended(run_id: str) -> None:
    async with (
        isolated(run_id, "erasedsess") as s,
        projecting(s, "users"),
        serve(s) as live,
        httpx.AsyncClient(base_url=live.url, headers={"user-agent": "t/1"}, timeout=10) as c,
    ):
        email = f"gone-{run_id}@example.com"
        assert (await c.post("/v1/users", json=signup_body(email))).status_code == 201
        credentials = {"email": email, "password": PASSWORD}

        async def signed_in() -> dict[str, str]:
            answer = await once_caught_up(lambda: c.post("/v1/auth/login", json=credentials))
            assert answer.status_code == 200, answer.text
            return {"authorization": f"Bearer {answer.json()['access_token']}"}

        first = await signed_in()
        assert (await c.post("/v1/auth/logout", headers=first)).status_code == 204
        second = await signed_in()
        erased = await once_caught_up(
            lambda: c.request("DELETE", "/v1/users/me", json={"password": PASSWORD}, headers=second)
        )
        assert erased.status_code == 204, erased.text
        # Applied live: the next login waits for the erasure and is refused.
        refused = await once_caught_up(lambda: c.post("/v1/auth/login", json=credentials))
        assert refused.status_code == 401, refused.text

        built = await replay(
            s, ReplayPlan(names=["users"], swap=False), show=lambda _: None, stop=asyncio.Event()
        )
        assert [p.state for p in built] == ["built"]
        stores = building_stores(s, pool_size=1)
        try:
            assert await verify_generations(stores, "users", 1, 2) == []
        finally:
            await close_stores(stores)
