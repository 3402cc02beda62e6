"""Events of the users family."""

from __future__ import annotations

from datetime import date
from typing import ClassVar, Literal

from bloghub.events.base import Event, registry
from bloghub.events.topics import Family


class UserEvent(Event):
    FAMILY: ClassVar[Family] = Family.USERS
    AGGREGATE: ClassVar[str] = "user_id"

    user_id: str


@registry.register
class UserRegistered(UserEvent):
    TYPE: ClassVar[str] = "user.registered"

    email: str
    password_hash: str


@registry.register
class UserRegisteredByPhone(UserEvent):
    """An account made by the first SMS-code login of a phone."""

    TYPE: ClassVar[str] = "user.registered_by_phone"

    phone: str


@registry.register
class UserRegisteredByWeChat(UserEvent):
    """An account made by the first WeChat QR login of an open id."""

    TYPE: ClassVar[str] = "user.registered_by_wechat"

    openid: str
    unionid: str | None = None


@registry.register
class PasswordChanged(UserEvent):
    TYPE: ClassVar[str] = "user.password_changed"

    password_hash: str
    via: Literal["password", "sms_reset"]
    keep_session_id: str | None = None  # every other session of the user ends


@registry.register
class ProfileUpdated(UserEvent):
    """Only the fields named in ``changed`` were set (a field may be set to null)."""

    TYPE: ClassVar[str] = "user.profile_updated"

    changed: list[Literal["nickname", "birthday", "about_me"]]
    nickname: str | None = None
    birthday: date | None = None
    about_me: str | None = None


@registry.register
class PhoneBound(UserEvent):
    TYPE: ClassVar[str] = "user.phone_bound"

    phone: str
    previous_phone: str | None = None


@registry.register
class SessionStarted(UserEvent):
    TYPE: ClassVar[str] = "session.started"

    session_id: str
    method: Literal["password", "sms", "wechat"]
    ua_hash: str
    refresh_jti: str


@registry.register
class SessionRefreshed(UserEvent):
    TYPE: ClassVar[str] = "session.refreshed"

    session_id: str
    refresh_jti: str


@registry.register
class SessionRevoked(UserEvent):
    TYPE: ClassVar[str] = "session.revoked"

    session_id: str
    reason: Literal["logout", "refresh_reuse", "password_changed"]
