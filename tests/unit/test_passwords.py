from __future__ import annotations

import unicodedata

import pytest
from passlib.context import CryptContext
from pydantic import ValidationError

from bloghub.api.v1.schemas import SignupIn
from bloghub.auth.passwords import PasswordHasher, password_problems, stabilized


@pytest.mark.parametrize(
    ("password", "missing"),
    [
        ("short1!", "at least 8 characters"),
        # What shows nothing is not counted: five zero-width spaces, a direction mark, joiners.
        ("\u200b" * 5 + "a1!", "at least 8 characters"),
        ("ab1!\u200e\u200d\u200c\ufe0f", "at least 8 characters"),
        ("ab1!\u3164\u2800\u115f\U000e0101", "at least 8 characters"),
        ("abcdefg12\u2800", "a symbol"),  # the blank braille cell is a symbol one cannot see
        ("longenough!", "a digit"),
        ("12345678!", "a letter"),
        ("abcdefg12", "a symbol"),
        ("abcdefg12\u200b", "a symbol"),  # a zero-width space is not seen
        ("abcdefg12\u0301", "a symbol"),  # nor is a combining mark alone
        ("abcdefg12\u00ad", "a symbol"),  # nor a soft hyphen
        ("x" * 120 + "1!" + "y" * 10, "at most 128 characters"),
    ],
)
def test_policy_names_what_is_missing(password: str, missing: str) -> None:
    assert missing in password_problems(password)


@pytest.mark.parametrize(
    "password",
    [
        "s3cret-Pass!",
        "密码是Secret1!",
        "under_score9",
        "price9\u20ac\u20ac",
        "x\u3002y1234z",
        "a b c d1!",  # a passphrase's spaces count
        "नमस्ते दुनिया1!",  # so do the marks a script spells its letters with
        "\u200b" * 5 + "abcdefg1!",  # what shows nothing is not counted, not refused
    ],
)
def test_good_passwords_pass(password: str) -> None:
    assert password_problems(password) == []


async def test_hash_verifies_only_the_right_password() -> None:
    hasher = PasswordHasher("argon2")
    hashed = await hasher.hash("s3cret-Pass!")
    assert hashed.startswith("$argon2id$")
    assert await hasher.verify("s3cret-Pass!", hashed)
    assert not await hasher.verify("s3cret-Pass?", hashed)
    assert not await hasher.verify("s3cret-Pass!", None)


async def test_the_same_visible_password_in_any_normal_form_is_the_same_password() -> None:
    """A keyboard that sends "ü" decomposed (NFD), or full-width letters, types the same
    password as one that sends it composed."""
    hasher = PasswordHasher("argon2")
    composed = unicodedata.normalize("NFC", "Pässw0rd!ü")
    hashed = await hasher.hash(composed)
    assert await hasher.verify(unicodedata.normalize("NFD", composed), hashed)
    wide = await hasher.hash("".join(chr(ord(c) + 0xFEE0) for c in "Pass123!"))  # full width
    assert await hasher.verify("Pass123!", wide)
    assert not await hasher.verify(unicodedata.normalize("NFD", "Pässw0rd!u"), hashed)


async def test_a_password_hashed_as_typed_before_normalising_still_verifies() -> None:
    hasher = PasswordHasher("argon2")
    typed = unicodedata.normalize("NFD", "Pässw0rd!ü")
    legacy = CryptContext(schemes=["argon2"]).hash(typed)  # as hash() made it before
    assert await hasher.verify(typed, legacy)
    assert not await hasher.verify("Passw0rd!u", legacy)


async def test_no_such_user_costs_as_many_hash_checks_as_a_wrong_password() -> None:
    """With a password that normalising changes, a wrong one is checked twice (as
    normalised, and as typed for hashes made before): the decoy for an unknown account
    is too, so the time taken does not tell whether the account exists."""
    hasher = PasswordHasher("argon2")
    hashed = await hasher.hash("s3cret-Pass!")
    checks: list[str] = []
    real = hasher._ctx.verify

    def counted(secret: str, target: str) -> bool:
        checks.append(target)
        return bool(real(secret, target))

    hasher._ctx.verify = counted
    typed = unicodedata.normalize("NFD", "Wröng-pass-1")
    assert not await hasher.verify(typed, hashed)
    on_an_account = len(checks)
    checks.clear()
    assert not await hasher.verify(typed, None)
    assert len(checks) == on_an_account == 2


def test_the_policy_holds_for_the_password_as_it_is_hashed() -> None:
    """Normalising may shorten a password: eight code points that compose into fewer
    letters (a letter and its accent typed apart) are fewer than eight as hashed."""
    decomposed = "e\u0301" * 3 + "1!"  # 8 code points; "ééé1!" (5) once composed
    assert len(decomposed) == 8
    with pytest.raises(ValidationError, match="at least 8 characters"):
        SignupIn.model_validate(
            {"email": "a@example.com", "password": decomposed, "confirm_password": decomposed}
        )
    composed_enough = "e\u0301" * 6 + "1!"  # "éééééé1!", 8 once composed
    assert SignupIn.model_validate(
        {"email": "a@example.com", "password": composed_enough, "confirm_password": composed_enough}
    )


def test_a_sign_that_normalising_makes_letters_still_counts_as_the_symbol() -> None:
    """The document's pattern (``[\\p{P}\\p{S}]``, on the password as sent) admitted
    "abcdefg12\u2122", which the API refused: NFKC makes the trade mark sign "TM"."""
    for sign in ("\u2122", "\u2121", "\u338f"):  # trade mark, telephone, kilogram
        typed = "abcdefg12" + sign
        assert "a symbol" in password_problems(stabilized(typed))
        assert password_problems(stabilized(typed), typed) == []
    assert "a symbol" in password_problems("abcdefg12", "abcdefg12\u200b")
