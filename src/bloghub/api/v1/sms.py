"""SMS codes over HTTP: ask for a code, log in with it (the first login makes the account),
bind a phone, reset a password.

Every code asked for or tried counts against the caller's address (``SmsGuard``); a
refused request stores no code. Binding a phone also needs the account owner's proof (the
current password, or a code sent to the phone already bound): a stolen access token alone
must not be enough to take over the account through SMS login."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Literal

import structlog
from pydantic import AfterValidator, BaseModel, Field
from starlette.requests import Request
from starlette.responses import Response

from bloghub.api.auth import require_caller, user_agent, user_queries
from bloghub.api.consistent import credentials_current, credentials_written, mark_stale
from bloghub.api.http import JSON, Endpoint, container, parse_body
from bloghub.api.queries import UserRow
from bloghub.api.v1.notifications import unread_count
from bloghub.api.v1.proof import BIND_A_PHONE, check_current_password
from bloghub.api.v1.schemas import (
    Input,
    NewPassword,
    Password,
    ProfileEnvelope,
    SmsCode,
    TokensOut,
    UserOut,
)
from bloghub.api.v1.sessions import TOKEN_HEADERS, caller, client_ip, tokens_response
from bloghub.api.v1.users import account_of, profile_out
from bloghub.auth.sms.phones import _CN_MOBILE as CN_MOBILE
from bloghub.auth.sms.phones import _E164 as E164
from bloghub.auth.sms.phones import mask_phone, normalise_phone
from bloghub.auth.sms.sender import Delivery
from bloghub.auth.tokens import Claims
from bloghub.commands.sessions import start_session
from bloghub.commands.users import (
    NO_PROOF_CHANGE,
    account_for,
    bind_phone,
    change_password,
    login_epoch,
)
from bloghub.errors import Forbidden, RateLimited, Unauthorized
from bloghub.events.users import UserRegisteredByPhone

if TYPE_CHECKING:
    from bloghub.bootstrap import Container

log = structlog.get_logger(__name__)

# The forms ``normalise_phone`` takes, spelled with its own patterns (it also forgives
# surrounding whitespace, which the document need not promise).
PHONE_PATTERN = f"^(?:{E164.pattern}|{CN_MOBILE.pattern})$"
Phone = Annotated[
    str,
    Field(min_length=3, max_length=32, json_schema_extra={"pattern": PHONE_PATTERN}),
    AfterValidator(normalise_phone),
]


def served_phone_pattern(countries: Sequence[str]) -> str:
    """``PHONE_PATTERN`` narrowed to the countries codes are sent to, as the document
    states it for a deployment: a number elsewhere is refused, so it is not schema-valid.
    E.164 numbers have 8 to 15 digits, the calling code among them."""
    # (For China the national number does not start with the trunk 0: phones.py.)
    forms = [
        r"\+86[1-9][0-9]{5,12}"
        if code == "86"
        else rf"\+{code}[0-9]{{{max(1, 8 - len(code))},{15 - len(code)}}}"
        for code in countries
    ]
    if "86" in countries:
        forms.append(CN_MOBILE.pattern)
    return f"^(?:{'|'.join(forms)})$"


Code = SmsCode
# "owner": a code to the phone already bound, proving the account's owner asks;
# "erase": a code to the bound phone, proving the owner asks to be erased.
Purpose = Literal["login", "bind", "reset", "owner", "erase"]
WRONG_CODE = "the code is wrong or has expired (3 wrong tries end a code: then ask for a new one)"
# Codes for these go only to the phone of the signed-in account that asks (a reset code
# goes only to a phone some account holds, decided off the request path).
OWN_PHONE: frozenset[Purpose] = frozenset({"owner", "erase"})


class CodeRequest(Input):
    phone: Phone
    purpose: Purpose = "login"


class PhoneCode(Input):
    phone: Phone
    code: Code


class PhoneBinding(Input):
    phone: Phone
    code: Code
    # The owner's proof: one of these (an account with neither credential has none to give).
    current_password: Password | None = None
    current_phone_code: Code | None = None


class PasswordReset(Input):
    phone: Phone
    code: Code
    new_password: NewPassword


class CodeSent(BaseModel):
    status: str = Field(description="sent, or queued (202) for a retry with another gateway")


async def send_code(request: Request) -> Response:
    body = await parse_body(request, CodeRequest)
    c = container(request)
    c.sms.guard.check_country(body.phone)
    if body.purpose in OWN_PHONE:
        claims = await require_caller(request)
        await _needs_a_code(request, claims.user_id, body.purpose)
        if await _owner(request, body.phone) != claims.user_id:
            raise Forbidden(
                "this code goes only to your account's own phone",
                fields={"phone": "not your account's phone"},
            )
    await c.sms.guard.sending(client_ip(request))
    if body.purpose == "reset":
        # Whether the phone has an account shows neither in the answer nor in its time: the
        # answer leaves at once, and the code is made and sent (to a held phone only, and
        # counted against it only then) off the request path.
        ip = client_ip(request)
        c.commands.after_append.start("sms_reset_code", lambda: _send_reset(c, body.phone, ip))
        return JSON({"status": Delivery.SENT.value})
    code = await c.sms.codes.issue(body.purpose, body.phone)
    # A code that dies in the outbox is not worth delivering late.
    delivery = await c.sms.sender.send(body.phone, _text(c, code), valid_for_s=c.sms.codes.ttl_s)
    return JSON({"status": delivery.value}, status_code=202 if delivery is Delivery.QUEUED else 200)


def _text(c: Container, code: str) -> str:
    minutes = max(1, c.sms.codes.ttl_s // 60)
    return f"Your bloghub code is {code}. It is valid for {minutes} minutes."


async def _send_reset(c: Container, phone: str, ip: str) -> None:
    held = await c.commands.reservations.get("phone", phone)
    if held is None:
        return
    # Asked from where the owner signs in, a reset is the owner's own (auth/sms/codes.py).
    purpose = "reset_known" if await c.lockout.knows(held.owner_id, ip) else "reset"
    try:
        code = await c.sms.codes.issue(purpose, phone)
    except RateLimited as refused:
        log.info("sms.reset_code_refused", phone=mask_phone(phone), reason=refused.message)
        return
    await c.sms.sender.send(phone, _text(c, code), valid_for_s=c.sms.codes.ttl_s)


async def _needs_a_code(request: Request, user_id: str, purpose: Purpose) -> None:
    """An owner's code is asked for an account that can use one: one with no phone is told
    to bind one; an erasure code is no proof for an account with a password (it is erased
    with the password), so none is sent. Decided on the account as of its last change of
    its proofs (``credentials_current``)."""
    await credentials_current(request, user_id)
    row = await user_queries(request).by_id(user_id)
    if row is None:
        return  # not in the read model yet: the phone check below answers
    # First what no phone would change: binding one to get an erasure code for an account
    # with a password would end in this refusal anyway.
    if purpose == "erase" and row.password_hash is not None:
        raise Forbidden(
            "this account has a password: erase it with the password (no code is needed)",
            fields={"purpose": "not for an account with a password"},
        )
    if row.phone is None:
        raise Forbidden(
            f"this account has no phone to send a code to: {BIND_A_PHONE}",
            fields={"phone": "no phone bound to this account"},
        )


async def _owner(request: Request, phone: str) -> str | None:
    held = await container(request).commands.reservations.get("phone", phone)
    return held.owner_id if held is not None else None


# A code to check: its purpose, the phone it went to, the code given, and the field it
# came in.
CodeProof = tuple[Purpose, str, str, str]


async def _spend(
    request: Request, purpose: Purpose, phone: str, code: str, field: str = "code"
) -> None:
    await _spend_all(request, [(purpose, phone, code, field)])


async def _spend_all(request: Request, proofs: list[CodeProof]) -> None:
    """Check the codes together: all are spent if all are right, none otherwise (each
    wrong one named, and counted against its tries)."""
    sms = container(request).sms
    for _, phone, _, _ in proofs:
        # No code is sent there, so none is right: refused as input, and not counted.
        sms.guard.check_country(phone)
    for _ in proofs:
        await sms.guard.checking(client_ip(request))
    oks = await sms.codes.check_all([(purpose, phone, code) for purpose, phone, code, _ in proofs])
    wrong = {
        field: "wrong or expired"
        for (_, _, _, field), ok in zip(proofs, oks, strict=True)
        if not ok
    }
    if wrong:
        raise Unauthorized(WRONG_CODE, fields=wrong)


async def _spend_reset(request: Request, owner: str | None, phone: str, code: str) -> None:
    """A reset code: from an address the owner signs in from, the code asked from one
    (``_send_reset``) or else one asked from anywhere; from any other, the latter only."""
    c = container(request)
    ip = client_ip(request)
    c.sms.guard.check_country(phone)
    await c.sms.guard.checking(ip)
    own = owner is not None and await c.lockout.knows(owner, ip)
    for purpose in ("reset_known", "reset") if own else ("reset",):
        if await c.sms.codes.check(purpose, phone, code):
            return
    raise Unauthorized(WRONG_CODE, fields={"code": "wrong or expired"})


async def sms_login(request: Request) -> Response:
    body = await parse_body(request, PhoneCode)
    await _spend(request, "login", body.phone, body.code)
    c = container(request)
    user_id = await account_for(
        c.commands,
        caller(request),
        kind="phone",
        value=body.phone,
        new_account=lambda uid: UserRegisteredByPhone(user_id=uid, phone=body.phone),
    )
    issued = await start_session(
        c.commands,
        caller(request),
        user_id=user_id,
        method="sms",
        user_agent=user_agent(request),
        credentials_epoch=await login_epoch(c.commands, user_id),
    )
    await c.lockout.know(user_id, client_ip(request))
    return await tokens_response(request, issued, UserOut(id=user_id))


async def bind(request: Request) -> Response:
    claims = await require_caller(request)
    body = await parse_body(request, PhoneBinding)
    # As a phone the document's pattern refuses: before any proof is checked or counted.
    container(request).sms.guard.check_country(body.phone)
    row = await account_of(request, claims.user_id, deciding=True)
    owner_code = await _prove_owner(request, claims, row, body)
    await _spend_all(request, [*owner_code, ("bind", body.phone, body.code, "code")])
    # Read before the write (once it is recorded, nothing may turn its answer into an
    # error): the answer is the profile, as GET /v1/users/me gives it.
    unread = await unread_count(request, claims.user_id)
    by_password = body.current_password is not None and row.password_hash is not None
    position = await bind_phone(
        container(request).commands,
        caller(request),
        user_id=claims.user_id,
        phone=body.phone,
        # A password proves the owner whatever the phone; a code to the phone, or no proof
        # at all (no password, no phone), only while the account's phone is what it was.
        proven_with=NO_PROOF_CHANGE if by_password else row.phone,
    )
    changed = {"phone": body.phone, "unread_notifications": unread}
    out = ProfileEnvelope(user=profile_out(row).model_copy(update=changed))
    response = mark_stale(JSON(out.model_dump(mode="json")), request.state.stale)
    # A change of the phone its codes prove the owner with: what checks them waits for it.
    return await credentials_written(request, response, position, claims.user_id, seal=False)


async def _prove_owner(
    request: Request, claims: Claims, row: UserRow, body: PhoneBinding
) -> list[CodeProof]:
    """The caller is the account's owner, not only the holder of one of its tokens: the
    password is checked here; a code to the bound phone is returned, to be checked with
    the new phone's (neither spent unless both are right)."""
    if body.current_password is not None and row.password_hash is not None:
        await check_current_password(
            request, claims, row, body.current_password, purpose="phone_binding"
        )
    elif body.current_phone_code is not None and row.phone is not None:
        return [("owner", row.phone, body.current_phone_code, "current_phone_code")]
    elif row.password_hash is not None or row.phone is not None:
        wanted = {"current_password": "required"} if row.password_hash is not None else {}
        if row.phone is not None:
            wanted["current_phone_code"] = "required (a code sent to the bound phone)"
        raise Unauthorized(
            "prove it is you: the current password or phone is needed", fields=wanted
        )
    # else: an account made by WeChat login has no password and no phone to prove with.
    return []


