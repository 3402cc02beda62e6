"""SQLAlchemy Core tables.

``shared`` holds what every generation shares (the write-side index, checkpoints, the
generation registry). Each projector's read-model tables live in ``READ_MODELS[name]``
without a schema; they are placed in the projector's generation schema
(``<projector>_g<N>``) through ``schema_translate_map``, so one definition serves every
generation. A read-model schema change is a new generation rebuilt from the log, not an
ALTER on live tables.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, UUID

SHARED_SCHEMA = "public"
shared = MetaData(schema=SHARED_SCHEMA)

reservations = Table(
    "reservations",
    shared,
    Column("kind", Text, nullable=False),
    Column("value", Text, nullable=False),
    Column("owner_id", Text, nullable=False),
    Column("status", Text, nullable=False, server_default="pending"),
    Column("position", Text),
    Column("reserved_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("confirmed_at", DateTime(timezone=True)),
    PrimaryKeyConstraint("kind", "value"),
)

# One random key per user, wrapped by the master key (``auth/sealing.py``); the personal
# fields of their events are sealed under it. Not a read model: a replay needs it and never
# rebuilds it. Erasing a user sets ``wrapped_key`` to NULL and keeps the row as a tombstone,
# so a late command cannot make the erased account a fresh key.
user_keys = Table(
    "user_keys",
    shared,
    Column("user_id", Text, primary_key=True),
    Column("wrapped_key", LargeBinary),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("erased_at", DateTime(timezone=True)),
)

checkpoints = Table(
    "projector_checkpoints",
    shared,
    Column("projector", Text, nullable=False),
    Column("generation", Integer, nullable=False),
    Column("topic", Text, nullable=False),
    Column("partition", Integer, nullable=False),
    Column("next_offset", BigInteger, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("projector", "generation", "topic", "partition"),
)

generations = Table(
    "projector_generations",
    shared,
    Column("projector", Text, nullable=False),
    Column("generation", Integer, nullable=False),
    Column("state", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("activated_at", DateTime(timezone=True)),
    PrimaryKeyConstraint("projector", "generation"),
)

users_model = MetaData()

users = Table(
    "users",
    users_model,
    Column("id", UUID(as_uuid=False), primary_key=True),
    Column("email", Text),
    Column("password_hash", Text),
    Column("phone", Text),
    Column("wechat_openid", Text),
    Column("wechat_unionid", Text),
    Column("nickname", Text),
    Column("birthday", Date),
    Column("about_me", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # Set once the person is erased: the row stays, every personal column empty, so their
    # articles can still name an author ("deleted user").
    Column("erased_at", DateTime(timezone=True)),
    # Lookups only, never unique: which account holds an email, phone or WeChat id is the
    # write-side index's to say (``reservations``). Accounts' events apply in any order
    # across partitions, so while A's move off a phone waits behind B's taking it, both
    # rows name it; a unique index here would dead-letter B's event and lose its phone
    # (see migration 0009). Partial, since most accounts lack a phone or a WeChat id.
    Index("users_by_email", "email", postgresql_where=text("email IS NOT NULL")),
    Index("users_by_phone", "phone", postgresql_where=text("phone IS NOT NULL")),
    Index(
        "users_by_wechat_openid",
        "wechat_openid",
        postgresql_where=text("wechat_openid IS NOT NULL"),
    ),
)

sessions = Table(
    "sessions",
    users_model,
    Column("id", UUID(as_uuid=False), primary_key=True),
    Column("user_id", UUID(as_uuid=False), nullable=False, index=True),
    Column("method", Text, nullable=False),
    Column("ua_hash", Text, nullable=False),
    Column("refresh_jti", Text, nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("refreshed_at", DateTime(timezone=True)),
    Column("revoked_at", DateTime(timezone=True)),
    Column("revoke_reason", Text),
)

articles_model = MetaData()

# One row per article: the author's draft and, once published, the readers' version.
articles = Table(
    "articles",
    articles_model,
    Column("id", UUID(as_uuid=False), primary_key=True),
    Column("author_id", UUID(as_uuid=False), nullable=False),
    Column("version", Integer, nullable=False),
    Column("status", Text, nullable=False),  # draft | published | withdrawn
    Column("title", Text, nullable=False),
    Column("content", Text, nullable=False),
    Column("tags", ARRAY(Text), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("published_version", Integer),
    Column("published_title", Text),
    Column("published_content", Text),
    Column("published_tags", ARRAY(Text)),
    Column("published_at", DateTime(timezone=True)),
    Index("articles_by_author", "author_id", "id"),
    Index(
        "articles_published_newest",
        "published_at",
        "id",
        postgresql_where=text("status = 'published'"),
    ),
)

# Tags of published articles only: what readers filter by and /v1/tags counts.
article_tags = Table(
    "article_tags",
    articles_model,
    Column("article_id", UUID(as_uuid=False), nullable=False),
    Column("tag", Text, nullable=False),
    PrimaryKeyConstraint("article_id", "tag"),
    Index("article_tags_by_tag", "tag", "article_id"),
)

# Published articles per tag, kept by increments as articles are published, re-published,
# withdrawn and deleted, so /v1/tags reads a few rows instead of counting every tag row. A
# tag whose count reaches zero has no row. (No CHECK on the sign: PostgreSQL checks the row
# an upsert proposes before it finds the conflict, so a decrement could not be an upsert.
# A count is the net of the tag rows the same transactions add and remove, so it cannot
# fall below zero.)
tag_counts = Table(
    "tag_counts",
    articles_model,
    Column("tag", Text, primary_key=True),
    Column("articles", Integer, nullable=False),
)
Index("tag_counts_most_used", tag_counts.c.articles.desc(), tag_counts.c.tag)

interactions_model = MetaData()

# One row per article that was ever published: its counters, and whether readers may see
# it (published, not withdrawn or deleted). Withdrawing freezes the counts; the ranking
# reads its candidates here. ``published_at`` is the first publish's event time.
article_stats = Table(
    "article_stats",
    interactions_model,
    Column("article_id", UUID(as_uuid=False), primary_key=True),
    Column("author_id", UUID(as_uuid=False), nullable=False),
    Column("published_at", DateTime(timezone=True), nullable=False),
    Column("visible", Boolean, nullable=False),
    Column("read_cnt", BigInteger, nullable=False, server_default=text("0")),
    Column("like_cnt", BigInteger, nullable=False, server_default=text("0")),
    Column("collect_cnt", BigInteger, nullable=False, server_default=text("0")),
    Index("article_stats_visible_recent", "published_at", postgresql_where=text("visible")),
)

notifications_model = MetaData()

# What a user is told of: a new follower, a comment on their article, a reply to their
# comment, a like milestone of their article. The id is derived from what caused it (see
# projections/notifications.py), so a replay or a re-delivery can never add a second one;
# ``event_id`` names the event that made it, for the push that follows the commit.
notifications = Table(
    "notifications",
    notifications_model,
    Column("id", UUID(as_uuid=False), primary_key=True),
    Column("user_id", UUID(as_uuid=False), nullable=False),
    Column("kind", Text, nullable=False),  # follower | comment | reply | like_milestone
    Column("actor_id", UUID(as_uuid=False)),
    Column("article_id", UUID(as_uuid=False)),
    Column("comment_id", UUID(as_uuid=False)),
    Column("milestone", BigInteger),
    Column("event_id", UUID(as_uuid=False), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("read", Boolean, nullable=False, server_default=text("false")),
    Index("notifications_newest", "user_id", "created_at", "id"),
    Index("notifications_unread", "user_id", postgresql_where=text("NOT read")),
    Index("notifications_by_event", "event_id"),
)

# Read marks arrive on the users topic, in no fixed order with the notifications they
# name (other topics): an id marked read before its notification is applied is kept here
# and applied when it comes, so the outcome is the same in any order.
notification_marks = Table(
    "notification_marks",
    notifications_model,
    Column("user_id", UUID(as_uuid=False), nullable=False),
    Column("notification_id", UUID(as_uuid=False), nullable=False),
    PrimaryKeyConstraint("user_id", "notification_id"),
)

# "Everything up to here is read", per user: the newest (created_at, id) so marked.
read_watermarks = Table(
    "read_watermarks",
    notifications_model,
    Column("user_id", UUID(as_uuid=False), primary_key=True),
    Column("up_to_at", DateTime(timezone=True), nullable=False),
    Column("up_to_id", UUID(as_uuid=False), nullable=False),
)

# The projector's own like counts (the likers, so a repeated like or unlike moves nothing)
# and the highest milestone already notified, so an unlike and a re-like across a
# milestone never notify it twice.
article_likers = Table(
    "article_likers",
    notifications_model,
    Column("article_id", UUID(as_uuid=False), nullable=False),
    Column("user_id", UUID(as_uuid=False), nullable=False),
    PrimaryKeyConstraint("article_id", "user_id"),
)
like_milestones = Table(
    "like_milestones",
    notifications_model,
    Column("article_id", UUID(as_uuid=False), primary_key=True),
    Column("likes", BigInteger, nullable=False),
    Column("notified", BigInteger, nullable=False, server_default=text("0")),
)

# Who follows whom, as far as presence needs it (GET /v1/users/{id}/presence is for
# followers). The social read model holds the same relation; api/follows.py is the one
# place that reads it, so it can be pointed there and this table dropped.
follows = Table(
    "follows",
    notifications_model,
    Column("follower_id", UUID(as_uuid=False), nullable=False),
    Column("followee_id", UUID(as_uuid=False), nullable=False),
    PrimaryKeyConstraint("followee_id", "follower_id"),
)

READ_MODELS: dict[str, MetaData] = {
    "users": users_model,
    "articles": articles_model,
    "interactions": interactions_model,
    "notifications": notifications_model,
}
