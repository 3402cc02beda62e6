"""WeChat QR login: the authorisation URL (with its state in a signed cookie) and the
callback that finds or makes the account of the WeChat open id."""

from __future__ import annotations

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

from bloghub.api.auth import user_agent
from bloghub.api.http import JSON, Endpoint, container
from bloghub.api.v1.schemas import TokensOut, UserOut
from bloghub.api.v1.sessions import TOKEN_HEADERS, caller, tokens_response
from bloghub.auth.limiter import redis_translated
from bloghub.auth.wechat import STATE_COOKIE, new_state
from bloghub.commands.sessions import start_session
from bloghub.commands.users import account_for, login_epoch
from bloghub.errors import InvalidInput, NotFound, Unauthorized
from bloghub.events.users import UserRegisteredByWeChat
from bloghub.settings import Mode

COOKIE_PATH = "/v1/auth/wechat"


def _enabled(request: Request) -> None:
    if container(request).wechat is None:
        raise NotFound("WeChat login is not configured here")


async def authurl(request: Request) -> Response:
    _enabled(request)
    c = container(request)
    assert c.wechat is not None
    state = new_state()
    response = JSON({"url": c.wechat.client.auth_url(state), "state": state})
    response.set_cookie(
        STATE_COOKIE,
        c.wechat.cookie.seal(state),
        max_age=c.wechat.cookie.ttl_s,
        path=COOKIE_PATH,
        httponly=True,
        samesite="lax",
        secure=c.settings.mode is Mode.PRODUCTION,
    )
    return response


class AuthUrlOut(BaseModel):
    url: str  # WeChat's QR login page, to open or show
    state: str  # what WeChat hands back to the callback (also kept in a signed cookie)


async def callback(request: Request) -> Response:
    _enabled(request)
    c = container(request)
    assert c.wechat is not None
    repeated = [n for n in ("code", "state") if len(request.query_params.getlist(n)) > 1]
    if repeated:  # as every endpoint's own parameters: which one was meant?
        raise InvalidInput(
            "give each parameter once", fields=dict.fromkeys(repeated, "is given more than once")
        )
    state = request.query_params.get("state")
    c.wechat.cookie.open(request.cookies.get(STATE_COOKIE), state)
    identity = await c.wechat.client.exchange(request.query_params.get("code", ""))
    # A state signs in once: a callback replayed with its cookie (a shared browser's
    # history, say) starts no second session, whatever WeChat does with a code used twice.
    # Spent only once WeChat has answered, so a callback that met a silent WeChat may retry.
    async with redis_translated():
        spent = await c.redis.set(
            f"{c.settings.prefix}:wechat:state:{state}", "1", nx=True, ex=c.wechat.cookie.ttl_s
        )
    if not spent:
        raise Unauthorized("this WeChat login was used already; start the login again")
    user_id = await account_for(
        c.commands,
        caller(request),
        kind="wechat",
        value=identity.openid,
        new_account=lambda uid: UserRegisteredByWeChat(
            user_id=uid, openid=identity.openid, unionid=identity.unionid
        ),
    )
    issued = await start_session(
        c.commands,
        caller(request),
        user_id=user_id,
        method="wechat",
        user_agent=user_agent(request),
        credentials_epoch=await login_epoch(c.commands, user_id),
    )
    response = await tokens_response(request, issued, UserOut(id=user_id))
    response.delete_cookie(STATE_COOKIE, path=COOKIE_PATH)
    return response


ENDPOINTS = [
    Endpoint(
        "GET",
        "/v1/auth/wechat/authurl",
        authurl,
        "The WeChat QR login URL; its state is kept in a signed cookie",
        "accounts",
        response=AuthUrlOut,
        errors=(404,),
    ),
    Endpoint(
        "GET",
        "/v1/auth/wechat/callback",
        callback,
        "WeChat redirects here: the state must match the cookie; returns a token pair",
        "accounts",
        response=TokensOut,
        errors=(401, 404, 422, 503),
        headers=TOKEN_HEADERS,
        query={"code": "the code WeChat gives", "state": "the state of the auth URL"},
        query_required=("code", "state"),
    ),
]
