"""Changes to read models already built, made wherever a generation is kept.

A read model's generations live in the main database, where Alembic reaches them, and in
any database ``bloghub migrate`` moved one to, where it does not. So each such change is
a step here, written once: its Alembic revision runs it over the main database's
generations (``upgrade_main``), and ``bloghub db upgrade`` then runs every step over each
migration's target (``reach_targets``), recording there what it applied
(``read_model_upgrades``), so each step runs once per store. Until a target is reached,
its projector waits on it (a missing column is ``SchemaBehind``) instead of
dead-lettering anything.

Steps are idempotent (``IF NOT EXISTS``, folds that leave folded rows alone), and a
generation whose table is not there (not built yet, or a source schema dropped after a
migration, as the runbook says) is left alone: what is built later comes from the
current tables."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from bloghub.adapters.postgres.engine import make_engine
from bloghub.adapters.postgres.generations import schema_name
from bloghub.adapters.postgres.migrations import Migration, all_migrations, shown_url
from bloghub.readmodels import tag_key

Step = Callable[[Connection, str], None]


@dataclass(frozen=True, slots=True)
class Upgrade:
    revision: str  # the Alembic revision that brings it to the main database
    projector: str
    table: str  # whose presence says the generation's tables are built
    step: Step


def _collectors(conn: Connection, schema: str) -> None:
    """``collect_cnt`` recounted by readers, not entries, where it does not agree."""
    conn.execute(
        text(
            f'UPDATE "{schema}".article_stats s SET collect_cnt = coalesce(c.n, 0) '
            f'FROM "{schema}".article_stats t LEFT JOIN (SELECT article_id, '
            f'count(DISTINCT user_id) AS n FROM "{schema}".collection_items GROUP BY article_id) c '
            "ON c.article_id = t.article_id "
            "WHERE s.article_id = t.article_id AND s.collect_cnt <> coalesce(c.n, 0)"
        )
    )


def _erased_users(conn: Connection, schema: str) -> None:
    conn.execute(
        text(f'CREATE TABLE IF NOT EXISTS "{schema}".erased_users (user_id uuid PRIMARY KEY)')
    )


def _read_marks_part(conn: Connection, schema: str) -> None:
    conn.execute(text(f'ALTER TABLE "{schema}".read_marks ADD COLUMN IF NOT EXISTS part smallint'))
    conn.execute(
        text(
            f'CREATE INDEX IF NOT EXISTS read_marks_by_part ON "{schema}".read_marks '
            "(part, counted_at)"
        )
    )


def _comment_threads(conn: Connection, schema: str) -> None:
    conn.execute(
        text(
            f'CREATE TABLE IF NOT EXISTS "{schema}".comment_threads ('
            "comment_id uuid PRIMARY KEY, article_id uuid NOT NULL, parent_id uuid, "
            "deleted boolean NOT NULL DEFAULT false)"
        )
    )
    conn.execute(
        text(
            f'CREATE INDEX IF NOT EXISTS comment_threads_by_parent ON "{schema}".comment_threads '
            "(parent_id) WHERE parent_id IS NOT NULL"
        )
    )
    conn.execute(
        text(
            f'CREATE INDEX IF NOT EXISTS notifications_by_comment ON "{schema}".notifications '
            "(comment_id) WHERE comment_id IS NOT NULL"
        )
    )


def _deleted_articles(conn: Connection, schema: str) -> None:
    conn.execute(
        text(
            f'CREATE TABLE IF NOT EXISTS "{schema}".deleted_articles (article_id uuid PRIMARY KEY)'
        )
    )
    conn.execute(
        text(
            f'CREATE TABLE IF NOT EXISTS "{schema}".removed_notifications (id uuid PRIMARY KEY, '
            "user_id uuid NOT NULL, created_at timestamptz NOT NULL)"
        )
    )
    conn.execute(
        text(
            f'CREATE INDEX IF NOT EXISTS notifications_by_article ON "{schema}".notifications '
            "(article_id) WHERE article_id IS NOT NULL"
        )
    )


def _tag_keys(conn: Connection, schema: str) -> None:
    """Tags folded to their key (in Python, as the projector folds them: PostgreSQL's
    ``lower`` depends on the database's locale) and their counts rebuilt. The tag rows are
    locked meanwhile, so a projector batch either committed before (and is folded) or
    waits and writes folded tags."""
    conn.execute(text(f'LOCK TABLE "{schema}".article_tags IN EXCLUSIVE MODE'))
    written = conn.execute(text(f'SELECT DISTINCT tag FROM "{schema}".article_tags'))
    moved = [(tag, tag_key(tag)) for (tag,) in written if tag_key(tag) != tag]
    if not moved:
        return
    tags = [tag for tag, _ in moved]
    # An article keeps one tag per key already; ON CONFLICT covers one from before that.
    conn.execute(
        text(
            f'INSERT INTO "{schema}".article_tags (article_id, tag) '
            f'SELECT t.article_id, m.key FROM "{schema}".article_tags t '
            "JOIN unnest(CAST(:tags AS text[]), CAST(:keys AS text[])) AS m(tag, key) "
            "ON t.tag = m.tag ON CONFLICT DO NOTHING"
        ),
        {"tags": tags, "keys": [key for _, key in moved]},
    )
    conn.execute(
        text(f'DELETE FROM "{schema}".article_tags WHERE tag = ANY(CAST(:tags AS text[]))'),
        {"tags": tags},
    )
    conn.execute(text(f'DELETE FROM "{schema}".tag_counts'))
    conn.execute(
        text(
            f'INSERT INTO "{schema}".tag_counts (tag, articles) '
            f'SELECT tag, count(*) FROM "{schema}".article_tags GROUP BY tag'
        )
    )


def _published_updated_at(conn: Connection, schema: str) -> None:
    """The column, filled for a published row whose last change was its publish (one
    edited since shows its last change until a replay fills it from the log)."""
    conn.execute(
        text(
            f'ALTER TABLE "{schema}".articles '
            "ADD COLUMN IF NOT EXISTS published_updated_at timestamptz"
        )
    )
    conn.execute(
        text(
            f'UPDATE "{schema}".articles SET published_updated_at = updated_at '
            "WHERE published_updated_at IS NULL AND published_version = version"
        )
    )


UPGRADES = (
    Upgrade("0017", "interactions", "collection_items", _collectors),
    Upgrade("0018", "social", "follows", _erased_users),
    Upgrade("0019", "interactions", "read_marks", _read_marks_part),
    Upgrade("0020", "notifications", "notifications", _comment_threads),
    Upgrade("0022", "articles", "article_tags", _tag_keys),
    Upgrade("0023", "articles", "articles", _published_updated_at),
    # The same fold again once ``tag_key`` folded compatibility forms (full width) too.
    Upgrade("0026", "articles", "article_tags", _tag_keys),
    Upgrade("0028", "notifications", "notifications", _deleted_articles),
)
_BY_REVISION = {u.revision: u for u in UPGRADES}


def apply_in(conn: Connection, upgrade: Upgrade, schema: str) -> bool:
    """The step over one generation's schema; False (nothing done) if it is not built."""
    table = conn.execute(text("SELECT to_regclass(:t)"), {"t": f'"{schema}".{upgrade.table}'})
    if table.scalar() is None:
        return False
    upgrade.step(conn, schema)
    return True


def generation_schemas(conn: Connection, projector: str) -> list[str]:
    """The schemas of every generation of ``projector`` this database keeps."""
    rows = conn.execute(
        text("SELECT generation FROM projector_generations WHERE projector = :p"),
        {"p": projector},
    )
    return [schema_name(projector, generation) for (generation,) in rows.all()]


def upgrade_main(conn: Connection, revision: str) -> None:
    """An Alembic revision's upgrade: its step over every generation this database keeps."""
    upgrade = _BY_REVISION[revision]
    for schema in generation_schemas(conn, upgrade.projector):
        apply_in(conn, upgrade, schema)


_LEDGER = text(
    "CREATE TABLE IF NOT EXISTS read_model_upgrades ("
    "schema_name text NOT NULL, revision text NOT NULL, "
    "applied_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (schema_name, revision))"
)
_DONE = text("SELECT revision FROM read_model_upgrades WHERE schema_name = :s")
_RECORD = text(
    "INSERT INTO read_model_upgrades (schema_name, revision) VALUES (:s, :r) ON CONFLICT DO NOTHING"
)


def built_current(conn: Connection, projector: str, schema: str) -> None:
    """Record in this database every step of ``projector`` as done for ``schema``, which was
    just built from the current tables (a migration's new target): the next ``bloghub db
    upgrade`` would only run them again over live tables, some under a table lock."""
    conn.execute(_LEDGER)
    for upgrade in UPGRADES:
        if upgrade.projector == projector:
            conn.execute(_RECORD, {"s": schema, "r": upgrade.revision})


@dataclass(frozen=True, slots=True)
class Reached:
    """What ``reach_targets`` did for one migration's target."""

    migration: Migration
    applied: tuple[str, ...] = ()  # revisions applied now
    failed: str | None = None  # why it could not be reached or upgraded

    def __str__(self) -> str:
        where = (
            f"{self.migration.projector} g{self.migration.generation} at "
            f"{shown_url(self.migration.target_url)}"
        )
        if self.failed is not None:
            return (
                f"not upgraded: {where}: {self.failed}; run `bloghub db upgrade` again once "
                "it is back (its projector waits on it meanwhile)"
            )
        done = ", ".join(self.applied) if self.applied else "nothing to do"
        return f"upgraded {where}: {done}"


async def reach_targets(main: AsyncEngine) -> list[Reached]:
    """Every step of each migrated projector not yet applied in its target, in revision
    order, each with its record in one transaction there."""
    async with main.connect() as conn:
        migrations = await all_migrations(conn)
    return [await _reach(m) for m in migrations.values()]


async def _reach(migration: Migration) -> Reached:
    upgrades = [u for u in UPGRADES if u.projector == migration.projector]
    if not upgrades:
        return Reached(migration)
    schema = schema_name(migration.projector, migration.generation)
    engine = make_engine(migration.target_url, pool_size=1, app="bloghub-upgrade")
    applied: list[str] = []
    try:
        async with engine.begin() as conn:
            await conn.execute(_LEDGER)
            done = set((await conn.execute(_DONE, {"s": schema})).scalars())
        for upgrade in upgrades:
            if upgrade.revision in done:
                continue
            async with engine.begin() as conn:
                if await conn.run_sync(apply_in, upgrade, schema):
                    await conn.execute(_RECORD, {"s": schema, "r": upgrade.revision})
                    applied.append(upgrade.revision)
    except Exception as exc:  # reported per target; the others are still reached
        reason = getattr(exc, "orig", None) or exc
        return Reached(migration, tuple(applied), f"{type(reason).__name__}: {reason}")
    finally:
        await engine.dispose()
    return Reached(migration, tuple(applied))
