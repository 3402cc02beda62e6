"""The SMS outbox: messages no provider took (or the global rate held back), retried by
the outbox worker. Write-side state, not a read model, so it lives in ``public``."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, DateTime, Identity, Integer, MetaData, Table, Text, func

sms = MetaData(schema="public")

sms_outbox = Table(
    "sms_outbox",
    sms,
    Column("id", BigInteger, Identity(always=True), primary_key=True),
    Column("phone", Text, nullable=False),
    Column("text", Text, nullable=False),
    # pending → sent; failed once the worker has used up its tries; expired once
    # expires_at passed undelivered. The text (it may hold a login code) is erased then.
    Column("status", Text, nullable=False, server_default="pending"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("last_error", Text),
    Column("provider", Text),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("sent_at", DateTime(timezone=True)),
    Column("expires_at", DateTime(timezone=True)),  # null: never
)
