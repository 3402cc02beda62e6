"""All configuration, read from the environment (``BLOGHUB_*``) and validated once.

Development defaults let a fresh checkout run with no configuration; production mode
refuses to start while any secret still has its development value.
"""

from __future__ import annotations

import contextlib
import ipaddress
import math
import os
import re
from enum import StrEnum
from typing import Literal, Self
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from redis.connection import parse_url
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

DEV_SECRET_MARKER = "dev-only-change-me"
# bloghub's engines speak asyncpg. libpq's spellings name the same server, role and
# database, so they are read as asyncpg's (asyncpg_dsn hands libpq's back).
ASYNCPG_SCHEME = "postgresql+asyncpg://"
_LIBPQ_SCHEMES = ("postgresql://", "postgres://")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_BAD_PORT = "its port must be a number from 1 to 65535"


class Mode(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


DEV_DATABASE_PASSWORD = "bloghub"  # the development default's (``database_url``)


def _database_passwords(url: str) -> set[str]:
    """The passwords a database URL gives, however it is written: in its user part
    (percent-decoded) or as a ``password`` query parameter, which the driver also takes."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return set()
    given = parsed.query.get("password", ())
    found = {given} if isinstance(given, str) else set(given)
    if parsed.password is not None:
        found.add(str(parsed.password))
    return found


class InsecureSettings(RuntimeError):
    """Production mode was asked for with development secrets or addresses."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BLOGHUB_", extra="ignore", frozen=True)

    mode: Mode = Mode.DEVELOPMENT
    prefix: str = Field(default="bloghub", pattern=r"^[a-z][a-z0-9_-]{0,40}$")

    kafka_bootstrap: str = "127.0.0.1:9092"
    topic_partitions: int = Field(default=6, ge=1, le=1024)
    topic_replication: int = Field(default=1, ge=1, le=7)
    append_timeout_s: float = Field(default=1.5, gt=0, le=30)
    # How long the producer may go on trying to deliver a record it was handed; past it the
    # producer is retired, so a record can no longer land after it (see events/log.py).
    delivery_timeout_s: float = Field(default=120.0, gt=0, le=3600)
    # How long the producer holds a record for others to join its batch. Commands wait for
    # the append, so every millisecond here is one on each answer; under load the batches
    # fill anyway while the previous produce request is in flight.
    producer_linger_ms: int = Field(default=0, ge=0, le=1000)

    database_url: SecretStr = SecretStr(
        "postgresql+asyncpg://bloghub:bloghub@127.0.0.1:5432/bloghub"
    )
    redis_url: SecretStr = SecretStr("redis://127.0.0.1:6379/0")
    opensearch_url: str = "http://127.0.0.1:9200"

    access_token_secret: SecretStr = SecretStr(f"{DEV_SECRET_MARKER}-access-token-signing-key")
    refresh_token_secret: SecretStr = SecretStr(f"{DEV_SECRET_MARKER}-refresh-token-signing-key")
    access_token_ttl_s: int = Field(default=30 * 60, ge=60)
    # RealWorld clients have no refresh flow: the token `/api` signs in with lasts this long
    # (never past the session's end). Every request still asks the session store, so
    # logging out elsewhere, a password change and a reset end it at once.
    conduit_token_ttl_s: int = Field(default=7 * 24 * 3600, ge=60)
    refresh_token_ttl_s: int = Field(default=7 * 24 * 3600, ge=300)
    # A session ends this long after its login, however often it is refreshed.
    session_lifetime_s: int = Field(default=30 * 24 * 3600, ge=300, le=10 * 366 * 24 * 3600)
    # RealWorld's `PUT /api/user` sends no current password: it may set a new one only this
    # long after the session's sign-in (a token that leaks later cannot take the account).
    password_change_window_s: int = Field(default=600, ge=60, le=24 * 3600)
    # Every token names who issued it and for whom: a token signed with the same key for
    # another deployment or service is refused.
    token_issuer: str = Field(default="bloghub", min_length=1, max_length=200)
    token_audience: str = Field(default="bloghub-api", min_length=1, max_length=200)
    operator_token: SecretStr = SecretStr(f"{DEV_SECRET_MARKER}-operator-token-for-the-ops-pages")
    ops_login_per_minute: int = Field(default=10, ge=1)  # attempts per client address
    # Wrong operator tokens (Bearer or cookie) per client address a minute; past it even the
    # right one waits out the minute.
    ops_token_failures_per_minute: int = Field(default=10, ge=1)
    # Wraps every user's personal-data key (crypto-shredding, auth/sealing.py). Changing it
    # makes the stored keys unreadable: the projectors then wait and say so.
    user_key_secret: SecretStr = SecretStr(f"{DEV_SECRET_MARKER}-user-key-wrapping-secret")
    # /metrics asks for the operator token (Bearer) unless this is set, for a deployment
    # that serves it on an internal address only.
    metrics_public: bool = False

    api_host: str = "127.0.0.1"
    # The reverse proxies in front of the API (IPs or CIDR networks). Only a request whose
    # peer is one of them may name its client in X-Forwarded-For; the rightmost address
    # not in this list is the client. Empty: the socket's peer is the client. Rate limits,
    # lockouts and the security log all key on that address, so a wrong list lets anyone
    # pick their own IP (too wide) or puts every user behind one IP (too narrow).
    trusted_proxies: list[str] = Field(default_factory=list)
    api_port: int = Field(default=8000, ge=1, le=65535)
    # Room for the largest valid article (100 KiB of content) however its JSON escapes
    # it: \uXXXX is six bytes for a one-byte character (Go escapes <, > and & so by
    # default; some encoders escape every character), twelve for a four-byte one, so the
    # content may reach six times its size, 600 KiB; the title and tags take the rest.
    max_body_bytes: int = Field(default=640 * 1024, ge=1024)
    # The HTTP server's bounds on a request's head and pace (``api/http_guard.py``): the
    # request line and headers together (431 past it), the time a begun head has to end
    # (408), and the time a body may send nothing before its connection is closed.
    http_max_head_bytes: int = Field(default=80 * 1024, ge=8 * 1024, le=1024 * 1024)
    http_head_timeout_s: float = Field(default=10.0, gt=0, le=300)
    http_body_idle_timeout_s: float = Field(default=30.0, gt=0, le=600)
    read_wait_s: float = Field(default=2.0, ge=0, le=30)
    # How long an API process waits for one PostgreSQL statement: a server that hangs (not
    # one that refuses: that is answered at once) turns requests into 503s to retry after
    # this, instead of holding them for as long as it hangs.
    db_statement_timeout_s: float = Field(default=10.0, gt=0, le=300)
    # The same for a projector's statements (a batch is one upsert per table, done in
    # milliseconds): a server that hangs, or a lock another session holds, is given up on
    # after this and waited for as a store out of reach (STORE on the dashboard, `waiting`
    # in /readyz), not waited on silently for as long as it lasts.
    projector_statement_timeout_s: float = Field(default=60.0, gt=0, le=3600)
    # Signs the positions handed out in Bloghub-Position; Bloghub-After must carry one.
    position_secret: SecretStr = SecretStr(f"{DEV_SECRET_MARKER}-position-token-signing-key")
    own_write_ttl_s: int = Field(default=60, ge=1)

    batch_max_events: int = Field(default=2000, ge=1)
    batch_max_wait_ms: int = Field(default=100, ge=1)
    # While a lane's partitions are busy, it starts at most one batch per this many ms, so
    # a steady stream is applied in batches of many events rather than of the few that
    # arrived while the last one was applied (a batch's transaction, checkpoints and
    # after-commit writes cost the same for one event as for fifty). A record arriving
    # after a quiet spell is applied at once. 0: no pacing.
    batch_interval_ms: int = Field(default=50, ge=0, le=1000)
    # How long the broker holds a projector's fetch while none of its partitions has news.
    # While one is held, a partition left out of it (its last records were still being
    # applied when it was sent) waits for it to return; so this hold applies only while
    # the projector has caught up (see fetch_behind_wait_ms). Shorter waits were measured and
    # did not make likes reach their counts sooner (the broker answers a held fetch as
    # soon as any of its partitions has news); they only cost more empty fetches.
    fetch_max_wait_ms: int = Field(default=500, ge=1, le=500)
    # The same while a projector is behind (a lane read a full batch): a held fetch then
    # keeps partitions whose buffered records were drained from being fetched again, so
    # it is held only briefly (projections/fetch_wait.py). At most fetch_max_wait_ms.
    fetch_behind_wait_ms: int = Field(default=20, ge=1, le=500)
    apply_retries: int = Field(default=3, ge=1, le=20)
    apply_concurrency: int = Field(default=2, ge=1, le=16)
    # How many processes run each projector side by side (what `bloghub run --projectors N`
    # starts, and tells its children here). The group's round-robin assignment hands each
    # of them every Nth partition; knowing N, a process spreads those over all its lanes.
    projector_processes: int = Field(default=1, ge=1, le=64)
    heartbeat_ttl_s: int = Field(default=15, ge=2)
    reservation_ttl_s: int = Field(default=600, ge=5)
    sweep_interval_s: float = Field(default=30.0, gt=0)
    # Steps after a confirmed append (confirming keys, remembering the caller's position,
    # storing an idempotent answer): the request waits this long for them, then answers
    # anyway while they go on being retried in the background.
    after_write_wait_s: float = Field(default=1.0, ge=0, le=30)
    after_write_tries: int = Field(default=8, ge=1, le=100)

    ops_sample_every_s: float = Field(default=5.0, gt=0, le=300)
    ops_state_window_s: float = Field(default=60.0, gt=0, le=3600)
    ops_history_s: float = Field(default=3600.0, ge=60, le=7 * 24 * 3600)

    # The replay tool (ops/replay.py) switches a rebuilt generation in only once it has
    # reached the log's end; `replay activate` (and a migration's switch) refuses one more
    # than this many events behind it (summed over its partitions).
    replay_caught_up_events: int = Field(default=1000, ge=0)
    # How often API and projector processes re-read which generation is active: a switch
    # reaches every process within about this long, without a restart.
    generations_poll_s: float = Field(default=2.0, gt=0, le=60)
    # After a switch the replay keeps applying until a projector process has taken the new
    # generation over (or this long passes): the switched-in read model never stands still.
    replay_handover_s: float = Field(default=30.0, ge=0, le=600)

    wechat_appid: str = ""  # empty: WeChat login is off
    wechat_secret: SecretStr = SecretStr(f"{DEV_SECRET_MARKER}-wechat-app-secret")
    wechat_authorize_url: str = "https://open.weixin.qq.com/connect/qrconnect"
    wechat_token_url: str = "https://api.weixin.qq.com/sns/oauth2/access_token"
    wechat_redirect_uri: str = "http://127.0.0.1:8000/v1/auth/wechat/callback"
    wechat_timeout_s: float = Field(default=3.0, gt=0, le=30)
    wechat_state_secret: SecretStr = SecretStr(f"{DEV_SECRET_MARKER}-wechat-state-signing-key")

    # SMS: with no gateway the console provider logs codes (development only: production
    # refuses to start without one).
    sms_gateways: list[str] = Field(default_factory=list)
    sms_gateway_token: SecretStr | None = None
    sms_timeout_s: float = Field(default=5.0, gt=0, le=60)
    sms_failover: Literal["round_robin", "timeout_switch"] = "round_robin"
    sms_timeouts_to_switch: int = Field(default=3, ge=1, le=100)
    sms_rate_limit: int = Field(default=100, ge=1)  # messages per window, all phones
    sms_rate_window_s: float = Field(default=60.0, gt=0)
    sms_retry_spacing_s: float = Field(default=60.0, ge=0)
    sms_worker_poll_s: float = Field(default=1.0, gt=0)
    sms_code_cooldown_s: int = Field(default=60, ge=0)  # per phone and purpose
    sms_codes_per_phone_per_day: int = Field(default=10, ge=1)
    sms_codes_per_ip_per_hour: int = Field(default=20, ge=1)
    sms_checks_per_ip_per_hour: int = Field(default=60, ge=1)  # codes tried, right or wrong
    # Country calling codes SMS is sent to. Texts to some countries cost far more than
    # others, and pumping codes to premium numbers is a known fraud: only list countries
    # whose users the site serves.
    sms_country_codes: list[str] = Field(default_factory=lambda: ["86"])

    cache_enabled: bool = True  # off: every read goes to the read models (diagnosis, benches)
    # The in-process tier in front of Redis for hot reads (encoded bodies, per API process;
    # 0 entries turns it off). Projector changes reach it over Redis pub/sub; the TTL only
    # bounds how long a copy could outlive a lost message.
    local_cache_entries: int = Field(default=10_000, ge=0)
    local_cache_bytes: int = Field(default=64 * 1024 * 1024, ge=0)
    local_cache_ttl_s: float = Field(default=30.0, gt=0, le=3600)
    # The hottest public reads (ranking, cached detail) answered in front of the middleware
    # stack (api/fast_reads.py); off: through the stack like any read (diagnosis, benches).
    fast_reads: bool = True

    # The hot ranking (ranking/): score = (likes + collects * weight - 1) /
    # (hours since publish + 2) ^ gravity, over the visible articles published within the
    # window, recomputed every period by one holder of a Redis lock at a time. A holder
    # renews the lock every third of its TTL; a dead one is replaced within one TTL.
    ranking_collect_weight: float = Field(default=2.0, ge=0, le=1000)
    ranking_gravity: float = Field(default=1.5, gt=0, le=10)
    ranking_top_n: int = Field(default=100, ge=1, le=1000)
    ranking_window_days: float = Field(default=7.0, gt=0, le=365)
    ranking_every_s: float = Field(default=60.0, gt=0, le=86_400)
    ranking_lock_ttl_s: float = Field(default=15.0, ge=0.5, le=3600)
    ranking_page_rows: int = Field(default=1000, ge=10, le=100_000)  # candidates per page
    ranking_precache: int = Field(default=20, ge=0, le=1000)  # first entries' details cached
    # How often each API process checks the ranking's version (one Redis read).
    ranking_check_s: float = Field(default=1.0, gt=0, le=60)
    # Live notifications over WebSocket (/v1/live) and presence. The server pings every
    # interval; a client that has sent nothing for two intervals is dropped. A process's
    # presence entries live this long past their last refresh, so a killed process leaves
    # no one online for longer than that.
    live_ping_interval_s: float = Field(default=20.0, gt=0, le=300)
    live_presence_ttl_s: float = Field(default=45.0, gt=0, le=3600)
    live_auth_timeout_s: float = Field(default=10.0, gt=0, le=300)
    live_connections_per_user: int = Field(default=5, ge=1, le=1000)
    # Sockets one client address holds open, per API process, before they have signed in.
    live_signing_in_per_address: int = Field(default=16, ge=1, le=10_000)
    live_max_message_bytes: int = Field(default=4096, ge=256, le=1024 * 1024)
    # Messages waiting for one socket; a client that falls this far behind is dropped
    # (it reads what it missed from GET /v1/notifications) rather than buffered for.
    live_queue_max: int = Field(default=64, ge=1, le=100_000)

    # "json": one line of JSON per event; "console": readable; "auto": json in production.
    log_format: Literal["auto", "json", "console"] = "auto"
    # The share of successful reads (GET/HEAD answered below 400) whose request line is
    # logged, at random; writes and every error are always logged, and metrics count all.
    log_sample_reads: float = Field(default=1.0, ge=0, le=1)

    cors_origins: list[str] = Field(default_factory=list)
    cors_allow_credentials: bool = True

    # Failed logins, counted within 15 minutes. One (account, IP) pair is locked for 15
    # minutes after its own failures; an IP after its failures on any accounts. An account
    # is never locked: past its failures from everywhere, addresses it has never logged in
    # from wait a delay that doubles with each failure, while its known addresses do not.
    login_failures_per_account_ip: int = Field(default=5, ge=1)
    login_failures_per_ip: int = Field(default=50, ge=1)
    login_failures_per_account: int = Field(default=10, ge=1)
    login_delay_first_s: int = Field(default=1, ge=1)
    login_delay_max_s: int = Field(default=900, ge=1)
    login_known_address_days: int = Field(default=30, ge=1)
    # Wrong current passwords when binding a phone, per account, before a 15-minute lock.
    phone_bind_password_failures: int = Field(default=5, ge=1)
    rate_ip_per_minute: int = Field(default=600, ge=1)
    rate_user_per_minute: int = Field(default=300, ge=1)

    password_hash_scheme: str = Field(default="argon2", pattern=r"^(argon2|bcrypt)$")

    # Interactions. Reads served are buffered in each API process and appended in batches
    # of ``read_batch`` at least every ``read_flush_s``: a crash loses at most that window,
    # a full buffer (``read_max_pending``) drops new reads rather than slow readers.
    read_batch: int = Field(default=500, ge=1, le=10_000)
    read_flush_s: float = Field(default=1.0, gt=0, le=60)
    read_max_pending: int = Field(default=20_000, ge=1)
    # A reader's repeated reads of an article within this many seconds are appended once
    # per API process (the projector would not count them: it counts once an hour).
    read_repeat_s: float = Field(default=60.0, ge=0, le=3000)
    # Keys readers without an account by a hash of their client key (address, user agent).
    reader_hash_secret: SecretStr = SecretStr(f"{DEV_SECRET_MARKER}-reader-hash-key")

    @model_validator(mode="after")
    def _refuse_dev_secrets_in_production(self) -> Self:
        if self.mode is not Mode.PRODUCTION:
            return self
        weak = [
            name
            for name in (
                "access_token_secret",
                "refresh_token_secret",
                "operator_token",
                "position_secret",
                "user_key_secret",
                "reader_hash_secret",
            )
            if _is_weak(getattr(self, name))
        ]
        if self.access_token_secret == self.refresh_token_secret:
            weak.append("refresh_token_secret (equal to access_token_secret)")
        # An empty one ("user:@host") is none: libpq then reads PGPASSWORD too.
        given = {p for p in _database_passwords(self.database_url.get_secret_value()) if p}
        if DEV_DATABASE_PASSWORD in given:
            weak.append("database_url (development password)")
        elif not given and os.environ.get("PGPASSWORD") == DEV_DATABASE_PASSWORD:
            # A URL without one leaves the password to libpq's environment, as asyncpg does.
            weak.append("database_url (development password, from PGPASSWORD)")
        if self.wechat_appid and _is_weak(self.wechat_secret):
            weak.append("wechat_secret")
        if _is_weak(self.wechat_state_secret):
            weak.append("wechat_state_secret")
        if not self.sms_gateways:
            # The console provider logs each phone number and its code: development only.
            weak.append("sms_gateways (none: codes would go to the log)")
        if weak:
            raise InsecureSettings(
                "production mode refuses development or weak settings: " + ", ".join(weak)
            )
        return self

    @model_validator(mode="after")
    def _history_covers_the_state_window(self) -> Self:
        # A group's state looks back over the window in its kept samples.
        if self.ops_history_s < self.ops_state_window_s:
            raise ValueError("ops_history_s must be at least ops_state_window_s")
        # A window with no sample says the lag is not known (UNKNOWN): it must hold a few
        # samples, or a healthy group would be said unknown between two of them.
        if self.ops_state_window_s < 3 * self.ops_sample_every_s:
            raise ValueError("ops_state_window_s must be at least 3 x ops_sample_every_s")
        return self

    @model_validator(mode="after")
    def _no_wildcard_with_credentials(self) -> Self:
        if "*" in self.cors_origins and self.cors_allow_credentials:
            raise ValueError(
                "cors_origins '*' cannot go with cors_allow_credentials: list the origins"
            )
        return self

    @field_validator("database_url")
    @classmethod
    def _database_url_is_asyncpg(cls, url: SecretStr) -> SecretStr:
        return SecretStr(asyncpg_url(url.get_secret_value()))

    @field_validator("redis_url")
    @classmethod
    def _redis_url_parses(cls, url: SecretStr) -> SecretStr:
        if not url.get_secret_value().lower().startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"must be a redis://, rediss:// or unix:// URL{_not(url)}")
        if not _port_ok(url.get_secret_value()):
            raise ValueError(_BAD_PORT)
        parse_url(url.get_secret_value())  # type: ignore[no-untyped-call]  # errors quote no URL
        return url

    @field_validator("opensearch_url")
    @classmethod
    def _opensearch_url_parses(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"must be an http:// or https:// URL (http://HOST:9200){_not(url)}")
        if not _port_ok(url):
            raise ValueError(_BAD_PORT)
        return url

    @field_validator("sms_gateways")
    @classmethod
    def _gateways_are_urls(cls, urls: list[str]) -> list[str]:
        for url in urls:
            parts = urlsplit(url)
            if (
                parts.scheme not in ("http", "https")
                or not parts.hostname
                or url != url.strip()
                or not url.isprintable()  # urlsplit drops tabs and line breaks silently
                or any(c.isspace() for c in parts.netloc)
            ):
                # Not quoted: a gateway's URL may carry its credentials.
                raise ValueError(f"each must be an http:// or https:// URL{_not(url)}")
            if not _port_ok(url):
                raise ValueError(_BAD_PORT)
        return urls

    @field_validator("kafka_bootstrap")
    @classmethod
    def _bootstrap_lists_hosts(cls, servers: str) -> str:
        entries = [e.strip() for e in servers.split(",") if e.strip()]
        if not entries:
            raise ValueError("must list HOST:PORT, one or more separated by commas")
        for entry in entries:
            if _SCHEME.match(entry) or not _host_and_port(entry):
                raise ValueError(f"{entry!r} is not HOST:PORT (no scheme; a port from 1 to 65535)")
        return servers

    @model_validator(mode="after")
    def _addresses_and_country_codes_parse(self) -> Self:
        for entry in self.trusted_proxies:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"trusted_proxies: {entry!r} is not an IP or network") from None
        for code in self.sms_country_codes:
            if not (code.isascii() and code.isdigit() and len(code) <= 3 and code[0] != "0"):
                raise ValueError(f"sms_country_codes: {code!r} is not a country calling code")
        return self

    @model_validator(mode="after")
    def _reservations_outlive_delivery(self) -> Self:
        # A pending key may be swept only once its event can no longer land, or a late
        # write would find its key given to someone else. The producer has the record
        # within append_timeout_s of the append's start, may deliver it for
        # delivery_timeout_s more, and a request already in flight then is bounded by the
        # append bound again. Twice that covers what a command does between reserving and
        # appending (a password hash) and the sweep's own beat.
        if self.delivery_timeout_s < self.append_timeout_s:
            raise ValueError("delivery_timeout_s must be at least append_timeout_s")
        least = math.ceil(2 * (self.delivery_timeout_s + 2 * self.append_timeout_s))
        if self.reservation_ttl_s < least:
            raise ValueError(
                "reservation_ttl_s must be at least 2 x (delivery_timeout_s + 2 x "
                f"append_timeout_s), {least} s here: a key may be freed only once the "
                "producer can no longer deliver its event"
            )
        return self

    @property
    def sqlalchemy_url(self) -> str:
        return self.database_url.get_secret_value()

    @property
    def asyncpg_dsn(self) -> str:
        return self.sqlalchemy_url.replace("postgresql+asyncpg://", "postgresql://", 1)


