"""Crypto-shredding: personal data in events is sealed under a key of its own user.

Events are kept forever, so a person's email, phone, WeChat ids, password hash and profile
text are written to the log encrypted (AES-256-GCM) under a random key per user, kept
outside the log (``user_keys``). Erasing the person deletes that key: every copy of their
events, in the log, in backups, in a replay, becomes unreadable.

A user key is stored wrapped (encrypted) under a master key derived from a secret setting,
so a copy of the database alone does not open the log either. Every ciphertext is bound
(as associated data) to its user and purpose: one user's sealed fields cannot be passed off
as another's, nor one event type's as another's.
"""

from __future__ import annotations

import base64
import binascii
import os
from typing import TYPE_CHECKING, Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

if TYPE_CHECKING:
    from bloghub.settings import Settings

KEY_BYTES = 32
NONCE_BYTES = 12
TOKEN_PREFIX = "v1."  # the sealing scheme, so a later one can be told apart on read


class Unreadable(ValueError):
    """A sealed value that cannot be opened: its key is gone or wrong, or it was altered.
    The message never carries the value."""


def new_user_key() -> bytes:
    return os.urandom(KEY_BYTES)


def _aad(user_id: str, purpose: str) -> bytes:
    return f"bloghub:{purpose}:{user_id}".encode()


def _encrypt(key: bytes, plain: bytes, aad: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plain, aad)


def _decrypt(key: bytes, sealed: bytes, aad: bytes) -> bytes:
    if len(key) != KEY_BYTES or len(sealed) <= NONCE_BYTES:
        raise Unreadable("sealed value or key is malformed")
    try:
        return AESGCM(key).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], aad)
    except InvalidTag:
        raise Unreadable("sealed value does not open with this key") from None


def seal(key: bytes, user_id: str, purpose: str, fields: dict[str, Any]) -> str:
    """``fields`` (JSON-able) as one text token, readable only with ``key``."""
    raw = _encrypt(key, orjson.dumps(fields), _aad(user_id, purpose))
    return TOKEN_PREFIX + base64.urlsafe_b64encode(raw).decode()


def unseal(key: bytes | None, user_id: str, purpose: str, token: str) -> dict[str, Any]:
    """The fields ``seal`` was given; ``Unreadable`` without the right key (fails closed)."""
    if key is None:
        raise Unreadable("the user's key is gone")
    if not token.startswith(TOKEN_PREFIX):
        raise Unreadable("not a sealed value of a known scheme")
    try:
        raw = base64.urlsafe_b64decode(token[len(TOKEN_PREFIX) :].encode())
    except (binascii.Error, ValueError):
        raise Unreadable("sealed value is not base64") from None
    try:
        fields = orjson.loads(_decrypt(key, raw, _aad(user_id, purpose)))
    except orjson.JSONDecodeError:
        raise Unreadable("sealed value is not JSON") from None
    if type(fields) is not dict:
        raise Unreadable("sealed value is not an object")
    return fields


class MasterKey:
    """Wraps user keys for storage. Derived (HKDF-SHA256) from a secret setting, so any
    length of secret gives a full-strength AES-256 key."""

    def __init__(self, secret: str) -> None:
        if not secret:
            raise ValueError("the user key secret must not be empty")
        self._key = HKDF(
            algorithm=hashes.SHA256(),
            length=KEY_BYTES,
            salt=None,
            info=b"bloghub user key wrapping v1",
        ).derive(secret.encode())

    def wrap(self, user_id: str, user_key: bytes) -> bytes:
        return _encrypt(self._key, user_key, _aad(user_id, "user-key"))

    def unwrap(self, user_id: str, wrapped: bytes) -> bytes:
        """The user's key; ``Unreadable`` if the master key is not the one that wrapped it."""
        return _decrypt(self._key, wrapped, _aad(user_id, "user-key"))


def master_key(settings: Settings) -> MasterKey:
    """The key that wraps every user's key, for commands and projectors alike."""
    return MasterKey(settings.user_key_secret.get_secret_value())
