"""Every projector the system runs, by name, whatever its store."""

from __future__ import annotations

from bloghub.events.topics import Family
from bloghub.projections.articles import ArticlesProjector
from bloghub.projections.comments import CommentsProjector
from bloghub.projections.interactions import InteractionsProjector
from bloghub.projections.notifications import NotificationsProjector
from bloghub.projections.postgres_sink import PostgresProjector
from bloghub.projections.redis_sink import RedisProjector
from bloghub.projections.search import ArticleSearchProjector
from bloghub.projections.search_sink import SearchProjector
from bloghub.projections.social import SocialProjector
from bloghub.projections.user_search import UserSearchProjector
from bloghub.projections.users import UsersProjector

# A projector class of any store; each is built by ``from_stores`` (stores.py).
ProjectorClass = type[PostgresProjector] | type[RedisProjector] | type[SearchProjector]

POSTGRES_PROJECTORS: dict[str, type[PostgresProjector]] = {
    UsersProjector.name: UsersProjector,
    ArticlesProjector.name: ArticlesProjector,
    # Follows and the feed; comment trees.
    SocialProjector.name: SocialProjector,
    CommentsProjector.name: CommentsProjector,
    InteractionsProjector.name: InteractionsProjector,
    NotificationsProjector.name: NotificationsProjector,
}

# Every projector: the worker runs these (all of them unless told which), the replay tool
# rebuilds them. Add a projector of any store here.
PROJECTORS: dict[str, ProjectorClass] = {**POSTGRES_PROJECTORS}

# Search (OpenSearch): articles and users.
PROJECTORS[ArticleSearchProjector.name] = ArticleSearchProjector
PROJECTORS[UserSearchProjector.name] = UserSearchProjector

# What each projector consumes, by name: the ops monitor watches every one of them.
PROJECTOR_FAMILIES: dict[str, tuple[Family, ...]] = {
    name: cls.families for name, cls in PROJECTORS.items()
}
