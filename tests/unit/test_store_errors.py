"""Store errors are told apart at the adapters: a store that is unwell (wait) from data
the store refused (the writer's fault)."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
from redis.exceptions import OutOfMemoryError, ReadOnlyError, ResponseError

from bloghub.adapters.opensearch import check_bulk
from bloghub.adapters.postgres.engine import is_transient
from bloghub.adapters.postgres.engine import translate as translate_pg
from bloghub.adapters.redis.errors import translate
from bloghub.errors import StoreRejected, Transient


def bulk(*items: tuple[int, str | None]) -> dict[str, Any]:
    def item(status: int, kind: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {"_id": "d", "status": status}
        if kind is not None:
            body["error"] = {"type": kind, "reason": "…"}
        return {"index": body}

    return {"errors": True, "items": [item(s, k) for s, k in items]}


@pytest.mark.parametrize(
    "unwell",
    [(429, "es_rejected_execution_exception"), (503, None), (403, "cluster_block_exception")],
)
def test_a_bulk_answer_with_an_unwell_item_is_waited_for(unwell: tuple[int, str | None]) -> None:
    # The answer is 200, its other items applied: the whole request is sent again, which
    # external versions make harmless.
    with pytest.raises(Transient):
        check_bulk(bulk((201, None), unwell, (400, "mapper_parsing_exception")))


def test_a_bulk_answer_refusing_a_document_is_the_documents_fault() -> None:
    with pytest.raises(StoreRejected):
        check_bulk(bulk((201, None), (400, "mapper_parsing_exception")))


def test_stale_versions_and_missing_deletes_are_success() -> None:
    check_bulk(bulk((201, None), (409, "version_conflict_engine_exception"), (404, None)))
    check_bulk({"errors": False, "items": []})


@pytest.mark.parametrize(
    "error",
    [
        OutOfMemoryError("command not allowed when used memory > 'maxmemory'."),
        ReadOnlyError("You can't write against a read only replica."),
        ResponseError("BUSY Redis is busy running a script."),
        ResponseError("MISCONF Redis is configured to save RDB snapshots"),
        ResponseError("Command # 1 (HSET k f 1) of pipeline caused error: ('BUSY Redis is busy',)"),
    ],
)
def test_redis_refusing_writes_is_transient(error: ResponseError) -> None:
    assert isinstance(translate(error), Transient)


def test_a_wrong_redis_command_stays_what_it_is() -> None:
    wrong = ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value")
    assert translate(wrong) is wrong


@pytest.mark.parametrize(
    "sqlstate", ["25006", "53300", "53100", "53200", "57014", "57P01", "57P03", "08006", "40P01"]
)
def test_postgres_unwell_states_are_transient(sqlstate: str) -> None:
    assert is_transient(sqlstate)


@pytest.mark.parametrize("sqlstate", ["23505", "23502", "22001", "42601"])
def test_postgres_statement_errors_are_not(sqlstate: str) -> None:
    assert not is_transient(sqlstate)


@pytest.mark.parametrize(
    "broken",
    [
        asyncpg.InterfaceError("connection is closed"),
        asyncpg.InternalClientError(
            "cannot switch to state 12; another operation (2) is in progress"
        ),
    ],
)
def test_a_connection_the_driver_calls_broken_is_transient(broken: Exception) -> None:
    # A session the server ended (a failover): another connection will do, so the caller
    # gets 503 with Retry-After, not 500.
    assert isinstance(translate_pg(broken), Transient)
