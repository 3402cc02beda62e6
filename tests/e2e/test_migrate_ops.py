"""``POST /ops/api/migrations/{name}/phase``: closed without the operator token, and clear
4xx answers for a projector with no migration or a body that is not a phase."""

from __future__ import annotations

import httpx

from bloghub.settings import Settings
from tests.e2e.test_ops import operator

PATH = "/ops/api/migrations/articles/phase"


async def test_moving_a_phase_needs_the_operator_token(client: httpx.AsyncClient) -> None:
    moved = await client.post(PATH, json={"phase": 2})
    assert moved.status_code == 401
    assert moved.json()["error"]["code"]


async def test_a_projector_with_no_migration_is_404(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    moved = await client.post(PATH, json={"phase": 2}, headers=operator(settings))
    assert moved.status_code == 404
    assert "not being migrated" in moved.json()["error"]["message"]
    assert "`bloghub migrate start articles`" in moved.json()["error"]["message"]
    # No hint at a start that is refused, nor at a projector that does not exist.
    pinned = await client.post(
        "/ops/api/migrations/users/phase", json={"phase": 2}, headers=operator(settings)
    )
    assert pinned.status_code == 404
    said = pinned.json()["error"]["message"]
    assert "cannot move to another database" in said
    assert "migrate start" not in said
    unknown = await client.post(
        "/ops/api/migrations/nosuch/phase", json={"phase": 2}, headers=operator(settings)
    )
    assert unknown.status_code == 404
    assert "unknown projector 'nosuch'" in unknown.json()["error"]["message"]


async def test_a_phase_outside_one_to_four_is_422(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    for body in ({"phase": 5}, {"phase": "3"}, {"phase": 2, "more": 1}, {}):
        moved = await client.post(PATH, json=body, headers=operator(settings))
        assert moved.status_code == 422, body
