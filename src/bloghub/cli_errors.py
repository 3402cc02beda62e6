"""What an operator's command says when it cannot work at all: settings that do not
validate, a service it cannot reach, a database that has not been upgraded. One line on
stderr naming the fault and what to do (``bloghub`` then exits 2); a failure of another
kind is not explained here and keeps its traceback."""

from __future__ import annotations

import argparse
import re
import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

from pydantic import ValidationError
from pydantic_settings import SettingsError

from bloghub.errors import SchemaBehind
from bloghub.settings import InsecureSettings, Settings

EXIT_CODE = 2

# Where a library's code sits in a traceback: the service its error came from.
_SERVICE_OF_MODULE = (
    ("asyncpg", "PostgreSQL"),
    ("sqlalchemy", "PostgreSQL"),
    ("aiokafka", "Kafka"),
    ("redis", "Redis"),
    ("opensearchpy", "OpenSearch"),
)
_SETTING_OF_SERVICE = {
    "PostgreSQL": "BLOGHUB_DATABASE_URL",
    "Kafka": "BLOGHUB_KAFKA_BOOTSTRAP",
    "Redis": "BLOGHUB_REDIS_URL",
    "OpenSearch": "BLOGHUB_OPENSEARCH_URL",
}
# undefined table, undefined column, undefined schema
_SCHEMA_SQLSTATES = {"42P01", "42703", "3F000"}
_RELATION = re.compile(r'relation "([^"]+)" does not exist')


def explained(exc: BaseException, settings: Settings | None, command: str = "") -> str | None:
    """The one line for a failure of a known kind, or ``None``. ``command``: the one that
    failed (``db`` itself is never told to run ``bloghub db upgrade``: a schema error there
    is a fault of the upgrade, kept with its traceback)."""
    chain = list(_chain(exc))
    for e in chain:
        if isinstance(e, InsecureSettings):
            return f"{_as_variables(str(e))}: set your own values (BLOGHUB_* environment variables)"
        if isinstance(e, ValidationError):
            return _invalid_settings(e)
        if isinstance(e, SettingsError):
            return _unparsed_setting(e)
    for e in chain if command != "db" else ():
        if _schema_behind(e):
            found = _RELATION.search(str(e))
            what = f"has no table {found.group(1)}" if found else "is behind this code"
            where = f" {_database(settings)}" if settings is not None else ""
            return f"the database{where} {what}: run `bloghub db upgrade`"
    for e in chain:
        if _no_such_redis_database(e):
            where = f" at {_address('Redis', settings)}" if settings is not None else ""
            return (
                f"Redis{where} has no database of the URL's number ({e}): check "
                f"{_SETTING_OF_SERVICE['Redis']} (its path is the database, 0 to 15 by default)"
            )
    for e in chain:
        said = _search_path_missed(e, settings)
        if said is not None:
            return said
    for e in chain:
        service = _unreachable_service(e)
        if service is not None:
            # A migration's commands also reach its target, a database of its own.
            also = " (or the migration's target: `bloghub migrate status`)"
            said = _unreachable(service, _reason(chain), settings)
            return said + also if service == "PostgreSQL" and command == "migrate" else said
    return None


def say_refused(exc: BaseException) -> int:
    """A command's refusal, on stderr (stdout is the answer) in one line however long,
    as every other one-line fault: the exit code to end with."""
    from rich.console import Console
    from rich.markup import escape

    Console(stderr=True, soft_wrap=True).print(
        f"[red]refused:[/red] {escape(str(exc))}", highlight=False
    )
    return EXIT_CODE


def quiet_leftovers() -> None:
    """A command that stopped on a known failure may leave clients it never got to close
    (a Kafka consumer whose start failed): asyncio's complaints about them as they are
    collected would bury the one line that explains the stop."""
    import logging

    logging.getLogger("asyncio").setLevel(logging.CRITICAL)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    todo = [exc]
    while todo:
        e = todo.pop(0)
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        if isinstance(e, BaseExceptionGroup):
            todo.extend(e.exceptions)
        for linked in (e.__cause__, e.__context__, getattr(e, "orig", None)):
            if isinstance(linked, BaseException):
                todo.append(linked)


def _invalid_settings(exc: ValidationError) -> str:
    said = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(p) for p in error["loc"])
        name = f"BLOGHUB_{where.upper()}: " if where else ""
        # A rule over several settings names them as fields: said as their variables.
        message = _as_variables(error["msg"].removeprefix("Value error, "))
        said.append(f"{name}{message}")
    return f"invalid settings: {'; '.join(said)}"


# Names of two words or more: "mode" or "prefix" in a message is a word, not a setting.
_FIELDS = sorted((f for f in Settings.model_fields if "_" in f), key=len, reverse=True)
# A quoted value is the operator's own text, kept as given.
_FIELD = re.compile(r"'[^']*'|\b(" + "|".join(_FIELDS) + r")\b")
_UNPARSED = re.compile(r'field "(\w+)"')


