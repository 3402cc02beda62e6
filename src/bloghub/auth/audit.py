"""The security log: one structured line per event an operator may need to investigate
(failed logins, lockouts, refresh token reuse, failed operator logins, erasures).

Each line carries ``security=True``, the event name, the client IP and the user id (None
when no account is known), so a log shipper can route them apart. Secrets never belong
here: a field whose name says it holds one is written as ``[redacted]`` instead.
"""

from __future__ import annotations

import structlog

REDACTED = "[redacted]"
_SECRET_WORDS = ("password", "token", "secret", "hash", "cookie", "authorization")
_SECRET_NAMES = frozenset({"code", "otp", "pin"})


def security_event(name: str, *, ip: str | None, user_id: str | None, **fields: object) -> None:
    """Log security event ``name`` (dotted, past tense: ``login.failed``)."""
    safe = {key: REDACTED if _is_secret(key) else value for key, value in fields.items()}
    # Looked up on each call rather than once per module: these lines are rare, and a
    # logging reconfiguration (a new sink, a capture) must apply to them at once.
    structlog.get_logger("bloghub.security").warning(
        name, security=True, ip=ip, user_id=user_id, **safe
    )


def _is_secret(field: str) -> bool:
    lowered = field.lower()
    return lowered in _SECRET_NAMES or any(word in lowered for word in _SECRET_WORDS)
