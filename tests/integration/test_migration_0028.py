"""Migration 0028 gives every notifications generation its deleted articles and removed
notifications, so an article deleted after the upgrade takes its notifications with it in
each of them."""

from __future__ import annotations

from tests.integration.test_migration_0020 import notifications_upgrade_restores


async def test_0028_gives_every_notifications_generation_its_deleted_articles(
    run_id: str,
) -> None:
    await notifications_upgrade_restores(
        run_id,
        "mig28",
        "DROP TABLE {schema}.deleted_articles; DROP TABLE {schema}.removed_notifications; "
        "DROP INDEX {schema}.notifications_by_article",
        "0027",
        {
            "deleted_articles_pkey": "(article_id)",
            "removed_notifications_pkey": "(id)",
            "notifications_by_article": "(article_id) WHERE (article_id IS NOT NULL)",
        },
    )