def _variable(found: re.Match[str]) -> str:
    return f"BLOGHUB_{found.group(1).upper()}" if found.group(1) else found.group(0)


def _as_variables(message: str) -> str:
    """``message`` with the settings it names as fields named as their variables."""
    return _FIELD.sub(_variable, message)


def _unparsed_setting(exc: SettingsError) -> str:
    """A setting of several values that is not JSON (pydantic-settings reads a list so)."""
    field = _UNPARSED.search(str(exc))
    name = _variable(field) if field else "a BLOGHUB_* setting"
    return f'invalid settings: {name}: not JSON; give a list as ["first", "second"]'


def _search_path_missed(exc: BaseException, settings: Settings | None) -> str | None:
    """A 404 from OpenSearch under a URL with a path: opensearch-py puts the path before
    every request's, so a path no proxy strips names an index, and every request misses."""
    from opensearchpy.exceptions import NotFoundError

    path = urlsplit(settings.opensearch_url).path.strip("/") if settings is not None else ""
    if settings is None or not path or not isinstance(exc, NotFoundError):
        return None
    return (
        f"OpenSearch at {_address('OpenSearch', settings)} answered 404 ({exc.error}): the "
        f"URL's path /{path} is put before every request; check "
        f"{_SETTING_OF_SERVICE['OpenSearch']} (http://HOST:9200: a path only for a proxy "
        "that strips it)"
    )


def _no_such_redis_database(exc: BaseException) -> bool:
    from redis.exceptions import ResponseError

    return isinstance(exc, ResponseError) and "DB index is out of range" in str(exc)


def _schema_behind(exc: BaseException) -> bool:
    return isinstance(exc, SchemaBehind) or getattr(exc, "sqlstate", None) in _SCHEMA_SQLSTATES


def _unreachable_service(exc: BaseException) -> str | None:
    from aiokafka.errors import KafkaConnectionError
    from opensearchpy.exceptions import ConnectionError as SearchConnectionError
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    if isinstance(exc, KafkaConnectionError):
        return "Kafka"
    if isinstance(exc, RedisConnectionError | RedisTimeoutError):
        return "Redis"
    if isinstance(exc, SearchConnectionError):
        return "OpenSearch"
    sqlstate = getattr(exc, "sqlstate", None)
    if isinstance(sqlstate, str) and (sqlstate[:2] in {"08", "28"} or sqlstate == "3D000"):
        return "PostgreSQL"  # no connection, refused login, no such database
    if isinstance(exc, OSError):  # refused, unknown host, timed out
        return _service_in_traceback(exc)
    return None


def _service_in_traceback(exc: BaseException) -> str | None:
    """The service whose client raised ``exc``: the innermost library frame tells."""
    tb = exc.__traceback__
    found = None
    while tb is not None:
        module = str(tb.tb_frame.f_globals.get("__name__", ""))
        top = module.split(".", 1)[0]
        for name, service in _SERVICE_OF_MODULE:
            if top == name:
                found = service
        tb = tb.tb_next
    return found


def _reason(chain: list[BaseException]) -> str:
    """The innermost words: the operating system's or the server's, not a wrapper's."""
    for e in reversed(chain):
        if isinstance(e, ConnectionRefusedError):
            return "connection refused"
        if isinstance(e, socket.gaierror):
            return "unknown host"
        if isinstance(e, TimeoutError):
            return "timed out"
        if getattr(e, "sqlstate", None) is not None:
            return str(e).splitlines()[0]
    return ""


def _unreachable(service: str, reason: str, settings: Settings | None) -> str:
    where = f" at {_address(service, settings)}" if settings is not None else ""
    setting = _SETTING_OF_SERVICE[service]
    why = f" ({reason})" if reason else ""
    return f"cannot reach {service}{where}{why}: check {setting} and that {service} runs"


def where(service: str, settings: Settings) -> dict[str, str]:
    """What a process that waits for ``service`` logs of it: the address it is looked for
    at (without a password) and the setting that names it."""
    return {"at": _address(service, settings), "setting": _SETTING_OF_SERVICE[service]}


def _address(service: str, settings: Settings) -> str:
    if service == "PostgreSQL":
        return _database(settings)
    if service == "Kafka":
        return settings.kafka_bootstrap
    if service == "Redis":
        return _no_password(settings.redis_url.get_secret_value())
    return _no_password(settings.opensearch_url)


def _database(settings: Settings) -> str:
    from bloghub.adapters.postgres.migrations import shown_url

    return shown_url(settings.sqlalchemy_url)


def _no_password(url: str) -> str:
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(the configured address)"
    return f"{parts.scheme}://{host}{port}{parts.path}"


def at_least_one(text: str) -> int:
    """An argument that counts processes or workers: a whole number, 1 or more."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"at least 1, not {value}")
    return value
