"""The error hierarchy every layer speaks; the API maps each to a status and a stable code.

Adapters translate driver errors into these once, so nothing above them sees asyncpg,
aiokafka or redis exceptions.
"""

from __future__ import annotations

from collections.abc import Mapping


class BloghubError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, fields: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fields = dict(fields or {})


class InvalidInput(BloghubError):
    status = 422
    code = "invalid_input"


class MalformedRequest(BloghubError):
    status = 400
    code = "malformed_request"


class Unauthorized(BloghubError):
    status = 401
    code = "unauthorized"


class Forbidden(BloghubError):
    status = 403
    code = "forbidden"


class NotFound(BloghubError):
    status = 404
    code = "not_found"


class NoPage(NotFound):
    """A cursor that names no page, whatever the read models hold: final however far they
    lag (never turned into a retry by a wait that ran out)."""

    def __init__(self) -> None:
        super().__init__("no page at that cursor; start again without one")


class Conflict(BloghubError):
    status = 409
    code = "conflict"


class PayloadTooLarge(BloghubError):
    status = 413
    code = "payload_too_large"

    @classmethod
    def over(cls, max_bytes: int) -> PayloadTooLarge:
        """The refusal of a body past ``max_bytes``, naming the limit to keep under."""
        return cls(f"the request body is over the limit of {max_bytes} bytes")


class UnsupportedMediaType(BloghubError):
    status = 415
    code = "unsupported_media_type"


class RateLimited(BloghubError):
    status = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Unavailable(BloghubError):
    """A backing service did not answer in time; the request did nothing durable."""

    status = 503
    code = "unavailable"


class SchemaBehind(Unavailable):
    """The database lacks a table or column this code uses: a deployment problem, never
    the fault of the request or event at hand (a projector waits instead of dead-lettering)."""

    code = "schema_behind"


class CatchingUp(Unavailable):
    """The write is in the log but the read model has not reached it within the wait bound:
    the answer would be wrong rather than late, so the caller is asked to come back."""

    code = "catching_up"
    retry_after_s = 1


class Transient(Exception):
    """A store that is unwell: connection lost, serialization failure, read-only after a
    failover, out of memory, disk or connections, a statement cancelled. Worth retrying;
    never the fault of what was being written."""


class StoreRejected(Exception):
    """The store refused the data written (a data or constraint error other than a
    duplicate key): the fault of what was written, not of the store."""


class CodeBehind(Exception):
    """An event newer than this code (an unknown type, a version with no upcaster, a field
    the model does not know): a deployment problem, never the event's fault. A projector
    waits for new code instead of dead-lettering it."""
