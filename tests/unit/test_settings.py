from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from bloghub.settings import InsecureSettings, Mode, Settings

# What a production deployment sets: every secret strong, a real database password, a gateway.
PRODUCTION: dict[str, object] = {
    "mode": Mode.PRODUCTION,
    "access_token_secret": SecretStr("a" * 40),
    "refresh_token_secret": SecretStr("b" * 40),
    "operator_token": SecretStr("c" * 40),
    "wechat_state_secret": SecretStr("d" * 40),
    "position_secret": SecretStr("e" * 40),
    "user_key_secret": SecretStr("e" * 40),
    "reader_hash_secret": SecretStr("f" * 40),
    "database_url": SecretStr("postgresql+asyncpg://app:Xy9-long@db:5432/bloghub"),
    "sms_gateways": ["https://sms.example.com/send"],
}


def production(**changes: object) -> Settings:
    """Production settings with ``changes`` (``None`` leaves a field at its default)."""
    values = {k: v for k, v in {**PRODUCTION, **changes}.items() if v is not None}
    return Settings(**values)  # type: ignore[arg-type]


def test_development_defaults_start() -> None:
    assert Settings().mode is Mode.DEVELOPMENT


def test_production_refuses_development_secrets() -> None:
    with pytest.raises(InsecureSettings) as info:
        Settings(mode=Mode.PRODUCTION)
    assert "access_token_secret" in str(info.value)
    assert "database_url" in str(info.value)
    assert "position_secret" in str(info.value)


def test_production_starts_with_real_secrets() -> None:
    assert production().mode is Mode.PRODUCTION


def test_production_refuses_to_log_sms_codes() -> None:
    """With no gateway, codes would go to the console provider: phone and code in the log."""
    with pytest.raises(InsecureSettings, match="sms_gateways"):
        production(sms_gateways=[])


@pytest.mark.parametrize(
    "gateway",
    [
        "",
        "sms.example.com/send",
        "ftp://sms.example.com/",
        "https:///send",
        " https://sms.example.com/send",
        "https://sms.example.com/send\n",
        "https://sms example.com/send",
        "https://sms\t.example.com/send",  # urlsplit drops the tab; the client refuses it
    ],
)
def test_a_gateway_that_is_not_a_url_is_refused_without_being_quoted(gateway: str) -> None:
    """A production start took ``[""]`` as a gateway: codes would go nowhere, every send
    failing."""
    with pytest.raises(ValidationError, match="each must be an http:// or https:// URL") as info:
        production(sms_gateways=["https://sms.example.com/send", gateway])
    said = info.value.errors()[0]["msg"]  # what the one-line refusal shows
    assert "example" not in said, said


def test_the_development_database_password_given_by_pgpassword_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A URL without a password leaves it to libpq's environment, as asyncpg reads it."""
    monkeypatch.setenv("PGPASSWORD", "bloghub")
    without = SecretStr("postgresql+asyncpg://bloghub@127.0.0.1:5432/bloghub")
    with pytest.raises(InsecureSettings, match="development password, from PGPASSWORD"):
        production(database_url=without)
    empty = SecretStr("postgresql+asyncpg://bloghub:@127.0.0.1:5432/bloghub")  # none either
    with pytest.raises(InsecureSettings, match="development password, from PGPASSWORD"):
        production(database_url=empty)
    assert production().mode is Mode.PRODUCTION  # a URL's own password is what is used
    monkeypatch.setenv("PGPASSWORD", "Xy9-long-other")
    assert production(database_url=without).mode is Mode.PRODUCTION


def test_production_refuses_the_development_reader_hash_secret() -> None:
    """With the published default, anyone could tell which address an anonymous reader's
    hash in the log stands for."""
    with pytest.raises(InsecureSettings, match="reader_hash_secret"):
        Settings(mode=Mode.PRODUCTION)


def test_production_refuses_the_development_user_key_secret() -> None:
    with pytest.raises(InsecureSettings, match="user_key_secret"):
        production(user_key_secret=None)


def test_production_refuses_one_key_for_both_tokens() -> None:
    with pytest.raises(InsecureSettings, match="refresh_token_secret"):
        production(refresh_token_secret=SecretStr("a" * 40))


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+asyncpg://bloghub:bloghub@db:5432/bloghub",
        "postgresql+asyncpg://bloghub:%62loghub@db:5432/bloghub",  # percent-encoded
        "postgresql+asyncpg://bloghub@db:5432/bloghub?password=bloghub",  # as a parameter
        "postgresql+asyncpg://app:bloghub@db:5432/app",  # another user, the same password
    ],
)
def test_production_refuses_the_development_database_password_however_written(
    url: str,
) -> None:
    with pytest.raises(InsecureSettings, match="database_url"):
        production(database_url=SecretStr(url))


def test_production_takes_a_database_url_with_a_real_password_or_none() -> None:
    for url in (
        "postgresql+asyncpg://bloghub:%62loghub-2@db:5432/bloghub",
        "postgresql+asyncpg://app@db:5432/app?password=Xy9-long",
        "postgresql+asyncpg://app@db:5432/app",  # a password from elsewhere (.pgpass)
    ):
        assert production(database_url=SecretStr(url)).mode is Mode.PRODUCTION


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BLOGHUB_PREFIX", "staging")
    monkeypatch.setenv("BLOGHUB_TOPIC_PARTITIONS", "12")
    s = Settings()
    assert (s.prefix, s.topic_partitions) == ("staging", 12)


