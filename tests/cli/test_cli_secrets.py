"""Secrets never printed: librdkafka properties that hold one, Redis passwords in a URL's user
info or query, in descriptions, in text and JSON log lines at any level, in errors."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from loginmetrics.cli.config import (
    describe_kafka,
    is_secret_kafka_key,
    kafka_secrets,
    redact_url,
    redis_secrets,
)
from loginmetrics.cli.logs import LogSettings, register_secrets, registered_secrets
from loginmetrics.cli.main import cli

SECRET = "Zq7-secret-value"  # unlike anything else a test logs


@pytest.mark.parametrize(
    "key",
    [
        "sasl.password",
        "ssl.key.password",
        "ssl.keystore.password",
        "ssl.key.pem",
        "ssl.certificate.pem",
        "ssl.ca.pem",
        "sasl.oauthbearer.client.secret",
        "sasl.oauthbearer.config",
        "sasl.jaas.config",
        "sasl.oauthbearer.assertion.private.key.passphrase",
        "SASL.PASSWORD",
    ],
)
def test_properties_that_hold_a_secret_are_masked(key: str) -> None:
    assert is_secret_kafka_key(key)
    described = describe_kafka({key: SECRET, "bootstrap.servers": "k:9092"})
    assert SECRET not in described
    assert f"{key}=***" in described
    assert "bootstrap.servers=k:9092" in described


@pytest.mark.parametrize(
    "key",
    [
        "bootstrap.servers",
        "ssl.key.location",  # paths are not secrets: the file's content is not in the config
        "ssl.keystore.location",
        "ssl.ca.location",
        "sasl.kerberos.keytab",
        "sasl.username",
        "sasl.mechanism",
        "security.protocol",
        "linger.ms",
        "client.id",
    ],
)
def test_other_properties_are_shown(key: str) -> None:
    assert not is_secret_kafka_key(key)
    assert describe_kafka({key: "shown"}) == f"{key}=shown"


def test_the_secret_values_of_a_kafka_config() -> None:
    config = {"sasl.password": "p1", "ssl.key.pem": "pem", "linger.ms": "5", "sasl.username": "u"}
    assert sorted(kafka_secrets(config)) == ["p1", "pem"]


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"redis://user:{SECRET}@host:6380/2", "redis://user:***@host:6380/2"),
        (f"redis://:{SECRET}@host/0", "redis://:***@host/0"),
        (f"rediss://:{SECRET}@[::1]:6379/0", "rediss://:***@[::1]:6379/0"),
        (f"redis://[fe80::1]:6379/0?password={SECRET}", "redis://[fe80::1]:6379/0?password=***"),
        (
            f"redis://h:1/0?socket_timeout=5&password={SECRET}&db=1",
            "redis://h:1/0?socket_timeout=5&password=***&db=1",
        ),
        (f"redis://u:{SECRET}@h/0?Password={SECRET}", "redis://u:***@h/0?Password=***"),
        ("redis://localhost:6379/0", "redis://localhost:6379/0"),
        ("redis://[::1]:6379/0", "redis://[::1]:6379/0"),
        ("redis://user@host:6379/0", "redis://user@host:6379/0"),
        (f"redis://:{SECRET}@host:notaport/0", "<a Redis URL that does not parse>"),
    ],
)
def test_a_redis_url_is_shown_without_its_password(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_the_passwords_of_a_redis_url_as_written_and_decoded() -> None:
    found = redis_secrets("redis://u:p%40ss@h/0?password=q%26r&db=1", "sentinel-pw")
    assert sorted(found) == sorted(["sentinel-pw", "p%40ss", "q%26r", "p@ss", "q&r"])
    assert redis_secrets("redis://h/0") == []


# -- log lines ---------------------------------------------------------------------------------


@pytest.fixture
def root_logger() -> Iterator[logging.Logger]:
    """The root logger, restored after the test reconfigures it."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield root
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_no_log_line_shows_a_registered_secret(
    log_format: str, root_logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = 'Zq7-"quoted\\and\u00e9-secret'  # escaped differently by repr() and JSON
    LogSettings("DEBUG", log_format, secrets=(secret,)).configure()
    log = logging.getLogger("tests.secrets")

    log.debug("connecting with %s", secret)
    log.info("config %r", {"sasl.password": secret})
    log.warning("as JSON: %s", json.dumps({"k": secret}))
    log.error("in an extra field", extra={"detail": secret})
    try:
        raise RuntimeError(f"refused: {secret}")
    except RuntimeError:
        log.exception("failed")

    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) >= 5
    assert "connecting with ***" in err
    for form in (secret, repr(secret)[1:-1], json.dumps(secret)[1:-1], "quoted"):
        assert form not in err
    if log_format == "json":
        for line in err.strip().splitlines():
            json.loads(line)  # still one JSON object per line


def test_a_spawned_child_learns_the_secrets_registered_so_far() -> None:
    register_secrets(["Zq7-registered-before-spawn", None, "abc"])  # too short: not searched
    carried = LogSettings().with_registered_secrets()
    assert "Zq7-registered-before-spawn" in carried.secrets
    assert "abc" not in registered_secrets()


# -- the command line ----------------------------------------------------------------------------


def test_a_bad_kafka_setting_that_looks_secret_is_not_echoed() -> None:
    result = CliRunner().invoke(cli, ["worker", "-X", f"sasl.password:{SECRET}"])
    assert result.exit_code == 2
    assert SECRET not in result.output
    assert "is not KEY=VALUE" in result.output


def test_kafka_config_in_the_environment_is_one_setting_per_line_or_semicolon_separated() -> None:
    for value in ("linger.ms=5\nsasl.oauthbearer.config=a=b c=d\n", "linger.ms=5; x y=1 2;"):
        result = CliRunner().invoke(
            cli, ["worker", "--help"], env={"LOGINMETRICS_KAFKA_CONFIG": value}
        )
        assert result.exit_code == 0
    help_text = CliRunner().invoke(cli, ["worker", "--help"], terminal_width=200).output
    assert "one KEY=VALUE per line" in help_text
