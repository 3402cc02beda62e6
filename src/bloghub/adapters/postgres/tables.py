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
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, UUID

SHARED_SCHEMA = "public"
shared = MetaData(schema=SHARED_SCHEMA)

# The kinds of key a person holds (freed when they are erased), spelled out as the
# predicate of the partial index by owner (migration 0021): a query repeating it in its
# text may use the index even as a prepared statement with a generic plan.
PERSONAL_KINDS = ("email", "phone", "wechat", "username")
PERSONAL_KINDS_SQL = f"kind IN ({', '.join(repr(kind) for kind in PERSONAL_KINDS)})"

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
    # What an account holds (its usernames, its phones), read by the commands that change
    # them; the other kinds (slugs, article versions) are never looked up by owner.
    Index(
        "reservations_personal_by_owner",
        "owner_id",
        "kind",
        postgresql_where=text(PERSONAL_KINDS_SQL),
    ),
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
    # The position of the last password change, reset or erasure ("topic|partition|offset"
    # joined by ";"): logins wait for the users projector to pass it (migration 0024).
    Column("credentials_changed", Text),
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

# Moves of a projector's read model to another database (``bloghub migrate``): one row per
# projector being moved or moved, read by every API and projector process beside the
# generations above. ``target_url`` is a database URL with its credentials.
migrations = Table(
    "projector_migrations",
    shared,
    Column("projector", Text, primary_key=True),
    Column("generation", Integer, nullable=False),
    Column("target_url", Text, nullable=False),
    Column("phase", Integer, nullable=False),
    Column("changed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint("phase BETWEEN 1 AND 4", name="projector_migrations_phase"),
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
    # The avatar URL (Conduit's ``image``). Added by migration 0015, so last, as it is in
    # the generations that migration changed.
    Column("image", Text),
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
    # When the published version last changed (its last publish): what readers see as the
    # article's update time, which an edit of its draft does not move. Added by 0023.
    Column("published_updated_at", DateTime(timezone=True)),
    # The URL name (unique by the write-side index, kind "slug"; never unique here: a
    # rename and the slug's next owner may apply in either order). Added by 0015.
    Column("slug", Text),
    # The author's one-line summaries (draft, published), when they wrote one. Added by 0015.
    Column("description", Text),
    Column("published_description", Text),
    Index("articles_by_author", "author_id", "id"),
    Index("articles_by_slug", "slug", postgresql_where=text("slug IS NOT NULL")),
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

social_model = MetaData()

# Who follows whom, since when (the follow event's time): newest first both ways.
follows = Table(
    "follows",
    social_model,
    Column("follower_id", UUID(as_uuid=False), nullable=False),
    Column("followee_id", UUID(as_uuid=False), nullable=False),
    Column("followed_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("follower_id", "followee_id"),
    Index("follows_followers_newest", "followee_id", "followed_at", "follower_id"),
    Index("follows_followees_newest", "follower_id", "followed_at", "followee_id"),
)

# Followers and followees per user, moved only by the relation rows a batch really added
# or removed, so a count is always the size of its set and never negative.
follow_counts = Table(
    "follow_counts",
    social_model,
    Column("user_id", UUID(as_uuid=False), primary_key=True),
    Column("followers", BigInteger, nullable=False, server_default=text("0")),
    Column("followees", BigInteger, nullable=False, server_default=text("0")),
)

# Accounts erased (from the users family). The erasure removes every follow by or of the
# account; a follow applied after it (the families are separate partitions, read in either
# order, live or in a replay) is dropped, so both runs end with the same relations.
erased_users = Table(
    "erased_users",
    social_model,
    Column("user_id", UUID(as_uuid=False), primary_key=True),
)

# The feed's own copy of every published article's place in time (the first publish's
# event time), kept by the social projector from the articles family, so a feed page is
# one query in one schema: per followee, an index walk of at most one page (see README).
feed_articles = Table(
    "feed_articles",
    social_model,
    Column("article_id", UUID(as_uuid=False), primary_key=True),
    Column("author_id", UUID(as_uuid=False), nullable=False),
    Column("version", Integer, nullable=False),
    Column("published_at", DateTime(timezone=True), nullable=False),
    Column("visible", Boolean, nullable=False),
    Index(
        "feed_articles_by_author_newest",
        "author_id",
        "published_at",
        "article_id",
        postgresql_where=text("visible"),
    ),
)

comments_model = MetaData()

# Live comments only: deleting one removes its row and its whole subtree. Ids are UUIDv7,
# so id order is posting order. ``replies`` is kept on a top-level comment: its thread's
# size without it.
comments = Table(
    "comments",
    comments_model,
    Column("id", UUID(as_uuid=False), primary_key=True),
    Column("article_id", UUID(as_uuid=False), nullable=False),
    Column("article_author_id", UUID(as_uuid=False), nullable=False),
    Column("author_id", UUID(as_uuid=False), nullable=False),
    Column("parent_id", UUID(as_uuid=False)),
    Column("root_id", UUID(as_uuid=False)),
    Column("content", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("replies", BigInteger, nullable=False, server_default=text("0")),
    # The public number (RealWorld's integer id), unique by the write-side index (kind
    # "comment_number"); null for comments from before numbers. Added by 0015, so last.
    Column("number", BigInteger),
    Index("comments_by_number", "number", postgresql_where=text("number IS NOT NULL")),
    Index("comments_roots", "article_id", "id", postgresql_where=text("root_id IS NULL")),
    Index("comments_threads", "root_id", "id", postgresql_where=text("root_id IS NOT NULL")),
    Index("comments_children", "parent_id", postgresql_where=text("parent_id IS NOT NULL")),
)

# Live comments per article, shown with the article.
comment_counts = Table(
    "comment_counts",
    comments_model,
    Column("article_id", UUID(as_uuid=False), primary_key=True),
    Column("comments", BigInteger, nullable=False),
)

# The article version each ``article_stats`` row reflects: a publish decided on a stale
# read (a version the article has passed) must not show a withdrawn article again.
article_versions = Table(
    "article_versions",
    interactions_model,
    Column("article_id", UUID(as_uuid=False), primary_key=True),
    Column("version", Integer, nullable=False),
)

# Who likes what: the like set whose size ``article_stats.like_cnt`` is, and what the
# caller's ``liked`` reads. Rows of an article hidden since are kept, frozen with its counts.
likes = Table(
    "likes",
    interactions_model,
    Column("article_id", UUID(as_uuid=False), nullable=False),
    Column("user_id", UUID(as_uuid=False), nullable=False),
    Column("liked_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("article_id", "user_id"),
    Index("likes_by_user", "user_id", "article_id"),
)

# Each user's named collections. Never unique by name: two of a user's creates may apply
# in any order (the write side decides nothing about names).
collections = Table(
    "collections",
    interactions_model,
    Column("id", UUID(as_uuid=False), primary_key=True),
    Column("owner_id", UUID(as_uuid=False), nullable=False),
    Column("name", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("collections_by_owner", "owner_id", "created_at", "id"),
)

# The articles in each collection: ``collect_cnt`` is the number of these rows of an
# article (one per collection it is in; putting it in the same collection twice counts once).
collection_items = Table(
    "collection_items",
    interactions_model,
    Column("collection_id", UUID(as_uuid=False), nullable=False),
    Column("article_id", UUID(as_uuid=False), nullable=False),
    Column("user_id", UUID(as_uuid=False), nullable=False),
    Column("added_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("collection_id", "article_id"),
    Index("collection_items_newest", "collection_id", "added_at", "article_id"),
    Index("collection_items_by_user", "user_id", "article_id"),
)

# The last read of each article counted per reader: another read within the hour after it
# is not counted. Rows older than an hour no longer decide anything.
read_marks = Table(
    "read_marks",
    interactions_model,
    Column("article_id", UUID(as_uuid=False), nullable=False),
    Column("reader", Text, nullable=False),
    Column("counted_at", DateTime(timezone=True), nullable=False),
    # The log partition of the article's events: marks are dropped per partition, by its
    # time (projections/interaction_fold.py: marks_expire_before). Null in rows from before
    # migration 0019, which a replay rebuilds with it.
    Column("part", SmallInteger, nullable=True),
    PrimaryKeyConstraint("article_id", "reader"),
    Index("read_marks_by_part", "part", "counted_at"),
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
    # A deleted comment's notifications, and its replies', go with it.
    Index(
        "notifications_by_comment", "comment_id", postgresql_where=text("comment_id IS NOT NULL")
    ),
    # A deleted article's notifications (its comments, replies and like milestones) too.
    Index(
        "notifications_by_article", "article_id", postgresql_where=text("article_id IS NOT NULL")
    ),
)

# Articles deleted, as the notifications projector has seen them: a comment or a like on
# one (articles and their comments or likes are on different topics, in no fixed order)
# applied after its delete notifies no one. Migration 0028.
deleted_articles = Table(
    "deleted_articles",
    notifications_model,
    Column("article_id", UUID(as_uuid=False), primary_key=True),
)

# Notifications removed with their comment or article: where each sat in its user's list,
# so marking read "up to" one a client still shows marks the older ones. Migration 0028.
removed_notifications = Table(
    "removed_notifications",
    notifications_model,
    Column("id", UUID(as_uuid=False), primary_key=True),
    Column("user_id", UUID(as_uuid=False), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# The projector's own comment trees (comment events are keyed by article, so a reply comes
# after its parent and a delete after what it deletes): a delete finds the replies under
# the comment, at any depth, whether or not they notified anyone. A deleted comment stays
# as a tombstone, so a reply to it applied later is dropped, as the comments projector
# drops it. Comments from before migration 0020 have no row until a replay.
comment_threads = Table(
    "comment_threads",
    notifications_model,
    Column("comment_id", UUID(as_uuid=False), primary_key=True),
    Column("article_id", UUID(as_uuid=False), nullable=False),
    Column("parent_id", UUID(as_uuid=False)),
    Column("deleted", Boolean, nullable=False, server_default=text("false")),
    Index("comment_threads_by_parent", "parent_id", postgresql_where=text("parent_id IS NOT NULL")),
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

READ_MODELS: dict[str, MetaData] = {
    "users": users_model,
    "articles": articles_model,
    "interactions": interactions_model,
    "social": social_model,
    "comments": comments_model,
    "notifications": notifications_model,
}
