from __future__ import annotations

import pytest

from bloghub.auth.passwords import PasswordHasher, password_problems


@pytest.mark.parametrize(
    ("password", "missing"),
    [
        ("short1!", "at least 8 characters"),
        ("longenough!", "a digit"),
        ("12345678!", "a letter"),
        ("abcdefg12", "a symbol"),
        ("x" * 120 + "1!" + "y" * 10, "at most 128 characters"),
    ],
)
def test_policy_names_what_is_missing(password: str, missing: str) -> None:
    assert missing in password_problems(password)


@pytest.mark.parametrize("password", ["s3cret-Pass!", "密码是Secret1!", "under_score9"])
def test_good_passwords_pass(password: str) -> None:
    assert password_problems(password) == []


async def test_hash_verifies_only_the_right_password() -> None:
    hasher = PasswordHasher("argon2")
    hashed = await hasher.hash("s3cret-Pass!")
    assert hashed.startswith("$argon2id$")
    assert await hasher.verify("s3cret-Pass!", hashed)
    assert not await hasher.verify("s3cret-Pass?", hashed)
    assert not await hasher.verify("s3cret-Pass!", None)
