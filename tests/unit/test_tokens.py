from __future__ import annotations

import base64
import time

import jwt
import orjson
import pytest

from bloghub.auth.tokens import TokenPolicy, TokenService, exact_ua_hash, ua_hash
from bloghub.errors import Unauthorized

UA = "Mozilla/5.0 test"


def service(
    access_ttl: int = 1800, *, lifetime: int = 30 * 86400, audience: str = "bloghub-api"
) -> TokenService:
    return TokenService(
        access_secret="a" * 40,
        refresh_secret="r" * 40,
        policy=TokenPolicy(
            issuer="bloghub",
            audience=audience,
            access_ttl_s=access_ttl,
            refresh_ttl_s=7 * 86400,
            session_lifetime_s=lifetime,
        ),
    )


def test_pair_verifies_for_its_own_kind_and_user_agent() -> None:
    tokens = service()
    pair = tokens.issue("u1", UA)
    assert tokens.verify("access", pair.access, UA).user_id == "u1"
    assert tokens.verify("refresh", pair.refresh, UA).session_id == pair.session_id
    with pytest.raises(Unauthorized):
        tokens.verify("access", pair.refresh, UA)
    with pytest.raises(Unauthorized):
        tokens.verify("refresh", pair.access, UA)
    with pytest.raises(Unauthorized):
        tokens.verify("access", pair.access, "curl/8")


CHROME = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/{v} Safari/537.36"
)
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:{v}) Gecko/20100101 Firefox/{v}"


def test_a_browser_that_updates_itself_keeps_its_tokens_and_another_does_not() -> None:
    tokens = service()
    pair = tokens.issue("u1", CHROME.format(v="120.0.0.0"))
    assert tokens.verify("access", pair.access, CHROME.format(v="121.0.6167.85")).user_id == "u1"
    assert tokens.verify("refresh", pair.refresh, CHROME.format(v="131.0.0.0")).user_id == "u1"
    for other in (FIREFOX.format(v="121.0"), "python-requests/2.31", ""):
        with pytest.raises(Unauthorized):
            tokens.verify("access", pair.access, other)


def test_tokens_bound_to_the_whole_user_agent_before_still_work_until_they_expire() -> None:
    tokens = service()
    claims = _claims() | {"ua": exact_ua_hash(UA), "typ": "access"}
    old = jwt.encode(claims, "a" * 40, algorithm="HS256")
    assert tokens.verify("access", old, UA).user_id == "u1"
    with pytest.raises(Unauthorized):
        tokens.verify("access", old, "curl/8")


def _forge(header: dict[str, str], claims: dict[str, object], signature: bytes = b"") -> str:
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    return ".".join([b64(orjson.dumps(header)), b64(orjson.dumps(claims)), b64(signature)])


def _claims() -> dict[str, object]:
    now = int(time.time())
    return {
        "sub": "u1",
        "sid": "s",
        "ua": ua_hash(UA),
        "iat": now,
        "exp": now + 60,
        "jti": "j",
        "typ": "access",
        "iss": "bloghub",
        "aud": "bloghub-api",
        "auth_time": now,
    }


def test_alg_none_is_refused() -> None:
    with pytest.raises(Unauthorized):
        service().verify("access", _forge({"alg": "none", "typ": "JWT"}, _claims()), UA)


def test_other_algorithms_and_wrong_keys_are_refused() -> None:
    hs512 = jwt.encode(_claims(), "a" * 64, algorithm="HS512")
    wrong_key = jwt.encode(_claims(), "z" * 40, algorithm="HS256")
    for token in (hs512, wrong_key):
        with pytest.raises(Unauthorized):
            service().verify("access", token, UA)


def test_tampered_and_expired_tokens_are_refused() -> None:
    tokens = service()
    good = tokens.issue("u1", UA).access
    head, body, sig = good.split(".")
    claims = orjson.loads(base64.urlsafe_b64decode(body + "=="))
    claims["sub"] = "admin"
    forged_body = base64.urlsafe_b64encode(orjson.dumps(claims)).rstrip(b"=").decode()
    with pytest.raises(Unauthorized):
        tokens.verify("access", f"{head}.{forged_body}.{sig}", UA)
    expired = jwt.encode({**_claims(), "exp": int(time.time()) - 5}, "a" * 40, algorithm="HS256")
    with pytest.raises(Unauthorized):
        tokens.verify("access", expired, UA)


def test_tokens_name_their_issuer_and_audience_and_others_are_refused() -> None:
    pair = service().issue("u1", UA)
    claims = orjson.loads(base64.urlsafe_b64decode(pair.access.split(".")[1] + "=="))
    assert (claims["iss"], claims["aud"]) == ("bloghub", "bloghub-api")
    with pytest.raises(Unauthorized):
        service(audience="another-service").verify("access", pair.access, UA)
    for changed in ({"iss": "someone-else"}, {"aud": "another-service"}):
        token = jwt.encode({**_claims(), **changed}, "a" * 40, algorithm="HS256")
        with pytest.raises(Unauthorized):
            service().verify("access", token, UA)
    unnamed = {k: v for k, v in _claims().items() if k not in ("iss", "aud")}
    with pytest.raises(Unauthorized):
        service().verify("access", jwt.encode(unnamed, "a" * 40, algorithm="HS256"), UA)