async def reset_password(request: Request) -> Response:
    body = await parse_body(request, PasswordReset)
    owner = await _owner(request, body.phone)
    await _spend_reset(request, owner, body.phone, body.code)
    if owner is None:
        raise Unauthorized(WRONG_CODE, fields={"code": "wrong or expired"})
    position = await change_password(
        container(request).commands,
        caller(request),
        user_id=owner,
        new_password=body.new_password,
        via="sms_reset",
        keep_session_id=None,
    )
    return await credentials_written(request, Response(status_code=204), position, owner)


ENDPOINTS = [
    Endpoint(
        "POST",
        "/v1/auth/sms/code",
        send_code,
        "Send a 6-digit code: login (to any phone; the first login of a phone makes its "
        "account), bind (to the phone to be bound), reset (answered at once, sent only to "
        "a phone an account holds), owner or erase (signed in, to the account's own "
        "phone, proving the owner); 202 when queued for a retry",
        "accounts",
        body=CodeRequest,
        response=CodeSent,
        also=(202,),
        errors=(400, 401, 403, 415, 422, 429),
        headers={"Retry-After": "seconds until another code may be asked for (429)"},
    ),
    Endpoint(
        "POST",
        "/v1/auth/sms/login",
        sms_login,
        "Log in with an SMS code; the first login of a phone makes the account",
        "accounts",
        body=PhoneCode,
        response=TokensOut,
        errors=(400, 401, 415, 422, 429),
        headers=TOKEN_HEADERS,
    ),
    Endpoint(
        "POST",
        "/v1/users/me/phone",
        bind,
        "Bind or change the phone with a code sent to it, proving the owner with the "
        "current password or a code sent to the phone already bound",
        "accounts",
        body=PhoneBinding,
        response=ProfileEnvelope,
        auth=True,
        errors=(400, 401, 409, 415, 422, 429),
    ),
    Endpoint(
        "POST",
        "/v1/auth/password/reset",
        reset_password,
        "Set a new password with an SMS code sent to the bound phone; ends every session",
        "accounts",
        body=PasswordReset,
        status=204,
        # 409: another change of the account held its turn longer than the reset waits.
        errors=(400, 401, 409, 415, 422, 429),
    ),
]
