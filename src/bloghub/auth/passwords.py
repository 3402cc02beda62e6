"""Password policy and hashing (argon2id by default, through passlib)."""

from __future__ import annotations

import asyncio
import re
import unicodedata

from passlib.context import CryptContext

MIN_LENGTH = 8
MAX_LENGTH = 128  # hashing cost must not be a lever for a denial of service


def password_problems(password: str, as_typed: str | None = None) -> list[str]:
    """What ``password`` (as hashed: ``stabilized``) lacks. ``as_typed``, if given, may
    bring the symbol: NFKC turns some signs one sees into letters (™ into "TM")."""
    problems = []
    if len(password) < MIN_LENGTH:
        problems.append(f"at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        problems.append(f"at most {MAX_LENGTH} characters")
    if not re.search(r"[^\W\d_]", password):
        problems.append("a letter")
    if not re.search(r"\d", password):
        problems.append("a digit")
    # Punctuation or a symbol one sees: not a format character (a zero-width space), a
    # combining mark or a control, which a person cannot see they typed.
    if not any(unicodedata.category(c)[0] in "PS" for c in password + (as_typed or "")):
        problems.append("a symbol")
    return problems


def stabilized(password: str) -> str:
    """The password as it is hashed: NFKC, as NIST SP 800-63B asks, so the same visible
    password typed on another device (a keyboard that sends "ü" decomposed, as macOS and
    iOS ones can, or full-width forms) is the same password."""
    return unicodedata.normalize("NFKC", password)


class PasswordHasher:
    def __init__(self, scheme: str = "argon2") -> None:
        self._ctx = CryptContext(schemes=[scheme], deprecated="auto")
        # Verifying against this keeps "no such user" as slow as "wrong password".
        self._decoy = self._ctx.hash("decoy-password-1!")

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._ctx.hash, stabilized(password))

    async def verify(self, password: str, hashed: str | None) -> bool:
        target = hashed or self._decoy
        ok = await asyncio.to_thread(self._ctx.verify, stabilized(password), target)
        if not ok and stabilized(password) != password:
            # Hashed as typed before passwords were normalised: the form typed then. Tried
            # against the decoy too, so "no such user" takes as long as a wrong password.
            ok = await asyncio.to_thread(self._ctx.verify, password, target)
        return bool(ok) and hashed is not None