def asyncpg_url(url: str) -> str:
    """``url`` as bloghub's engines take it (``postgresql+asyncpg://``; libpq's
    ``postgresql://`` and ``postgres://`` are read as that), or a ``ValueError`` saying
    what is wrong with it: never quoting it, as it may carry a password."""
    for scheme in _LIBPQ_SCHEMES:
        if url.startswith(scheme):
            url = ASYNCPG_SCHEME + url.removeprefix(scheme)
    wrong = ValueError(
        f"must be a {ASYNCPG_SCHEME}USER:PASSWORD@HOST:PORT/DATABASE URL{_not(url)} "
        "(bloghub's driver is asyncpg; postgresql:// is read as asyncpg's)"
    )
    if not url.startswith(ASYNCPG_SCHEME):
        raise wrong
    try:
        port = make_url(url).port
    except ArgumentError:
        raise wrong from None
    except ValueError:  # a port that is no number
        port = 0
    if port is not None and not 0 < port < 65536:
        raise ValueError(_BAD_PORT)
    return url


def _not(url: SecretStr | str) -> str:
    """What was given instead, if it is safe to show: its scheme only."""
    value = url.get_secret_value() if isinstance(url, SecretStr) else url
    found = _SCHEME.match(value)
    return f", not {found.group(1)}://" if found else ""


def _host_and_port(entry: str) -> bool:
    """Whether ``entry`` is a Kafka bootstrap server as aiokafka reads one."""
    with contextlib.suppress(ValueError):
        ipaddress.IPv6Address(entry)  # a bare IPv6 address: the default port
        return True
    return bool(urlsplit(f"//{entry}").hostname) and _port_ok(f"//{entry}")


def _port_ok(url: str) -> bool:
    try:
        port = urlsplit(url).port
    except ValueError:  # no number, or past 65535
        return False
    return port != 0


def _is_weak(secret: SecretStr) -> bool:
    value = secret.get_secret_value()
    return DEV_SECRET_MARKER in value or len(value) < 32


def load_settings() -> Settings:
    return Settings()
