"""Input and output models of the native API."""

from __future__ import annotations

import unicodedata
from datetime import date, datetime
from typing import Annotated

from email_validator import EmailNotValidError, validate_email
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from bloghub.auth.passwords import password_problems


def _clean_text(value: str) -> str:
    """Refuse what no field should carry: NUL and other control characters."""
    if any(unicodedata.category(ch) == "Cc" and ch not in "\t\n\r" for ch in value):
        raise ValueError("must not contain control characters")
    return value


def _normalise_email(value: str) -> str:
    value = unicodedata.normalize("NFC", _clean_text(value.strip()))
    try:
        checked = validate_email(value, check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValueError(f"not a valid email address: {exc}") from None
    return checked.normalized.lower()


def login_email(value: str) -> str:
    """The form signup stored, or the input as typed if it is not an address at all."""
    try:
        return _normalise_email(value)
    except ValueError:
        return value.strip().lower()


def _check_password(value: str) -> str:
    problems = password_problems(_clean_text(value))
    if problems:
        raise ValueError("password needs " + ", ".join(problems))
    return value


Email = Annotated[str, Field(min_length=3, max_length=254), AfterValidator(_normalise_email)]
NewPassword = Annotated[str, Field(max_length=128), AfterValidator(_check_password)]
Password = Annotated[str, Field(min_length=1, max_length=128), AfterValidator(_clean_text)]


def _confirms(value: str, info: ValidationInfo, field: str) -> str:
    """A confirmation must repeat ``field`` exactly (unless that field already failed)."""
    if field in info.data and value != info.data[field]:
        raise ValueError(f"does not match {field}")
    return value


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, str_max_length=100_000)


class SignupIn(Input):
    email: Email
    password: NewPassword
    confirm_password: Annotated[str, Field(max_length=128)]

    @field_validator("confirm_password")
    @classmethod
    def _passwords_match(cls, value: str, info: ValidationInfo) -> str:
        return _confirms(value, info, "password")


class LoginIn(Input):
    email: Annotated[str, Field(min_length=1, max_length=254)]
    password: Password


class UserOut(BaseModel):
    id: str
    email: str | None = None
    created_at: datetime | None = None


class UserEnvelope(BaseModel):
    user: UserOut


class TokensOut(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str = "Bearer"
    expires_in: int
    user: UserOut


class ErrorDetail(BaseModel):
    code: str
    message: str
    fields: dict[str, str] | None = None


class ErrorOut(BaseModel):
    error: ErrorDetail


Nickname = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_clean_text)]
AboutMe = Annotated[str, Field(max_length=1024), AfterValidator(_clean_text)]


def _not_in_future(value: date) -> date:
    if value > date.today():
        raise ValueError("must not be in the future")
    if value.year < 1900:
        raise ValueError("must be after 1900-01-01")
    return value


class ProfilePatch(Input):
    """Only the fields sent change; send null to clear one."""

    nickname: Nickname | None = None
    birthday: Annotated[date, AfterValidator(_not_in_future)] | None = None
    about_me: AboutMe | None = None

    @model_validator(mode="after")
    def _something(self) -> ProfilePatch:
        if not self.model_fields_set:
            raise ValueError("send at least one of nickname, birthday, about_me")
        return self


class PasswordChangeIn(Input):
    current_password: Password
    new_password: NewPassword
    confirm_password: Annotated[str, Field(max_length=128)]

    @field_validator("confirm_password")
    @classmethod
    def _matches(cls, value: str, info: ValidationInfo) -> str:
        return _confirms(value, info, "new_password")


class EraseIn(Input):
    """Proof that the caller owns the account they erase: the current password, or (for an
    account without one) a code sent to its phone with purpose ``erase``."""

    password: Password | None = None
    code: Annotated[str, Field(pattern=r"^[0-9]{6}$")] | None = None

    @model_validator(mode="after")
    def _one_proof(self) -> EraseIn:
        if (self.password is None) == (self.code is None):
            raise ValueError("send either password or code")
        return self


class RefreshIn(Input):
    refresh_token: Annotated[str, Field(min_length=1, max_length=4096)]


class ProfileOut(BaseModel):
    id: str
    email: str | None = None
    phone: str | None = None
    nickname: str | None = None
    birthday: date | None = None
    about_me: str | None = None
    wechat_bound: bool = False
    created_at: datetime | None = None


class ProfileEnvelope(BaseModel):
    user: ProfileOut


class PublicProfileOut(BaseModel):
    id: str
    nickname: str | None = None
    about_me: str | None = None
    created_at: datetime


class PublicProfileEnvelope(BaseModel):
    user: PublicProfileOut
