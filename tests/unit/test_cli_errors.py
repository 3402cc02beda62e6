"""What an operator's command says for a failure of a known kind depends on the command:
the upgrade itself is never told to run the upgrade, and a migration's commands name the
target they also reach."""

from __future__ import annotations

from bloghub.cli_errors import explained
from bloghub.settings import Mode, Settings


class StoreError(Exception):
    """A driver error as asyncpg raises them: its SQLSTATE in ``sqlstate``."""

    def __init__(self, sqlstate: str, message: str) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


def settings() -> Settings:
    return Settings(mode=Mode.TEST)


def test_a_missing_table_is_the_upgrades_to_run_except_for_the_upgrade_itself() -> None:
    missing = StoreError("42P01", 'relation "articles_g1.article_tags" does not exist')
    said = explained(missing, settings(), "lag")
    assert said is not None
    assert "run `bloghub db upgrade`" in said
    assert explained(missing, settings(), "db") is None, "kept with its traceback"


def test_an_unreachable_database_names_the_migrations_target_for_migrate() -> None:
    refused = StoreError("08001", "could not connect")
    for_lag = explained(refused, settings(), "lag")
    for_migrate = explained(refused, settings(), "migrate")
    assert for_lag is not None
    assert for_migrate is not None
    assert "cannot reach PostgreSQL" in for_lag
    assert "migration's target" not in for_lag
    assert "migration's target" in for_migrate
