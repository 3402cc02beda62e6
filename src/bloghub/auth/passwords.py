"""Password policy and hashing (argon2id by default, through passlib)."""

from __future__ import annotations

import asyncio
import re
import unicodedata

from passlib.context import CryptContext

MIN_LENGTH = 8
MAX_LENGTH = 128  # hashing cost must not be a lever for a denial of service


# Controls, format characters (a zero-width space, a direction mark), private use and
# surrogates. An unassigned code point counts: a font draws it as a box one sees.
_UNSEEN = frozenset({"Cc", "Cf", "Co", "Cs"})
# Characters that show nothing alone: joiners, variation selectors, the combining grapheme
# joiner, Hangul and Khmer fillers, the blank braille cell.
_BLANK = frozenset(
    "\u034f\u115f\u1160\u17b4\u17b5\u180b\u180c\u180d\u180f\u200c\u200d\u2800\u3164\uffa0"
    + "".join(map(chr, range(0xFE00, 0xFE10)))
    + "".join(map(chr, range(0xE0100, 0xE01F0)))
)


def _shows(c: str) -> bool:
    """Whether a person sees that they typed ``c``: the length counts only those, each code
    point as one (NIST SP 800-63B), so five zero-width spaces and "a1!" are not eight. A
    space counts (a passphrase's spaces are typed and seen); a combining mark does too
    (scripts spell letters with them)."""
    return unicodedata.category(c) not in _UNSEEN and c not in _BLANK


def password_problems(password: str, as_typed: str | None = None) -> list[str]:
    """What ``password`` (as hashed: ``stabilized``) lacks. ``as_typed``, if given, may
    bring the symbol: NFKC turns some signs one sees into letters (™ into "TM")."""
    problems = []
    if sum(map(_shows, password)) < MIN_LENGTH:
        problems.append(f"at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        problems.append(f"at most {MAX_LENGTH} characters")
    if not re.search(r"[^\W\d_]", password):
        problems.append("a letter")
    if not re.search(r"\d", password):
        problems.append("a digit")
    # Punctuation or a symbol one sees: not a format character (a zero-width space), a
    # combining mark, a control or the blank braille cell, which a person cannot see they
    # typed.
    if not any(
        unicodedata.category(c)[0] in "PS" and _shows(c) for c in password + (as_typed or "")
    ):
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
