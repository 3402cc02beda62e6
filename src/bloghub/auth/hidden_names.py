"""Personal identifiers in Redis key names (an email as typed at login, a phone) by a keyed
hash: a key names no one to whoever reads Redis, and without the key the hash cannot be
undone by trying every candidate (some 10^10 mainland mobile numbers take minutes with a
plain SHA-256). The key is derived from ``BLOGHUB_READER_HASH_SECRET``, the secret that
already stands anonymous readers' addresses in for hashes."""

from __future__ import annotations

import hashlib
import hmac

_LABEL = b"bloghub/redis-key-names/v1"


def names_key(secret: str) -> bytes:
    """The hashing key for key names, distinct from any other use of ``secret``."""
    return hmac.new(secret.encode(), _LABEL, hashlib.sha256).digest()


def hidden(value: str, key: bytes) -> str:
    """``value`` as a key name part: 32 hex characters."""
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()[:32]
