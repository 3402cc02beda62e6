"""Input and output models of the native API.

Every constraint an input must meet is declared here, once, in a form that both validates
the request and appears in the OpenAPI document: lengths and formats as pydantic fields,
patterns as ``Rule``s. A request the document calls valid is one the API accepts."""

from __future__ import annotations

import unicodedata
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Annotated, Any

from email_validator import EmailNotValidError, validate_email
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, SchemaValidator, core_schema

from bloghub.auth.passwords import MAX_LENGTH, MIN_LENGTH, password_problems, stabilized
from bloghub.commands.users import ERASED_NAME, as_shown, username_key


@lru_cache(maxsize=64)
def _matcher(pattern: str) -> SchemaValidator:
    return SchemaValidator(core_schema.str_schema(pattern=pattern))


@dataclass(frozen=True, slots=True)
class Rule:
    """A pattern a text must match, checked by pydantic's regex engine (the Unicode-aware
    syntax shared with ECMA-262, which OpenAPI names) and published as that same pattern,
    so the document and the check cannot drift apart. ``message`` is what a caller reads."""

    pattern: str
    message: str

    def matches(self, value: str) -> bool:
        try:
            _matcher(self.pattern).validate_python(value)
        except ValidationError:
            return False
        return True

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        def check(value: str) -> str:
            if not self.matches(value):
                raise ValueError(self.message)
            return value

        return core_schema.no_info_after_validator_function(check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        out = handler(schema)
        if "pattern" in out:
            out.setdefault("allOf", []).append({"pattern": self.pattern})
        else:
            out["pattern"] = self.pattern
        return out


# Character classes spelled as plain ranges, which ECMA-262, pydantic's engine and Python
# read alike (Unicode property classes differ between them, e.g. on private use).
_CONTROL = r"\x00-\x1F\x7F-\x9F"  # C0 and C1 controls


def _beyond_the_bmp(first: int, last: int) -> str:
    """A range past U+FFFF, its ends written as the characters themselves: Python, pydantic's
    engine and ECMA-262 with its Unicode flag (JSON Schema's validators) read them alike,
    where the three spell escapes for them differently."""
    return f"{chr(first)}-{chr(last)}"


# Invisible format characters, the zero-width joiner of emoji sequences and the
# non-joiner of Persian spelling aside; past the BMP: Egyptian hieroglyph, shorthand and
# musical format controls, and the default-ignorable code points of the tag block that
# are no tag character (unassigned, they would show nothing either).
_FORMAT = (
    r"\u00AD\u0600-\u0605\u061C\u06DD\u070F\u0890\u0891\u08E2\u180E\u200B"
    r"\u200E\u200F\u202A-\u202E\u2060-\u206F\uFEFF\uFFF0-\uFFFB"
    + _beyond_the_bmp(0x13430, 0x1343F)
    + _beyond_the_bmp(0x1BCA0, 0x1BCA3)
    + _beyond_the_bmp(0x1D173, 0x1D17A)
    + chr(0xE0000)
    + _beyond_the_bmp(0xE0002, 0xE001F)
    + _beyond_the_bmp(0xE0080, 0xE00FF)
    + _beyond_the_bmp(0xE01F0, 0xE0FFF)
)
# Private use: the BMP's area and the two supplementary planes.
_PRIVATE = (
    r"\uE000-\uF8FF" + _beyond_the_bmp(0xF0000, 0xFFFFD) + _beyond_the_bmp(0x100000, 0x10FFFD)
)
# Tag characters (emoji flags of regions are spelled with them) and the supplementary
# variation selectors: they may stand in text and show nothing alone.
_INVISIBLE_TAGS = (
    chr(0xE0001) + _beyond_the_bmp(0xE0020, 0xE007F) + _beyond_the_bmp(0xE0100, 0xE01EF)
)
# Characters that may stand in text (emoji sequences join and vary with them, scripts use
# them: Persian spells many words with a non-joiner between two letters) but show nothing
# alone: the zero-width non-joiner and joiner, variation selectors, the combining grapheme
# joiner, Hangul and Khmer fillers, the blank braille cell, tag characters. They do not
# make a text visible.
_BLANK = (
    r"\u034F\u115F\u1160\u17B4\u17B5\u180B-\u180D\u180F\u200C\u200D\u2800\u3164"
    r"\uFE00-\uFE0F\uFFA0" + _INVISIBLE_TAGS
)
_SPACE = r" \u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000"  # str.isspace()

# Noncharacters: code points Unicode keeps out of text for good (U+FDD0-U+FDEF and the
# last two of every plane). A font draws one as nothing or as a box: a new name may not
# hold one (``NONCHARACTER``). Stored texts that hold one (titles, tags) were accepted
# before and are sent back as they are by editors, so ``LINE`` does not refuse them.
_NONCHARACTERS = r"\uFDD0-\uFDEF\uFFFE\uFFFF" + "".join(
    _beyond_the_bmp(plane + 0xFFFE, plane + 0xFFFF) for plane in range(0x10000, 0x110000, 0x10000)
)

# NUL and the other C0/C1 controls (tab and line breaks aside) have no place in any text a
# person sends; refused here, they never reach a store or a log line.
PLAIN = Rule(r"^[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*$", "must not contain control characters")
# One line of visible text: no controls, invisible format or private-use characters, and
# something besides spaces.
_HIDDEN = _CONTROL + _FORMAT + _PRIVATE
LINE = Rule(
    f"^[^{_HIDDEN}]*[^{_HIDDEN}{_SPACE}{_BLANK}][^{_HIDDEN}]*$",
    "must be visible text without control characters",
)
# Text of several lines (a comment): newlines and tabs are text, every other control
# character (carriage return included) is refused rather than stored, and something in it
# must be visible (spaces, line breaks and invisible format characters alone show nothing).
_IN_TEXT = r"[^\x00-\x08\x0B-\x1F\x7F-\x9F]"
TEXT = Rule(
    f"^{_IN_TEXT}*[^{_HIDDEN}{_SPACE}{_BLANK}]{_IN_TEXT}*$",
    "must contain visible text and no control characters",
)
# Something visible somewhere in a text that takes any plain character (an article's
# body): ``TEXT``'s test of visibility alone.
# A cursor of a form no page hands out: told so, not shown the pattern (a cursor of the
# right form that names no page is the list's 404).
CURSOR_REFUSED = "not a cursor this API hands out: send the previous page's, or none to start again"
CURSOR = Rule(r"^[A-Za-z0-9_-]+$", CURSOR_REFUSED)
VISIBLE = Rule(f"[^{_HIDDEN}{_SPACE}{_BLANK}]", "must contain visible text")
# One word of visible characters: no spaces, controls or invisible characters (a URL).
UNBROKEN = Rule(
    f"^[^{_HIDDEN}{_SPACE}]*$", "must not contain spaces, control or invisible characters"
)
# Spaces as a keyboard types them between words: the ASCII one, the no-break one and the
# ideographic one (a Chinese input method in full-width mode), the typographic widths;
# and what shows as one: the blank braille cell, the Hangul fillers. A tag is kept with
# each run of them as one ASCII space; line and paragraph separators and the Ogham mark
# are not among them.
WORD_SPACES = r" \u00A0\u2000-\u200A\u202F\u205F\u3000\u2800\u3164\uFFA0"
# A tag: visible words joined by spaces.
_WORD = f"[^{_HIDDEN}{_SPACE}]"
_JOIN = f"[{WORD_SPACES}]+"
TAG = Rule(
    f"^(?:{_WORD}+{_JOIN})*{_WORD}*[^{_HIDDEN}{_SPACE}{_BLANK}]{_WORD}*(?:{_JOIN}{_WORD}+)*$",
    "a tag is visible words joined by spaces, without control characters or line breaks",
)

# Domains that email cannot reach (RFC 6761 and kin), which the address check refuses.
_SPECIAL_USE_NAMES = ("arpa", "invalid", "local", "localhost", "onion", "test")
_SPECIAL_USE = "[.@](?:{})\\.?$".format(
    "|".join("".join(f"[{c.upper()}{c}]" for c in name) for name in _SPECIAL_USE_NAMES)
)


def _written_in_digits(value: object) -> object:
    """A whole number in a query string as one is written there: ASCII digits only.
    Lax int parsing would also take "1_0", "+5", " 7 ", "1.0" and other scripts' digits,
    which the published schema (an integer) does not."""
    if isinstance(value, str) and not (value.isascii() and value.isdigit()):
        if value[:1] == "-" and value[1:].isascii() and value[1:].isdigit():
            # A whole number below every bound here: its Field's bound names the range
            # ("must not be negative" led a user to send 0, refused in turn). Not int() of
            # the text: thousands of digits are refused there with Python's own words.
            return -1
        raise ValueError("must be a whole number written in digits")
    if isinstance(value, str) and len(value.lstrip("0")) > _LONGEST:
        return _ABOVE_EVERY_BOUND  # as for "-...": the bound speaks, not the parser
    return value


# Every bound of a whole-number parameter here is far below this many digits.
_LONGEST = 18
_ABOVE_EVERY_BOUND = 10**_LONGEST

# For an integer query parameter (the query string reaches validation as text), beside
# its Field: ``Annotated[int, Field(...), DIGITS]``.
DIGITS = BeforeValidator(_written_in_digits)


def _normalise_email(value: str) -> str:
    value = unicodedata.normalize("NFC", value.strip())
    try:
        checked = validate_email(value, check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValueError(f"not a valid email address: {exc}") from None
    # RFC 5321 (4.5.3.1.1): no server need take a longer local part, so mail to it may
    # never arrive; the validator checks only the address's whole length.
    if len(checked.local_part.encode()) > LOCAL_PART_MAX_OCTETS:
        raise ValueError(
            f"not a valid email address: the part before the @ is longer than "
            f"{LOCAL_PART_MAX_OCTETS} bytes"
        )
    return checked.normalized.lower()


LOCAL_PART_MAX_OCTETS = 64


def login_email(value: str) -> str:
    """The form signup stored, or the input as typed if it is not an address at all."""
    try:
        return _normalise_email(value)
    except ValueError:
        return value.strip().lower()


def _check_password(value: str) -> str:
    # The rules hold for what is hashed (``stabilized``): normalising may shorten it.
    problems = password_problems(stabilized(value), value)
    if problems:
        raise ValueError("password needs " + ", ".join(problems))
    return value


def _password_rules(schema: dict[str, Any]) -> None:
    """The password policy as patterns: each is a narrower reading of its rule in
    ``password_problems`` (which decides) as sent, so a password they admit is one it
    admits, but for what NFKC shortens (a half-width kana and its voiced mark are one
    character as hashed): the description says so."""
    schema["description"] = (
        f"{MIN_LENGTH}-{MAX_LENGTH} characters with a letter, a digit and a symbol "
        "(punctuation or a sign one can see), counted as the password is hashed "
        "(NFKC: a half-width kana and its voiced mark are one character); characters "
        f"that show nothing (a zero-width space, a joiner) do not count toward the "
        f"{MIN_LENGTH}; the {MAX_LENGTH} hold as sent too"
    )
    unseen = rf"{_HIDDEN}{_BLANK}\p{{Cf}}\p{{Cs}}"  # what ``password_problems`` does not count
    schema.setdefault("allOf", []).extend(
        {"pattern": p}
        for p in (
            rf"^(?:[{unseen}]*[^{unseen}]){{{MIN_LENGTH}}}",
            r"\p{L}",
            r"\p{Nd}",
            r"[\p{P}\p{S}]",
        )
    )


Email = Annotated[
    str,
    Field(
        min_length=3,
        max_length=254,
        # What "format: email" admits and the check refuses, said where a client reads it.
        description="An address a mail can be sent to: a domain with a dot in it (not a "
        "bracketed IP address, nor a special-use domain such as example.invalid or "
        "localhost), a part before the @-sign of at most 64 bytes that is not quoted",
        json_schema_extra={"format": "email", "not": {"pattern": _SPECIAL_USE}},
    ),
    PLAIN,
    AfterValidator(_normalise_email),
]
NewPassword = Annotated[
    str,
    Field(min_length=MIN_LENGTH, max_length=MAX_LENGTH, json_schema_extra=_password_rules),
    PLAIN,
    AfterValidator(_check_password),
]
Password = Annotated[str, Field(min_length=1, max_length=MAX_LENGTH), PLAIN, VISIBLE]
SmsCode = Annotated[str, Rule(r"^[0-9]{6}$", "must be the 6 digits of the code sent by SMS")]
# JSON Schema cannot say "equal to another field"; the description does.
Confirmation = Annotated[
    str,
    Field(max_length=MAX_LENGTH, description="must repeat the password it confirms exactly"),
    PLAIN,
]


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
    confirm_password: Confirmation

    @field_validator("confirm_password")
    @classmethod
    def _passwords_match(cls, value: str, info: ValidationInfo) -> str:
        return _confirms(value, info, "password")


class LoginIn(Input):
    # Any text may be tried (a wrong one is a 401), but never a control character: it
    # would travel to the stores and the logs.
    email: Annotated[str, Field(min_length=1, max_length=254), PLAIN, VISIBLE]
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


def _canonical_name(value: Any) -> Any:
    """A name in one canonical form (NFC) and without spaces at its ends, so that names
    which look the same are stored the same (a composed and a decomposed "é", say)."""
    return unicodedata.normalize("NFC", value).strip() if isinstance(value, str) else value


# A name as an account may hold it already: names taken before a rule of ``ADDRESSABLE``
# was made stay theirs, and a form sending one back unchanged is not refused for it.
StoredName = Annotated[
    str, Field(min_length=1, max_length=64), BeforeValidator(_canonical_name), LINE
]
# A nickname is also a Conduit username, which front ends put into an address as it is
# (`/profiles/${username}`): a slash (even encoded) splits the segment, `?` and `#` end the
# path, `%` is read as an escape, browsers turn `\` into `/`, and a segment of dots alone
# is resolved away ("." and ".."). Such a name could name no profile.
ADDRESSABLE = (
    Rule(r"^[^/?#%\\]*$", "must not contain /, ?, #, % or \\"),
    Rule(r"[^.]", "must not be dots only"),
)
LOOKS_LIKE_AN_ID = "must not be an account id"
SHOWN_FOR_ERASED = "is the name shown for erased accounts"
SPACED = "must not begin or end with a space or hold two in a row"
# The Hangul fillers show as a blank in a name, yet are characters that show nothing to
# the username key (Unicode's default-ignorables, left out since migration 0025): a name
# with one where a space would be looked like another's and was not it. A new name may
# not hold one (a syllable is written whole; one taken before stays its account's).
FILLER = "must not contain a Hangul filler (it shows as a blank)"
_FILLERS = frozenset("\u115f\u1160\u3164\uffa0")
# The white space no fold makes a plain space: a line or paragraph separator shows as a
# break or as nothing, the Ogham space mark as a stroke (Ogham's own word space) or a
# blank. A name holding one is told so, not that its spaces are out of place.
SEPARATOR = (
    "must not contain a line or paragraph separator or the Ogham space mark "
    "(U+2028, U+2029, U+1680)"
)
_SEPARATORS = frozenset("\u1680\u2028\u2029")
NONCHARACTER = "must not contain a noncharacter (U+FDD0-U+FDEF, U+FFFE, U+FFFF and kin)"
_NONCHARACTER = Rule(f"^[^{_NONCHARACTERS}]*$", NONCHARACTER)


# What reads as an id's hyphen or hex letter without being one: every dash (Unicode's
# ``Pd``: hyphen, non-breaking hyphen, figure and en dash, ...), the minus signs, and the
# Cyrillic letters drawn as a, c, d and e: an id spelt with U+2010 for its hyphens shows as the id.
DASHES = (
    *(0x002D, 0x058A, 0x05BE, 0x1400, 0x1806, 0x2010, 0x2011, 0x2012, 0x2013, 0x2014),
    *(0x2015, 0x2E17, 0x2E1A, 0x2E3A, 0x2E3B, 0x2E40, 0x2E5D, 0x301C, 0x3030, 0x30A0),
    *(0xFE31, 0xFE32, 0xFE58, 0xFE63, 0xFF0D, 0x10EAD),
)
_LOOKALIKES = {
    **dict.fromkeys(DASHES, "-"),
    **dict.fromkeys((0x02D7, 0x2043, 0x207B, 0x208B, 0x2212, 0x2796), "-"),
    0x0430: "a",
    0x0441: "c",
    0x0501: "d",
    0x0435: "e",
}


def is_account_id(name: str) -> bool:
    """Whether ``name`` reads as an account id in any spelling, its username's folded form
    included: an account with no nickname is shown by its id (RealWorld's username), and
    usernames are looked up folded, so a nickname of that form (full-width hyphens or
    letters in an id, dashes or a minus sign for its hyphens) could pass for another
    account, and take over its profile's address."""
    key = username_key(name)
    for spelling in (name, key, key.translate(_LOOKALIKES)):
        try:
            uuid.UUID(spelling)
        except ValueError:
            continue
        return True
    return False


def _not_an_id(name: str) -> str:
    problem = _unlike_another(name)
    if problem is not None:
        raise ValueError(problem)
    return name


def _unlike_another(name: str) -> str | None:
    """Why ``name`` would pass for an account id, the erased authors' name or another
    username, or None. A page shows a run of spaces as one, and spaces at either end as
    none (spaces of any width, once folded, and with what shows nothing between them):
    "mary  ann" would look like "mary ann", and "deleted  user" like an erased author."""
    if is_account_id(name):
        return LOOKS_LIKE_AN_ID
    if not _FILLERS.isdisjoint(name):
        return FILLER
    if not _SEPARATORS.isdisjoint(name):
        return SEPARATOR
    if not _NONCHARACTER.matches(name):
        return NONCHARACTER
    shown = as_shown(name)
    if " ".join(shown.split()) == username_key(ERASED_NAME):
        return SHOWN_FOR_ERASED
    if shown.split() != shown.split(" ") or not shown.strip():
        return SPACED
    return None


_NICKNAME_RULES = (
    "Trimmed, in NFC. Besides its pattern: not an account id in any spelling, not the name "
    'shown for erased accounts ("deleted user", in any case or width), no /, ?, #, % or '
    "\\, not dots only, no two spaces in a row, no line or paragraph separator, "
    "Ogham space mark or noncharacter; unique regardless of case and width."
)
Nickname = Annotated[
    StoredName,
    ADDRESSABLE[0],
    ADDRESSABLE[1],
    AfterValidator(_not_an_id),
    Field(description=_NICKNAME_RULES),
]


# A nickname as a settings form sends it: the account's own, sent back as it is, is taken
# as it is (a name taken before a rule was made stays its account's); a new one must meet
# every rule of ``Nickname`` (``unaddressable``, checked against the account's name).
KeptNickname = Annotated[
    StoredName,
    Field(
        description=_NICKNAME_RULES
        + " The rules hold for a new nickname: the account's own, sent back as it is, "
        "is taken as it is."
    ),
]


def unaddressable(name: str) -> str | None:
    """Why ``name`` cannot be a new nickname for the address it would make, or None."""
    problem = _unlike_another(name)
    if problem is not None:
        return problem
    return next((rule.message for rule in ADDRESSABLE if not rule.matches(name)), None)


AboutMe = Annotated[str, Field(max_length=1024), PLAIN]


# The furthest ahead of UTC a time zone's calendar runs (Kiribati's Line Islands).
_EARLIEST_ZONE = timedelta(hours=14)


def latest_today() -> date:
    """Today where the day began first: a birthday someone east of the server enters as
    their today is not the future to them."""
    return (datetime.now(UTC) + _EARLIEST_ZONE).date()


def _not_in_future(value: date) -> date:
    if value > latest_today():
        raise ValueError("must not be in the future")
    if value.year < 1900:
        raise ValueError("must be on or after 1900-01-01")
    return value


def _past_years(schema: dict[str, Any]) -> None:
    """Dates from 1900 to the end of next year: the part of the rule a pattern can say.
    It is written when the document is, and a process serving it past New Year must not
    document the new year's days as refused; the server refuses a day still to come."""
    last = latest_today().year + 1
    decades = [f"{d}[0-9]" for d in range(200, last // 10)]
    years = "|".join(["19[0-9]{2}", *decades, f"{last // 10}[0-{last % 10}]"])
    schema["pattern"] = f"^(?:{years})-"
    schema["description"] = "a date from 1900-01-01 to today in UTC+14 (where the day begins first)"


Birthday = Annotated[date, Field(json_schema_extra=_past_years), AfterValidator(_not_in_future)]


class ProfilePatch(Input):
    """Only the fields sent change; send null to clear one."""

    model_config = ConfigDict(json_schema_extra={"minProperties": 1})

    nickname: KeptNickname | None = None
    birthday: Birthday | None = None
    about_me: AboutMe | None = None

    @model_validator(mode="after")
    def _something(self) -> ProfilePatch:
        if not self.model_fields_set:
            raise ValueError("send at least one of nickname, birthday, about_me")
        return self


class PasswordChangeIn(Input):
    current_password: Password
    new_password: NewPassword
    confirm_password: Confirmation

    @field_validator("confirm_password")
    @classmethod
    def _matches(cls, value: str, info: ValidationInfo) -> str:
        return _confirms(value, info, "new_password")


def _exactly_one_proof(schema: dict[str, Any]) -> None:
    """The document says what ``EraseIn`` checks: one proof, not null, not both."""
    properties = schema["properties"]
    for name in ("password", "code"):
        given = [o for o in properties[name].pop("anyOf", []) if o.get("type") != "null"]
        if given:
            properties[name].update(given[0])
        properties[name].pop("default", None)
    schema["oneOf"] = [{"required": ["password"]}, {"required": ["code"]}]


class EraseIn(Input):
    """Proof that the caller owns the account they erase: the current password, or (for an
    account without one) a code sent to its phone with purpose ``erase``."""

    model_config = ConfigDict(json_schema_extra=_exactly_one_proof)

    password: Password | None = None
    code: SmsCode | None = None

    @model_validator(mode="after")
    def _one_proof(self) -> EraseIn:
        if (self.password is None) == (self.code is None):
            raise ValueError("send either password or code")
        return self


class RefreshIn(Input):
    refresh_token: Annotated[str, Field(min_length=1, max_length=4096), PLAIN]


class ProfileOut(BaseModel):
    id: str
    email: str | None = None
    phone: str | None = None
    nickname: str | None = None
    birthday: date | None = None
    about_me: str | None = None
    wechat_bound: bool = False
    created_at: datetime | None = None
    # Only in GET /v1/users/me.
    unread_notifications: int | None = None


class ProfileEnvelope(BaseModel):
    user: ProfileOut


class PublicProfileOut(BaseModel):
    id: str
    nickname: str | None = None
    about_me: str | None = None
    created_at: datetime


class PublicProfileCounted(PublicProfileOut):
    followers: int = 0
    followees: int = 0


class PublicProfileEnvelope(BaseModel):
    user: PublicProfileCounted
