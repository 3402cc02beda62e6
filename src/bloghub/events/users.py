"""Events of the users family."""

from __future__ import annotations

from datetime import date
from typing import Any, ClassVar, Literal, Self

from pydantic import model_validator

from bloghub.events.base import Event, registry
from bloghub.events.topics import Family


class UserEvent(Event):
    FAMILY: ClassVar[Family] = Family.USERS
    AGGREGATE: ClassVar[str] = "user_id"

    user_id: str


class PersonalEvent(UserEvent):
    """A user event with personal data: the fields named in ``PERSONAL`` go to the log
    sealed under the user's key, in ``sealed``, and are null there (events/personal.py).
    They are optional here because they are absent from the log, and blank once the user
    is erased; commands always give them."""

    PERSONAL: ClassVar[frozenset[str]]

    sealed: str | None = None

    @model_validator(mode="after")
    def _not_both(self) -> Self:
        if self.sealed is not None and any(getattr(self, f) is not None for f in self.PERSONAL):
            raise ValueError("a sealed event carries no personal field in clear")
        return self


@registry.register
class UserRegistered(PersonalEvent):
    TYPE: ClassVar[str] = "user.registered"
    VERSION: ClassVar[int] = 2
    PERSONAL: ClassVar[frozenset[str]] = frozenset({"email", "password_hash"})

    email: str | None = None
    password_hash: str | None = None


@registry.register
class UserRegisteredByPhone(PersonalEvent):
    """An account made by the first SMS-code login of a phone."""

    TYPE: ClassVar[str] = "user.registered_by_phone"
    VERSION: ClassVar[int] = 2
    PERSONAL: ClassVar[frozenset[str]] = frozenset({"phone"})

    phone: str | None = None


@registry.register
class UserRegisteredByWeChat(PersonalEvent):
    """An account made by the first WeChat QR login of an open id."""

    TYPE: ClassVar[str] = "user.registered_by_wechat"
    VERSION: ClassVar[int] = 2
    PERSONAL: ClassVar[frozenset[str]] = frozenset({"openid", "unionid"})

    openid: str | None = None
    unionid: str | None = None


@registry.register
class PasswordChanged(PersonalEvent):
    TYPE: ClassVar[str] = "user.password_changed"
    VERSION: ClassVar[int] = 2
    PERSONAL: ClassVar[frozenset[str]] = frozenset({"password_hash"})

    password_hash: str | None = None
    via: Literal["password", "sms_reset"]
    keep_session_id: str | None = None  # every other session of the user ends


@registry.register
class ProfileUpdated(PersonalEvent):
    """Only the fields named in ``changed`` were set (a field may be set to null)."""

    TYPE: ClassVar[str] = "user.profile_updated"
    VERSION: ClassVar[int] = 2
    PERSONAL: ClassVar[frozenset[str]] = frozenset({"nickname", "birthday", "about_me", "image"})

    changed: list[Literal["nickname", "birthday", "about_me", "image"]]
    nickname: str | None = None
    birthday: date | None = None
    about_me: str | None = None
    image: str | None = None  # an avatar URL


@registry.register
class PhoneBound(PersonalEvent):
    TYPE: ClassVar[str] = "user.phone_bound"
    VERSION: ClassVar[int] = 2
    PERSONAL: ClassVar[frozenset[str]] = frozenset({"phone", "previous_phone"})

    phone: str | None = None
    previous_phone: str | None = None


def _written_in_clear(payload: dict[str, Any]) -> dict[str, Any]:
    """Version 1 held the personal fields in clear. Version 2 has the same fields, null
    once sealed, so a version 1 payload reads unchanged; the log is never rewritten."""
    return payload


for _personal in (
    UserRegistered,
    UserRegisteredByPhone,
    UserRegisteredByWeChat,
    PasswordChanged,
    ProfileUpdated,
    PhoneBound,
):
    registry.upcaster(_personal.TYPE, 1)(_written_in_clear)


@registry.register
class UserErased(UserEvent):
    """The person asked to be forgotten: their key is shredded, so every earlier event's
    personal fields become unreadable; their sessions end and their unique keys are free.
    Their articles stay, under a deleted author."""

    TYPE: ClassVar[str] = "user.erased"


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
