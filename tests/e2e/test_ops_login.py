"""The operator's door holds against junk and against guessing: any malformed cookie or
token is 401 (never 500), and login attempts are rate limited per client address."""

from __future__ import annotations

import httpx
import pytest
from structlog.testing import capture_logs

from bloghub.settings import Settings
from tests.conftest import isolated, serve

# Raw header bytes: what a client may send, whatever the cookie or token grammar says.
BAD_COOKIES = {
    "empty": b"bloghub_ops=",
    "dot": b"bloghub_ops=.",
    "no-expiry": b"bloghub_ops=not-a-cookie",
    "superscript-digits": b"bloghub_ops=\xb2\xb3." + b"a" * 64,  # "²³": isdigit() says yes
    "huge-expiry": b"bloghub_ops=" + b"9" * 5000 + b".ab",  # beyond int()'s digit limit
    "utf8-signature": b"bloghub_ops=99999999999." + "é".encode() * 64,
    "latin1-signature": b"bloghub_ops=99999999999.\xff\xfe",
    "cjk": "bloghub_ops=你好.你".encode(),
}
BAD_BEARERS = {
    "utf8": "Bearer été".encode(),
    "latin1": b"Bearer \xff\xfe\xfd",
    "long": b"Bearer " + b"x" * 6000,
}


@pytest.mark.parametrize("cookie", BAD_COOKIES.values(), ids=BAD_COOKIES.keys())
@pytest.mark.parametrize("path", ["/ops", "/ops/api/lag"])
async def test_a_malformed_operator_cookie_is_401(
    client: httpx.AsyncClient, path: str, cookie: bytes
) -> None:
    answer = await client.get(path, headers={b"cookie": cookie})
    assert answer.status_code == 401, answer.text


@pytest.mark.parametrize("authorization", BAD_BEARERS.values(), ids=BAD_BEARERS.keys())
@pytest.mark.parametrize("path", ["/ops/api/lag", "/v1/users/me"])
async def test_a_malformed_bearer_token_is_401(
    client: httpx.AsyncClient, path: str, authorization: bytes
) -> None:
    answer = await client.get(path, headers={b"authorization": authorization})
    assert answer.status_code == 401, answer.text
    assert answer.json()["error"]["code"] == "unauthorized"


async def test_a_non_ascii_operator_token_at_login_is_401(client: httpx.AsyncClient) -> None:
    for token in ("jeton-opérateur", "令牌" * 20, "\U0001f511"):
        answer = await client.post("/ops/session", json={"token": token})
        assert answer.status_code == 401, answer.text


async def test_operator_logins_are_rate_limited_per_address(run_id: str) -> None:
    async with (
        isolated(run_id, "ops_login", ops_login_per_minute=3) as own,
        serve(own) as live,
        httpx.AsyncClient(base_url=live.url) as client,
    ):
        for _ in range(3):
            guess = await client.post("/ops/session", json={"token": "guess"})
            assert guess.status_code == 401
        # Past the limit even the right token waits: guessing gains nothing by going fast.
        right = await client.post("/ops/session", json={"token": _token(own)})
        assert right.status_code == 429
        assert int(right.headers["retry-after"]) >= 1
        assert "set-cookie" not in right.headers


async def test_wrong_operator_tokens_are_limited_per_address_and_logged(run_id: str) -> None:
    """The Bearer door and the cookie door count wrong tokens like the login does: past the
    limit even the right token waits, and each wrong one is in the security log."""
    async with (
        isolated(run_id, "ops_token", ops_token_failures_per_minute=3) as own,
        serve(own) as live,
        httpx.AsyncClient(base_url=live.url) as client,
    ):
        right = {"authorization": f"Bearer {_token(own)}"}
        assert (await client.get("/ops/api/lag", headers=right)).status_code == 200
        other = {"x-forwarded-for": "198.51.100.40"}
        with capture_logs() as logs:
            for n in range(3):
                wrong = await client.get(
                    "/ops/api/lag", headers={"authorization": f"Bearer guess-{n}", **other}
                )
                assert wrong.status_code == 401
        failed = [e for e in logs if e["event"] == "ops.auth_failed"]
        assert len(failed) == 3
        assert all(e["ip"] == "198.51.100.40" for e in failed)
        assert _token(own) not in repr(logs)
        locked = await client.get("/ops/api/lag", headers={**right, **other})
        assert locked.status_code == 429, locked.text
        assert int(locked.headers["retry-after"]) >= 1
        cookie = await client.get("/ops/api/lag", headers={"cookie": "bloghub_ops=1.ab", **other})
        assert cookie.status_code == 429
        # The dashboard's page says so as a page: a browser opened it.
        page = await client.get("/ops", headers={**right, **other})
        assert page.status_code == 429, page.text
        assert page.headers["content-type"].startswith("text/html")
        assert int(page.headers["retry-after"]) >= 1
        assert "Too many failed operator token tries; try again in" in page.text
        # The sign-in is the same budget (it took the right token from a locked address).
        signed = await client.post("/ops/session", json={"token": _token(own)}, headers=other)
        assert signed.status_code == 429, signed.text
        assert "set-cookie" not in signed.headers
        # Another address, and the right token used all along, are not held up.
        assert (await client.get("/ops/api/lag", headers=right)).status_code == 200


async def test_wrong_sign_ins_lock_the_bearer_door_too(run_id: str) -> None:
    """Wrong tokens sent to the sign-in count with the doors' (they were counted apart:
    an address had twice the guesses by trying both)."""
    async with (
        isolated(run_id, "ops_both", ops_token_failures_per_minute=3) as own,
        serve(own) as live,
        httpx.AsyncClient(base_url=live.url) as client,
    ):
        other = {"x-forwarded-for": "198.51.100.41"}
        for n in range(3):
            guess = await client.post("/ops/session", json={"token": f"guess-{n}"}, headers=other)
            assert guess.status_code == 401, guess.text
        right = {"authorization": f"Bearer {_token(own)}"}
        locked = await client.get("/ops/api/lag", headers={**right, **other})
        assert locked.status_code == 429, locked.text
        assert (await client.get("/ops/api/lag", headers=right)).status_code == 200


def _token(settings: Settings) -> str:
    return settings.operator_token.get_secret_value()
