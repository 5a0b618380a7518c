"""Turns command-line values into client settings, and keeps secrets out of what is printed."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import click

SECRET_KAFKA_KEYS = ("sasl.password", "ssl.key.password", "ssl.keystore.password")


def parse_kafka_config(pairs: tuple[str, ...]) -> dict[str, str]:
    """``KEY=VALUE`` librdkafka settings from ``--kafka-config``."""
    config: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(
                f"{pair!r} is not KEY=VALUE (e.g. security.protocol=SASL_SSL)",
                param_hint="--kafka-config",
            )
        config[key.strip()] = value
    return config


def build_kafka_config(
    bootstrap_servers: str,
    security_protocol: str | None,
    sasl_mechanism: str | None,
    sasl_username: str | None,
    sasl_password: str | None,
    ssl_ca_location: str | None,
    extra: tuple[str, ...],
) -> dict[str, str]:
    config = {"bootstrap.servers": bootstrap_servers}
    named = {
        "security.protocol": security_protocol,
        "sasl.mechanism": sasl_mechanism,
        "sasl.username": sasl_username,
        "sasl.password": sasl_password,
        "ssl.ca.location": ssl_ca_location,
    }
    config.update({key: value for key, value in named.items() if value})
    config.update(parse_kafka_config(extra))
    return config


def describe_kafka(config: dict[str, str]) -> str:
    """Kafka settings fit for a log line: secrets masked."""
    shown = {k: ("***" if k in SECRET_KAFKA_KEYS else v) for k, v in config.items()}
    return ", ".join(f"{k}={v}" for k, v in sorted(shown.items()))


def redact_url(url: str) -> str:
    """A Redis URL with its password masked, for logs and error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))