def test_refreshed_tokens_never_outlive_the_session() -> None:
    tokens = service(lifetime=3600)
    long_ago = int(time.time()) - 3590  # the session has ten seconds left
    pair = tokens.issue("u1", UA, session_id="s1", started_at=long_ago)
    for kind, token in (("access", pair.access), ("refresh", pair.refresh)):
        claims = tokens.verify(kind, token, UA)
        assert claims.expires_at <= long_ago + 3600
        assert claims.session_started_at == long_ago
    assert pair.access_expires_in <= 10
    assert pair.session_ends_at == long_ago + 3600


def test_non_ascii_tokens_are_refused_not_crashed_on() -> None:
    for token in ("é.é.é", "\u00ff" * 40, "a.b\udc80.c"):
        with pytest.raises(Unauthorized):
            service().verify("access", token, UA)


def test_a_remembered_access_token_is_refused_once_it_expires() -> None:
    tokens = service(access_ttl=1)
    pair = tokens.issue("u1", UA)
    claims = tokens.verify("access", pair.access, UA)
    assert tokens.verify("access", pair.access, UA) == claims  # the remembered claims
    with pytest.raises(Unauthorized):
        tokens.verify("access", pair.access, "another agent")  # remembered per User-Agent
    time.sleep(max(0.0, claims.expires_at - time.time()) + 0.05)  # the token's second is up
    with pytest.raises(Unauthorized):
        tokens.verify("access", pair.access, UA)


def _signed(kind: str, changed: dict[str, object]) -> str:
    claims = _claims() | {"typ": kind, "iat": NOW, "auth_time": NOW} | changed
    return jwt.encode(claims, {"access": "a" * 40, "refresh": "r" * 40}[kind], algorithm="HS256")


NOW = int(time.time())
# Each claim as what it is used for: ids and the binding are the session store's keys and
# comparisons, times are whole seconds the session's window and end are counted in.
WRONG_CLAIMS: dict[str, dict[str, object]] = {
    "sub-empty": {"sub": ""},
    "sub-number": {"sub": 5},
    "sid-empty": {"sid": ""},
    "sid-number": {"sid": 5},
    "sid-list": {"sid": ["x"]},
    # What no store can take as a key: a lone surrogate, a control character, a long text.
    "sub-surrogate": {"sub": "u1\ud800"},
    "sid-surrogate": {"sid": "\udfff"},
    "jti-surrogate": {"jti": "j\ud800"},
    "sid-control": {"sid": "s\x00"},
    "sub-long": {"sub": "u" * 65},
    "jti-empty": {"jti": ""},
    "jti-number": {"jti": 7},
    "typ-list": {"typ": ["access"]},
    "ua-list": {"ua": [ua_hash(UA)]},
    "iat-text": {"iat": str(NOW)},
    "iat-bool": {"iat": True},
    "iat-fraction": {"iat": NOW - 0.5},
    "exp-text": {"exp": str(NOW + 600)},
    "exp-fraction": {"exp": NOW + 600.5},
    "exp-past-any-session": {"exp": NOW + 11 * 366 * 86400},
    "exp-huge": {"exp": 10**400},
    "auth_time-text": {"auth_time": "x"},
    "auth_time-digits": {"auth_time": str(NOW)},
    "auth_time-bool": {"auth_time": True},
    "auth_time-fraction": {"auth_time": NOW - 0.5},
    "auth_time-after-iat": {"auth_time": NOW + 1},
    "auth_time-far-ahead": {"auth_time": NOW + 10 * 365 * 86400},
}


@pytest.mark.parametrize("kind", ["access", "refresh"])
@pytest.mark.parametrize("changed", WRONG_CLAIMS.values(), ids=WRONG_CLAIMS.keys())
def test_signed_tokens_with_claims_of_the_wrong_type_or_sense_are_refused(
    kind: str, changed: dict[str, object]
) -> None:
    tokens = service()
    assert tokens.verify(kind, _signed(kind, {}), UA).user_id == "u1"
    with pytest.raises(Unauthorized):
        tokens.verify(kind, _signed(kind, changed), UA)


@pytest.mark.parametrize("kind", ["access", "refresh"])
def test_a_lifetime_lowered_since_a_token_was_issued_does_not_refuse_it(kind: str) -> None:
    """The session ends when the lowered lifetime says: a refresh then cuts its pair at that
    end. Until then its tokens, issued to last longer, are taken."""
    issued = _signed(kind, {"exp": NOW + 7 * 86400})
    assert service(lifetime=86400).verify(kind, issued, UA).user_id == "u1"