def test_cors_wildcard_with_credentials_is_refused() -> None:
    with pytest.raises(ValueError, match="credentials"):
        Settings(cors_origins=["*"], cors_allow_credentials=True)
    assert Settings(cors_origins=["*"], cors_allow_credentials=False).cors_origins == ["*"]


def test_production_refuses_a_weak_wechat_secret_when_wechat_is_on() -> None:
    with pytest.raises(InsecureSettings, match="wechat_secret"):
        Settings(mode=Mode.PRODUCTION, wechat_appid="wx123")


def test_a_reservation_outlives_the_producers_delivery_bound() -> None:
    # A key may be swept only once its event can no longer land.
    with pytest.raises(ValidationError) as info:
        Settings(reservation_ttl_s=180, delivery_timeout_s=120)
    assert "delivery_timeout_s" in str(info.value)
    with pytest.raises(ValidationError):
        Settings(append_timeout_s=5, delivery_timeout_s=2, reservation_ttl_s=600)
    # The refusal names the least that would do: here 2 x (120 + 2 x 1.5).
    with pytest.raises(ValidationError, match="246 s here"):
        Settings(reservation_ttl_s=244, delivery_timeout_s=120, append_timeout_s=1.5)
    # A whole number of seconds, as the setting takes: 2 x (120.3 + 3) is 246.6.
    with pytest.raises(ValidationError, match="247 s here"):
        Settings(reservation_ttl_s=246, delivery_timeout_s=120.3, append_timeout_s=1.5)
    fine = Settings(reservation_ttl_s=246, delivery_timeout_s=120, append_timeout_s=1.5)
    assert fine.reservation_ttl_s > 2 * fine.delivery_timeout_s


def test_the_state_window_holds_a_few_lag_samples() -> None:
    """A window with no sample says the lag is not known: one shorter than a few sampling
    intervals would say so of a healthy group between two samples, and is refused."""
    with pytest.raises(ValidationError) as info:
        Settings(ops_sample_every_s=30, ops_state_window_s=20)
    assert "ops_state_window_s must be at least 3 x ops_sample_every_s" in str(info.value)
    assert Settings(ops_sample_every_s=20, ops_state_window_s=60).ops_state_window_s == 60


def refusal(**values: object) -> str:
    """What an operator is told about the one setting in ``values`` that does not validate."""
    with pytest.raises(ValidationError) as info:
        Settings(**values)  # type: ignore[arg-type]
    (error,) = info.value.errors()
    assert error["loc"] == (next(iter(values)),)
    said = str(error["msg"])
    assert "Xy9" not in said, "the password is never quoted"
    return said


def test_a_libpq_database_url_is_read_as_asyncpgs() -> None:
    s = Settings(database_url=SecretStr("postgresql://app:Xy9@db:5432/blog"))
    assert s.sqlalchemy_url == "postgresql+asyncpg://app:Xy9@db:5432/blog"
    assert s.asyncpg_dsn == "postgresql://app:Xy9@db:5432/blog"
    assert Settings(database_url=SecretStr("postgres://app@db/blog")).sqlalchemy_url == (
        "postgresql+asyncpg://app@db/blog"
    )


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("garbage", "must be a postgresql+asyncpg://USER:PASSWORD@HOST:PORT/DATABASE URL"),
        ("app:Xy9@db/blog", "must be a postgresql+asyncpg://"),
        ("mysql://app:Xy9@db/blog", "not mysql://"),
        ("postgresql+psycopg2://app:Xy9@db/blog", "not postgresql+psycopg2://"),
        ("postgresql+asyncpg://app:Xy9@db:port/blog", "port must be a number from 1 to 65535"),
        ("postgresql+asyncpg://app:Xy9@db:99999/blog", "port must be a number from 1 to 65535"),
    ],
)
def test_a_database_url_bloghub_cannot_use_is_refused(url: str, said: str) -> None:
    assert said in refusal(database_url=SecretStr(url))


@pytest.mark.parametrize(
    ("values", "said"),
    [
        ({"redis_url": SecretStr("garbage")}, "must be a redis://, rediss:// or unix:// URL"),
        ({"redis_url": SecretStr("http://:Xy9@cache:6379")}, "not http://"),
        ({"redis_url": SecretStr("redis://:Xy9@cache:port/0")}, "port must be a number"),
        ({"opensearch_url": "garbage"}, "must be an http:// or https:// URL"),
        ({"opensearch_url": "ftp://search"}, "not ftp://"),
        ({"opensearch_url": "http://search:port"}, "port must be a number"),
        ({"kafka_bootstrap": "kafka:port"}, "'kafka:port' is not HOST:PORT"),
        ({"kafka_bootstrap": "a:9092,kafka://b:9092"}, "'kafka://b:9092' is not HOST:PORT"),
        ({"kafka_bootstrap": " , "}, "must list HOST:PORT"),
    ],
)
def test_a_service_address_its_client_cannot_read_is_refused(
    values: dict[str, object], said: str
) -> None:
    assert said in refusal(**values)


def test_service_addresses_as_their_clients_take_them() -> None:
    s = Settings(
        redis_url=SecretStr("unix:///run/redis.sock"),
        opensearch_url="https://search:9200",
        kafka_bootstrap="k1:9092, [::1]:9093,k2",
    )
    assert s.opensearch_url == "https://search:9200"
